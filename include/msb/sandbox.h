// msb C++ SDK: create, drive and remove local microVM sandboxes. No daemon: every sandbox is
// one `msb sandbox` process; state lives in $MSB_HOME (default ~/.msb, see docs/cli.md).
//
//   auto sandbox = TRY(msb::Sandbox::builder("web").cpus(2).memory_mib(512).create());
//   msb::ExecOutput out = TRY(sandbox.exec("echo", {"hello"}));
//   TRY(sandbox.fs().write("/tmp/a.txt", "data"));
//   TRY(sandbox.stop());
//
// Errors are msb::Result values (no exceptions). A non-detached sandbox stops when the process
// that created it exits; create_detached() starts it in its own session.
//
// The `msb` binary that is spawned as the sandbox process is: /proc/self/exe when the caller is
// msb itself, else $MSB_BIN, else `msb` beside the caller's executable, else the build tree's
// msb (MSB_DEFAULT_BIN, compiled in).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace msb {

namespace sdk {
class AgentClient;
struct Channel;
struct SandboxAccess;
}  // namespace sdk

enum class Access { ReadWrite, ReadOnly };
enum class Replace { No, Yes };

struct VolumeSpec {
    std::string host;
    std::string guest;
    Access access = Access::ReadWrite;
};

struct DiskImageSpec {
    std::string path;
    std::string format = "raw";
    Access access = Access::ReadWrite;
};

struct TmpfsSpec {
    std::string path;
    uint64_t size_bytes = 0;  // 0: the guest's default
};

// Everything a sandbox is created with; stored as JSON in the sandbox row.
struct SandboxConfig {
    std::string name;
    uint32_t cpus = 1;
    uint32_t memory_mib = 512;
    std::optional<std::string> rootfs;
    std::optional<DiskImageSpec> disk;
    std::vector<VolumeSpec> volumes;
    std::vector<TmpfsSpec> tmpfs;
    std::vector<std::pair<std::string, std::string>> env;
    std::optional<std::string> workdir;
    std::optional<std::string> user;
    std::optional<std::string> hostname;
    uint64_t idle_timeout_secs = 0;  // 0: none
    uint64_t max_duration_secs = 0;  // 0: none
    std::optional<std::string> kernel;
    std::string log_level = "info";
};

struct ExecOptions {
    std::vector<std::pair<std::string, std::string>> env;
    std::optional<std::string> workdir;
    std::optional<std::string> user;
    bool tty = false;
    uint16_t rows = 24;
    uint16_t cols = 80;
    std::optional<std::string> stdin_data;  // written then closed (exec only)
    std::chrono::milliseconds timeout{0};   // 0: none; on expiry the command gets SIGKILL
};

struct ExecOutput {
    std::string stdout_data;
    std::string stderr_data;
    int exit_code = 0;
};

enum class ExecEventKind { Started, Stdout, Stderr, Exited };
struct ExecEvent {
    ExecEventKind kind = ExecEventKind::Started;
    std::string data;   // Stdout/Stderr
    uint32_t pid = 0;   // Started
    int exit_code = 0;  // Exited
};

// A running command. Events arrive in order; after Exited, next_event() reports an error.
class ExecHandle {
public:
    ExecHandle(ExecHandle&&) noexcept;
    ExecHandle& operator=(ExecHandle&&) noexcept;
    ~ExecHandle();

    // Blocks for the next event, up to `timeout` (0: forever). Error on timeout/disconnect.
    Result<ExecEvent> next_event(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
    Status write_stdin(std::string_view data);
    Status close_stdin();
    Status signal(int signo);
    Status resize(uint16_t rows, uint16_t cols);
    // Drains events until Exited and returns the exit code.
    Result<int> wait();
    uint32_t id() const;

private:
    friend class Sandbox;
    ExecHandle(std::shared_ptr<sdk::AgentClient> client, std::shared_ptr<sdk::Channel> channel);
    std::shared_ptr<sdk::AgentClient> m_client;
    std::shared_ptr<sdk::Channel> m_channel;
};

struct FsEntry {
    std::string path;
    std::string kind;  // file, dir, symlink, other
    uint64_t size = 0;
    uint32_t mode = 0;
    std::optional<int64_t> modified;
};

// Files inside the guest, over the agent protocol.
class SandboxFs {
public:
    Result<std::string> read(const std::string& path);
    Status write(const std::string& path, std::string_view data,
                 std::optional<uint32_t> mode = std::nullopt);
    Result<std::vector<FsEntry>> list(const std::string& path);
    Result<FsEntry> stat(const std::string& path);
    Status mkdir(const std::string& path);
    Status remove(const std::string& path);
    Status remove_dir(const std::string& path);
    Status copy(const std::string& src, const std::string& dst);
    Status rename(const std::string& src, const std::string& dst);
    Result<bool> exists(const std::string& path);
    Status copy_from_host(const std::string& host_path, const std::string& guest_path);
    Status copy_to_host(const std::string& guest_path, const std::string& host_path);

private:
    friend class Sandbox;
    explicit SandboxFs(std::shared_ptr<sdk::AgentClient> client) : m_client(std::move(client)) {}
    std::shared_ptr<sdk::AgentClient> m_client;
};

struct SandboxMetrics {
    std::optional<double> cpu_percent;
    std::optional<int64_t> memory_bytes;
    std::optional<int64_t> disk_read_bytes;
    std::optional<int64_t> disk_write_bytes;
    std::optional<std::string> sampled_at;
};

struct RunInfo {
    int64_t id = 0;
    std::optional<int64_t> pid;
    std::string status;  // Running, Terminated
    std::optional<int32_t> exit_code;
    std::optional<std::string> reason;
    std::optional<std::string> detail;
    std::optional<std::string> started_at;
    std::optional<std::string> terminated_at;
};

// What the store knows about a sandbox (after crash repair).
struct SandboxInfo {
    int64_t id = 0;
    std::string name;
    std::string status;  // Running, Draining, Paused, Stopped, Crashed
    std::string config_json;
    std::optional<std::string> created_at;
    std::optional<std::string> updated_at;
    std::optional<RunInfo> latest_run;
    std::optional<int64_t> pid;  // of the live sandbox process
    std::string dir;             // $MSB_HOME/sandboxes/<name>
    std::string agent_sock;
};

class Sandbox;

class SandboxBuilder {
public:
    explicit SandboxBuilder(std::string name) { m_config.name = std::move(name); }
    explicit SandboxBuilder(SandboxConfig config) : m_config(std::move(config)) {}
    SandboxBuilder& cpus(uint32_t n) {
        m_config.cpus = n;
        return *this;
    }
    SandboxBuilder& memory_mib(uint32_t n) {
        m_config.memory_mib = n;
        return *this;
    }
    SandboxBuilder& rootfs(std::string dir) {
        m_config.rootfs = std::move(dir);
        return *this;
    }
    SandboxBuilder& disk(std::string path, std::string format = "raw",
                         Access access = Access::ReadWrite) {
        m_config.disk = DiskImageSpec{std::move(path), std::move(format), access};
        return *this;
    }
    SandboxBuilder& volume(std::string host, std::string guest, Access access = Access::ReadWrite) {
        m_config.volumes.push_back({std::move(host), std::move(guest), access});
        return *this;
    }
    SandboxBuilder& tmpfs(std::string path, uint64_t size_bytes = 0) {
        m_config.tmpfs.push_back({std::move(path), size_bytes});
        return *this;
    }
    SandboxBuilder& env(std::string key, std::string value) {
        m_config.env.emplace_back(std::move(key), std::move(value));
        return *this;
    }
    SandboxBuilder& workdir(std::string p) {
        m_config.workdir = std::move(p);
        return *this;
    }
    SandboxBuilder& user(std::string u) {
        m_config.user = std::move(u);
        return *this;
    }
    SandboxBuilder& hostname(std::string h) {
        m_config.hostname = std::move(h);
        return *this;
    }
    SandboxBuilder& idle_timeout(uint64_t secs) {
        m_config.idle_timeout_secs = secs;
        return *this;
    }
    SandboxBuilder& max_duration(uint64_t secs) {
        m_config.max_duration_secs = secs;
        return *this;
    }
    SandboxBuilder& kernel(std::string path) {
        m_config.kernel = std::move(path);
        return *this;
    }
    SandboxBuilder& log_level(std::string level) {
        m_config.log_level = std::move(level);
        return *this;
    }
    // Replace::Yes removes a stopped sandbox of the same name first (a running one is an error).
    SandboxBuilder& replace(Replace r) {
        m_replace = r;
        return *this;
    }

    const SandboxConfig& config() const { return m_config; }

    Result<Sandbox> create();
    Result<Sandbox> create_detached();

private:
    SandboxConfig m_config;
    Replace m_replace = Replace::No;
};

class Sandbox {
public:
    static SandboxBuilder builder(std::string name) { return SandboxBuilder(std::move(name)); }
    // A handle on an existing running sandbox (connects to its agent.sock).
    static Result<Sandbox> get(const std::string& name);
    // Store rows, repaired (a vanished process → Crashed), ordered by name.
    static Result<std::vector<SandboxInfo>> list();
    static Result<SandboxInfo> inspect(const std::string& name);
    // Deletes a sandbox that is not running: its row, runs, metrics and directories.
    static Status remove(const std::string& name);
    // Restarts a stopped sandbox from its stored config.
    static Result<Sandbox> start(const std::string& name, bool detached = true);
    // Connects to an agent socket directly (tests, tools); no store involved.
    static Result<Sandbox> connect(const std::string& agent_sock);

    Sandbox(Sandbox&&) noexcept;
    Sandbox& operator=(Sandbox&&) noexcept;
    ~Sandbox();

    const std::string& name() const { return m_name; }
    std::optional<pid_t> pid() const { return m_pid; }

    Result<ExecOutput> exec(const std::string& cmd, const std::vector<std::string>& args = {},
                            const ExecOptions& options = {});
    Result<ExecHandle> exec_stream(const std::string& cmd,
                                   const std::vector<std::string>& args = {},
                                   const ExecOptions& options = {});
    SandboxFs fs();
    Result<SandboxMetrics> metrics();

    // Sends core.shutdown and waits up to `timeout` for the process to exit.
    Status stop(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // SIGKILL to the sandbox process.
    Status kill();
    // Waits for the sandbox process to exit (up to `timeout`, 0: forever).
    Status wait(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

private:
    friend class SandboxBuilder;
    friend struct sdk::SandboxAccess;
    Sandbox() = default;
    std::string m_name;
    std::optional<pid_t> m_pid;
    bool m_is_child = false;  // we spawned it (reap with waitpid)
    std::shared_ptr<sdk::AgentClient> m_client;
};

}  // namespace msb
