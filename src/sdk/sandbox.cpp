// The SDK: sandbox lifecycle on top of the store and the `msb sandbox` process, and the
// exec/fs client on top of AgentClient.
#include "msb/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/time.h"
#include "base/unique_fd.h"
#include "protocol/messages.h"
#include "sdk/client.h"
#include "sdk/util.h"
#include "store/database.h"
#include "store/records.h"

namespace msb {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::MessageType;

namespace {

constexpr auto kRequestTimeout = 120s;

std::string msb_binary() {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec && self.filename() == "msb") return self.string();
    if (const char* env = std::getenv("MSB_BIN"); env && *env) return env;
    if (!ec) {
        auto beside = self.parent_path() / "msb";
        if (fs::exists(beside, ec)) return beside.string();
    }
#ifdef MSB_DEFAULT_BIN
    return MSB_DEFAULT_BIN;
#else
    return "msb";
#endif
}

std::chrono::milliseconds ready_timeout() {
    if (const char* env = std::getenv("MSB_READY_TIMEOUT"); env && *env) {
        auto d = sdk::parse_duration_ms(env);
        if (d.ok()) return *d;
    }
    return 300s;
}

Result<store::Database> open_db(const std::string& home) {
    return store::Database::open(sdk::db_path(home));
}

// Marks a sandbox Crashed when its row says Running but its process is gone.
Status repair(store::Database& db, store::SandboxRecord& record) {
    if (record.status != store::SandboxStatus::Running &&
        record.status != store::SandboxStatus::Draining)
        return {};
    auto run = TRY(store::latest_run(db, record.id));
    if (!run || run->status != store::RunStatus::Running || !run->pid) return {};
    if (sdk::sandbox_process_alive(static_cast<pid_t>(*run->pid))) return {};
    TRY(store::mark_sandbox_crashed(db, record.id, "sandbox process vanished"));
    record.status = store::SandboxStatus::Crashed;
    return {};
}

// The live pid of a sandbox, if its latest run is Running and the process exists.
Result<std::optional<pid_t>> live_pid(store::Database& db, int64_t sandbox_id) {
    auto run = TRY(store::latest_run(db, sandbox_id));
    if (run && run->status == store::RunStatus::Running && run->pid &&
        sdk::sandbox_process_alive(static_cast<pid_t>(*run->pid)))
        return std::optional<pid_t>(static_cast<pid_t>(*run->pid));
    return std::optional<pid_t>();
}

Result<SandboxInfo> make_info(store::Database& db, const std::string& home,
                              store::SandboxRecord record) {
    TRY(repair(db, record));
    SandboxInfo info;
    info.id = record.id;
    info.name = record.name;
    info.status = std::string(store::to_string(record.status));
    info.config_json = record.config;
    info.created_at = record.created_at;
    info.updated_at = record.updated_at;
    if (auto run = TRY(store::latest_run(db, record.id))) {
        RunInfo r;
        r.id = run->id;
        r.pid = run->pid;
        r.status = std::string(store::to_string(run->status));
        r.exit_code = run->exit_code;
        if (run->termination_reason)
            r.reason = std::string(store::to_string(*run->termination_reason));
        r.detail = run->termination_detail;
        r.started_at = run->started_at;
        r.terminated_at = run->terminated_at;
        info.latest_run = r;
    }
    info.pid = TRY(live_pid(db, record.id));
    info.dir = sdk::sandbox_dir(home, record.name);
    info.agent_sock = sdk::agent_socket_path(home, record.name).value_or("");
    return info;
}

Status validate_config(const SandboxConfig& c) {
    TRY(sdk::validate_name(c.name));
    std::error_code ec;
    if (c.cpus == 0 || c.cpus > 64)
        return Error("invalid cpu count " + std::to_string(c.cpus) + ": use 1 to 64");
    if (c.memory_mib < 16)
        return Error("invalid memory " + std::to_string(c.memory_mib) + " MiB: use at least 16M");
    if (c.rootfs && !fs::is_directory(*c.rootfs, ec))
        return Error("rootfs directory " + *c.rootfs +
                     " does not exist; pass an existing directory to --rootfs");
    if (c.disk && !fs::is_regular_file(c.disk->path, ec))
        return Error("disk image " + c.disk->path +
                     " does not exist; pass an existing image to --disk");
    for (const auto& v : c.volumes)
        if (!fs::is_directory(v.host, ec))
            return Error("volume source " + v.host + " is not a directory; create it or fix -v " +
                         v.host + ":" + v.guest);
    if (c.kernel && !fs::is_regular_file(*c.kernel, ec))
        return Error("kernel " + *c.kernel + " does not exist; pass an existing file to --kernel");
    return {};
}

std::vector<std::string> sandbox_args(const SandboxConfig& c, int64_t id, const std::string& home,
                                      const std::string& sock) {
    std::string dir = sdk::sandbox_dir(home, c.name);
    std::vector<std::string> a = {msb_binary(),
                                  "sandbox",
                                  "--name",
                                  c.name,
                                  "--sandbox-id",
                                  std::to_string(id),
                                  "--db-path",
                                  sdk::db_path(home),
                                  "--log-dir",
                                  dir + "/logs",
                                  "--runtime-dir",
                                  dir + "/runtime",
                                  "--agent-sock",
                                  sock,
                                  "--vcpus",
                                  std::to_string(c.cpus),
                                  "--memory-mib",
                                  std::to_string(c.memory_mib),
                                  "--sandbox-log-level",
                                  c.log_level,
                                  "--ready-timeout",
                                  std::to_string((ready_timeout().count() + 999) / 1000)};
    if (c.max_duration_secs)
        a.insert(a.end(), {"--max-duration", std::to_string(c.max_duration_secs)});
    if (c.idle_timeout_secs)
        a.insert(a.end(), {"--idle-timeout", std::to_string(c.idle_timeout_secs)});
    if (c.kernel) a.insert(a.end(), {"--kernel", fs::absolute(*c.kernel).string()});
    if (c.rootfs) a.insert(a.end(), {"--rootfs-path", fs::absolute(*c.rootfs).string()});
    if (c.disk) {
        a.insert(a.end(), {"--rootfs-disk", fs::absolute(c.disk->path).string(),
                           "--rootfs-disk-format", c.disk->format});
        if (c.disk->access == Access::ReadOnly) a.push_back("--rootfs-disk-readonly");
    }
    std::string dir_mounts;
    for (size_t i = 0; i < c.volumes.size(); i++) {
        const auto& v = c.volumes[i];
        std::string tag = "vol" + std::to_string(i);
        a.insert(a.end(), {"--mount", tag + ":" + fs::absolute(v.host).string() +
                                          (v.access == Access::ReadOnly ? ":ro" : "")});
        if (!dir_mounts.empty()) dir_mounts += ";";
        dir_mounts += tag + ":" + v.guest + (v.access == Access::ReadOnly ? ":ro" : "");
    }
    auto env = [&](std::string_view k, const std::string& v) {
        a.insert(a.end(), {"--env", std::string(k) + "=" + v});
    };
    if (!dir_mounts.empty()) env(protocol::kEnvDirMounts, dir_mounts);
    std::string tmpfs;
    for (const auto& t : c.tmpfs) {
        if (!tmpfs.empty()) tmpfs += ";";
        tmpfs += t.path;
        if (t.size_bytes)
            tmpfs += ",size=" + std::to_string(std::max<uint64_t>(1, t.size_bytes >> 20));
    }
    if (!tmpfs.empty()) env(protocol::kEnvTmpfs, tmpfs);
    if (c.hostname) env(protocol::kEnvHostname, *c.hostname);
    if (c.user) env(protocol::kEnvUser, *c.user);
    for (const auto& [k, v] : c.env) a.insert(a.end(), {"--env", k + "=" + v});
    if (c.workdir) a.insert(a.end(), {"--workdir", *c.workdir});
    return a;
}

enum class Detach { No, Yes };

struct Spawned {
    pid_t pid = -1;
    bool is_child = false;
    UniqueFd stderr_read;
};

// Forks the sandbox process with stdout → a pipe (startup JSON) and stderr → a pipe (its error
// line). Detached: double fork + setsid, so it is nobody's child and outlives us. Otherwise
// PR_SET_PDEATHSIG(SIGTERM): it stops when the creating thread exits.
Result<Spawned> spawn(const std::vector<std::string>& args, Detach detach) {
    auto out = TRY(Pipe::create());
    auto err = TRY(Pipe::create());
    std::vector<char*> argv;
    for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return Error::from_errno("fork");
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        ::dup2(devnull, STDIN_FILENO);
        ::dup2(out.write.get(), STDOUT_FILENO);
        ::dup2(err.write.get(), STDERR_FILENO);
        if (detach == Detach::Yes) {
            ::setsid();
            pid_t grandchild = ::fork();
            if (grandchild != 0) ::_exit(grandchild < 0 ? 127 : 0);
        } else {
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
        }
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(argv[0], argv.data());
        std::string msg = "sandbox error: cannot run " + args[0] + ": " + std::strerror(errno) +
                          "; set MSB_BIN to the msb binary\n";
        (void)!::write(STDERR_FILENO, msg.data(), msg.size());
        ::_exit(127);
    }
    out.write.reset();
    err.write.reset();
    Spawned s;
    s.is_child = detach == Detach::No;
    if (detach == Detach::Yes) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    } else {
        s.pid = pid;
    }
    // Startup JSON: {"pid":N}\n
    std::string line;
    auto deadline = Deadline::after(10s);
    while (line.find('\n') == std::string::npos && !deadline.expired()) {
        pollfd p{out.read.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(deadline.remaining(100ms).count())) <= 0) continue;
        char buf[256];
        ssize_t n = ::read(out.read.get(), buf, sizeof buf);
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
    }
    auto j = nlohmann::json::parse(line.substr(0, line.find('\n')), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("pid") && j["pid"].is_number_integer())
        s.pid = j["pid"].get<pid_t>();
    s.stderr_read = std::move(err.read);
    if (s.pid <= 0) {
        // Nothing usable: collect whatever it said.
        char buf[4096];
        std::string text;
        (void)set_nonblocking(s.stderr_read.get());
        ssize_t n = ::read(s.stderr_read.get(), buf, sizeof buf);
        if (n > 0) text.assign(buf, static_cast<size_t>(n));
        if (s.is_child) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        while (!text.empty() && text.back() == '\n') text.pop_back();
        return Error(text.empty() ? "sandbox process did not report its pid" : text);
    }
    return s;
}

bool reap_if_exited(pid_t pid, bool is_child) {
    if (is_child) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        return r == pid || (r < 0 && errno == ECHILD);
    }
    return !sdk::sandbox_process_alive(pid);
}

// The one line explaining why a sandbox process exited early.
std::string failure_reason(int stderr_fd, const std::string& log_dir) {
    std::string text;
    (void)set_nonblocking(stderr_fd);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stderr_fd, buf, sizeof buf)) > 0 && text.size() < 65536)
        text.append(buf, static_cast<size_t>(n));
    std::string reason;
    auto pos = text.rfind("sandbox error: ");
    if (pos != std::string::npos) {
        reason = text.substr(pos + 15);
        reason = reason.substr(0, reason.find('\n'));
    }
    if (reason.empty()) {
        for (const auto& l : sdk::tail_rotated_log(log_dir + "/host.log", 20))
            if (l.find("sandbox error: ") != std::string::npos)
                reason = l.substr(l.find("sandbox error: ") + 15);
    }
    if (reason.empty()) reason = "the sandbox process exited during start-up";
    auto guest = sdk::tail_rotated_log(log_dir + "/guest.log", 5);
    if (!guest.empty()) {
        reason += " (guest.log: ";
        for (size_t i = 0; i < guest.size(); i++) reason += (i ? " | " : "") + guest[i];
        reason += ")";
    }
    if (reason.find("/dev/kvm") != std::string::npos &&
        reason.find("No such file") != std::string::npos)
        reason =
            "/dev/kvm not found: this machine has no KVM (enable virtualization or load kvm) — " +
            reason;
    return reason;
}

Status remove_files(const std::string& home, const std::string& name) {
    std::error_code ec;
    fs::remove_all(sdk::sandbox_dir(home, name), ec);
    if (auto sock = sdk::agent_socket_path(home, name); sock.ok()) ::unlink(sock->c_str());
    return {};
}

}  // namespace

namespace sdk {
struct SandboxAccess {
    static Sandbox make(std::string name, std::optional<pid_t> pid, bool is_child,
                        std::shared_ptr<AgentClient> client) {
        Sandbox sandbox;
        sandbox.m_name = std::move(name);
        sandbox.m_pid = pid;
        sandbox.m_is_child = is_child;
        sandbox.m_client = std::move(client);
        return sandbox;
    }
};
}  // namespace sdk

struct Launch {
    SandboxConfig config;
    int64_t id;
    std::string home;
    Detach detach;
};

Result<Sandbox> launch(const Launch& l) {
    auto sock = TRY(sdk::agent_socket_path(l.home, l.config.name));
    std::string dir = sdk::sandbox_dir(l.home, l.config.name);
    std::error_code ec;
    fs::create_directories(dir + "/logs", ec);
    fs::create_directories(dir + "/runtime", ec);
    fs::create_directories(l.home + "/run", ec);
    if (ec) return Error("create " + dir + ": " + ec.message());
    ::unlink(sock.c_str());

    auto spawned = TRY(spawn(sandbox_args(l.config, l.id, l.home, sock), l.detach));
    auto fail = [&](std::string reason) -> Error {
        if (sdk::sandbox_process_alive(spawned.pid) || spawned.is_child)
            ::kill(spawned.pid, SIGKILL);
        if (spawned.is_child) ::waitpid(spawned.pid, nullptr, 0);
        return Error("cannot start sandbox: " + reason);
    };
    auto deadline = Deadline::after(ready_timeout());
    bool exited = false;
    auto alive = [&] {
        if (!exited) exited = reap_if_exited(spawned.pid, spawned.is_child);
        return !exited;
    };
    std::shared_ptr<sdk::AgentClient> client;
    while (true) {
        if (!alive()) return fail(failure_reason(spawned.stderr_read.get(), dir + "/logs"));
        if (deadline.expired())
            return fail("the sandbox did not become ready within " +
                        std::to_string(ready_timeout().count() / 1000) +
                        " s (MSB_READY_TIMEOUT); see " + dir + "/logs/guest.log");
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
            auto c = sdk::AgentClient::from_fd(std::move(fd), deadline.remaining(), alive);
            if (c.ok()) {
                client = std::move(c).value();
                break;
            }
            continue;
        }
        std::this_thread::sleep_for(50ms);
    }
    return sdk::SandboxAccess::make(l.config.name, spawned.pid, spawned.is_child,
                                    std::move(client));
}

namespace {

Result<Sandbox> create_impl(SandboxConfig config, Replace replace, Detach detach) {
    bool auto_named = config.name.empty();
    if (auto_named) config.name = sdk::random_name();
    TRY(validate_config(config));
    std::string home = sdk::msb_home();
    TRY(sdk::agent_socket_path(home, config.name));
    auto db = TRY(open_db(home));

    int64_t id = 0;
    for (int attempt = 0;; attempt++) {
        Status st = db.transaction(store::TransactionKind::Immediate, [&]() -> Status {
            auto existing = TRY(store::find_sandbox(db, config.name));
            if (existing) {
                TRY(repair(db, *existing));
                bool running = TRY(live_pid(db, existing->id)).has_value();
                if (replace == Replace::No || running)
                    return Error("sandbox '" + config.name + "' already exists" +
                                     (running ? " and is running; stop it first"
                                              : "; remove it with `msb rm " + config.name +
                                                    "` or pick another name"),
                                 EEXIST);
                TRY(store::delete_sandbox(db, existing->id));
                TRY(remove_files(home, config.name));
            }
            id = TRY(store::create_sandbox(db, config.name, sdk::config_to_json(config)));
            return {};
        });
        if (st.ok()) break;
        if (auto_named && st.error().code() == EEXIST && attempt < 5) {
            config.name = sdk::random_name();
            continue;
        }
        return st.error();
    }
    auto sandbox = launch({config, id, home, detach});
    if (!sandbox.ok()) {
        if (auto row = store::find_sandbox_by_id(db, id); row.ok() && *row)
            (void)store::delete_sandbox(db, id);
        (void)remove_files(home, config.name);
        return std::move(sandbox).error();
    }
    return sandbox;
}

}  // namespace

Result<Sandbox> SandboxBuilder::create() { return create_impl(m_config, m_replace, Detach::No); }
Result<Sandbox> SandboxBuilder::create_detached() {
    return create_impl(m_config, m_replace, Detach::Yes);
}

Result<Sandbox> Sandbox::start(const std::string& name, bool detached) {
    TRY(sdk::validate_name(name));
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    auto record = TRY(store::get_sandbox(db, name));
    TRY(repair(db, record));
    if (TRY(live_pid(db, record.id))) return Error("sandbox '" + name + "' is already running");
    auto config = TRY(sdk::config_from_json(record.config));
    config.name = name;
    TRY(store::update_sandbox_status(db, record.id, store::SandboxStatus::Running));
    auto sandbox = launch({config, record.id, home, detached ? Detach::Yes : Detach::No});
    if (!sandbox.ok())
        (void)store::update_sandbox_status(db, record.id, store::SandboxStatus::Stopped);
    return sandbox;
}

Result<Sandbox> Sandbox::get(const std::string& name) {
    TRY(sdk::validate_name(name));
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    auto record = TRY(store::find_sandbox(db, name));
    if (!record) return Error("sandbox '" + name + "' not found; see `msb ls`", ENOENT);
    TRY(repair(db, *record));
    auto pid = TRY(live_pid(db, record->id));
    if (!pid)
        return Error("sandbox '" + name + "' is not running (" +
                     std::string(store::to_string(record->status)) +
                     "); start it with `msb start " + name + "`");
    Sandbox sandbox;
    sandbox.m_name = name;
    sandbox.m_pid = *pid;
    sandbox.m_client = TRY(sdk::AgentClient::connect(TRY(sdk::agent_socket_path(home, name)), 30s));
    return sandbox;
}

Result<Sandbox> Sandbox::connect(const std::string& agent_sock) {
    Sandbox sandbox;
    sandbox.m_client = TRY(sdk::AgentClient::connect(agent_sock, 30s));
    return sandbox;
}

Result<std::vector<SandboxInfo>> Sandbox::list() {
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    std::vector<SandboxInfo> out;
    for (auto& record : TRY(store::list_sandboxes(db)))
        out.push_back(TRY(make_info(db, home, std::move(record))));
    return out;
}

Result<SandboxInfo> Sandbox::inspect(const std::string& name) {
    TRY(sdk::validate_name(name));
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    auto record = TRY(store::find_sandbox(db, name));
    if (!record) return Error("sandbox '" + name + "' not found; see `msb ls`", ENOENT);
    return make_info(db, home, std::move(*record));
}

Status Sandbox::remove(const std::string& name) {
    TRY(sdk::validate_name(name));
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    auto record = TRY(store::find_sandbox(db, name));
    if (!record) return Error("sandbox '" + name + "' not found; see `msb ls`", ENOENT);
    TRY(repair(db, *record));
    if (TRY(live_pid(db, record->id)))
        return Error("sandbox '" + name + "' is running; stop it first (`msb stop " + name +
                         "`) or use `msb rm -f`",
                     EBUSY);
    TRY(store::delete_sandbox(db, record->id));
    return remove_files(home, name);
}

Sandbox::Sandbox(Sandbox&&) noexcept = default;
Sandbox& Sandbox::operator=(Sandbox&&) noexcept = default;
Sandbox::~Sandbox() = default;

// --- exec -------------------------------------------------------------------------------------

ExecHandle::ExecHandle(std::shared_ptr<sdk::AgentClient> client,
                       std::shared_ptr<sdk::Channel> channel)
    : m_client(std::move(client)), m_channel(std::move(channel)) {}
ExecHandle::ExecHandle(ExecHandle&&) noexcept = default;
ExecHandle& ExecHandle::operator=(ExecHandle&&) noexcept = default;
ExecHandle::~ExecHandle() {
    if (m_client && m_channel) m_client->close_channel(m_channel->id);
}
uint32_t ExecHandle::id() const { return m_channel->id; }

Result<ExecEvent> ExecHandle::next_event(std::chrono::milliseconds timeout) {
    while (true) {
        auto m = TRY(m_channel->pop(timeout));
        ExecEvent e;
        switch (m.type) {
            case MessageType::ExecStarted:
                e.kind = ExecEventKind::Started;
                e.pid = TRY(protocol::decode_payload<protocol::ExecStarted>(m.payload)).pid;
                return e;
            case MessageType::ExecStdout: {
                auto p = TRY(protocol::decode_payload<protocol::ExecStdout>(m.payload));
                e.kind = ExecEventKind::Stdout;
                e.data.assign(p.data.begin(), p.data.end());
                return e;
            }
            case MessageType::ExecStderr: {
                auto p = TRY(protocol::decode_payload<protocol::ExecStderr>(m.payload));
                e.kind = ExecEventKind::Stderr;
                e.data.assign(p.data.begin(), p.data.end());
                return e;
            }
            case MessageType::ExecExited:
                e.kind = ExecEventKind::Exited;
                e.exit_code = TRY(protocol::decode_payload<protocol::ExecExited>(m.payload)).code;
                return e;
            default:
                continue;  // not part of an exec session: ignore
        }
    }
}

Status ExecHandle::write_stdin(std::string_view data) {
    if (data.empty()) return {};
    for (size_t off = 0; off < data.size(); off += protocol::kFsChunkSize) {
        auto chunk = data.substr(off, protocol::kFsChunkSize);
        TRY(m_client->send_message(m_channel->id,
                                   protocol::ExecStdin{{chunk.begin(), chunk.end()}}));
    }
    return {};
}
Status ExecHandle::close_stdin() {
    return m_client->send_message(m_channel->id, protocol::ExecStdin{});
}
Status ExecHandle::signal(int signo) {
    return m_client->send_message(m_channel->id, protocol::ExecSignal{.signal = signo});
}
Status ExecHandle::resize(uint16_t rows, uint16_t cols) {
    return m_client->send_message(m_channel->id, protocol::ExecResize{.rows = rows, .cols = cols});
}
Result<int> ExecHandle::wait() {
    while (true) {
        auto e = TRY(next_event());
        if (e.kind == ExecEventKind::Exited) return e.exit_code;
    }
}

Result<ExecHandle> Sandbox::exec_stream(const std::string& cmd,
                                        const std::vector<std::string>& args,
                                        const ExecOptions& options) {
    if (!m_client) return Error("sandbox is not connected");
    auto channel = TRY(m_client->open_channel());
    protocol::ExecRequest request;
    request.cmd = cmd;
    request.args = args;
    for (const auto& [k, v] : options.env) request.env.push_back(k + "=" + v);
    request.cwd = options.workdir;
    request.user = options.user;
    request.tty = options.tty;
    request.rows = options.rows;
    request.cols = options.cols;
    auto st = m_client->send_message(channel->id, request);
    if (!st.ok()) {
        m_client->close_channel(channel->id);
        return st.error();
    }
    return ExecHandle(m_client, channel);
}

Result<ExecOutput> Sandbox::exec(const std::string& cmd, const std::vector<std::string>& args,
                                 const ExecOptions& options) {
    auto handle = TRY(exec_stream(cmd, args, options));
    if (options.stdin_data) TRY(handle.write_stdin(*options.stdin_data));
    TRY(handle.close_stdin());
    ExecOutput out;
    auto deadline =
        options.timeout.count() > 0 ? Deadline::after(options.timeout) : Deadline::never();
    bool killed = false;
    while (true) {
        auto wait =
            options.timeout.count() > 0 && !killed ? std::max(deadline.remaining(), 1ms) : 0ms;
        auto e = handle.next_event(wait);
        if (!e.ok()) {
            if (e.error().code() == ETIMEDOUT && !killed) {
                (void)handle.signal(SIGKILL);
                killed = true;
                continue;
            }
            return std::move(e).error();
        }
        if (e->kind == ExecEventKind::Stdout) out.stdout_data += e->data;
        if (e->kind == ExecEventKind::Stderr) out.stderr_data += e->data;
        if (e->kind == ExecEventKind::Exited) {
            out.exit_code = e->exit_code;
            if (killed)
                return Error(
                    "command timed out after " + std::to_string(options.timeout.count()) + " ms",
                    ETIMEDOUT);
            return out;
        }
    }
}

// --- fs ---------------------------------------------------------------------------------------

namespace {

FsEntry to_entry(const protocol::FsEntryInfo& e) {
    return {e.path, e.kind, e.size, e.mode, e.modified};
}

// Waits for the core.fs.response of `channel`, collecting core.fs.data into `data`.
Result<protocol::FsResponse> await_response(sdk::Channel& channel, std::string* data) {
    while (true) {
        auto m = TRY(channel.pop(kRequestTimeout));
        if (m.type == MessageType::FsData) {
            auto d = TRY(protocol::decode_payload<protocol::FsData>(m.payload));
            if (data) data->append(d.data.begin(), d.data.end());
            continue;
        }
        if (m.type == MessageType::FsResponse) {
            auto r = TRY(protocol::decode_payload<protocol::FsResponse>(m.payload));
            if (!r.ok) return Error(r.error.value_or("filesystem operation failed"));
            return r;
        }
    }
}

Result<protocol::FsResponse> fs_call(sdk::AgentClient& client, protocol::FsOp op,
                                     std::string* data = nullptr,
                                     const std::string_view* upload = nullptr) {
    auto channel = TRY(client.open_channel());
    struct Close {
        sdk::AgentClient& c;
        uint32_t id;
        ~Close() { c.close_channel(id); }
    } close{client, channel->id};
    TRY(client.send_message(channel->id, protocol::FsRequest{std::move(op)}));
    if (upload) {
        for (size_t off = 0; off < upload->size(); off += protocol::kFsChunkSize) {
            auto chunk = upload->substr(off, protocol::kFsChunkSize);
            TRY(client.send_message(channel->id, protocol::FsData{{chunk.begin(), chunk.end()}}));
        }
        TRY(client.send_message(channel->id, protocol::FsData{}));
    }
    return await_response(*channel, data);
}

}  // namespace

SandboxFs Sandbox::fs() { return SandboxFs(m_client); }

Result<std::string> SandboxFs::read(const std::string& path) {
    if (!m_client) return Error("sandbox is not connected");
    std::string data;
    TRY(fs_call(*m_client, protocol::FsOp::read(path), &data));
    return data;
}
Status SandboxFs::write(const std::string& path, std::string_view data,
                        std::optional<uint32_t> mode) {
    if (!m_client) return Error("sandbox is not connected");
    TRY(fs_call(*m_client, protocol::FsOp::write(path, mode), nullptr, &data));
    return {};
}
Result<std::vector<FsEntry>> SandboxFs::list(const std::string& path) {
    if (!m_client) return Error("sandbox is not connected");
    auto r = TRY(fs_call(*m_client, protocol::FsOp::list(path)));
    std::vector<FsEntry> out;
    for (const auto& e : r.entries) out.push_back(to_entry(e));
    return out;
}
Result<FsEntry> SandboxFs::stat(const std::string& path) {
    if (!m_client) return Error("sandbox is not connected");
    auto r = TRY(fs_call(*m_client, protocol::FsOp::stat(path)));
    if (r.entries.empty()) return Error("stat " + path + ": empty answer from the sandbox");
    return to_entry(r.entries[0]);
}
#define MSB_SIMPLE_FS(method, factory, ...)                            \
    Status SandboxFs::method {                                         \
        if (!m_client) return Error("sandbox is not connected");       \
        TRY(fs_call(*m_client, protocol::FsOp::factory(__VA_ARGS__))); \
        return {};                                                     \
    }
MSB_SIMPLE_FS(mkdir(const std::string& path), mkdir, path)
MSB_SIMPLE_FS(remove(const std::string& path), remove, path)
MSB_SIMPLE_FS(remove_dir(const std::string& path), remove_dir, path)
MSB_SIMPLE_FS(copy(const std::string& src, const std::string& dst), copy, src, dst)
MSB_SIMPLE_FS(rename(const std::string& src, const std::string& dst), rename, src, dst)
#undef MSB_SIMPLE_FS

Result<bool> SandboxFs::exists(const std::string& path) {
    if (!m_client) return Error("sandbox is not connected");
    auto r = fs_call(*m_client, protocol::FsOp::stat(path));
    if (r.ok()) return true;
    if (!m_client->connected()) return std::move(r).error();
    return false;
}

Status SandboxFs::copy_from_host(const std::string& host_path, const std::string& guest_path) {
    std::ifstream in(host_path, std::ios::binary);
    if (!in) return Error::from_errno("open " + host_path);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::error_code ec;
    auto perms = static_cast<uint32_t>(fs::status(host_path, ec).permissions()) & 07777;
    return write(guest_path, data, perms);
}

Status SandboxFs::copy_to_host(const std::string& guest_path, const std::string& host_path) {
    auto data = TRY(read(guest_path));
    std::ofstream out(host_path, std::ios::binary | std::ios::trunc);
    if (!out) return Error::from_errno("open " + host_path);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) return Error::from_errno("write " + host_path);
    return {};
}

// --- lifecycle ----------------------------------------------------------------------------------

Result<SandboxMetrics> Sandbox::metrics() {
    std::string home = sdk::msb_home();
    auto db = TRY(open_db(home));
    auto record = TRY(store::get_sandbox(db, m_name));
    auto samples = TRY(store::list_metrics(db, record.id, 1));
    SandboxMetrics m;
    if (!samples.empty()) {
        const auto& s = samples[0].sample;
        m.cpu_percent = s.cpu_percent;
        m.memory_bytes = s.memory_bytes;
        m.disk_read_bytes = s.disk_read_bytes;
        m.disk_write_bytes = s.disk_write_bytes;
        m.sampled_at = s.sampled_at;
    }
    return m;
}

Status Sandbox::wait(std::chrono::milliseconds timeout) {
    if (!m_pid) return {};
    auto deadline = timeout.count() > 0 ? Deadline::after(timeout) : Deadline::never();
    while (!reap_if_exited(*m_pid, m_is_child)) {
        if (deadline.expired())
            return Error("sandbox '" + m_name + "' did not exit in time", ETIMEDOUT);
        std::this_thread::sleep_for(20ms);
    }
    m_is_child = false;
    m_pid.reset();
    return {};
}

Status Sandbox::stop(std::chrono::milliseconds timeout) {
    if (m_client && m_client->connected()) {
        auto id = TRY(m_client->allocate_id());
        (void)m_client->send_message(id, protocol::Shutdown{});
    } else if (m_pid) {
        ::kill(*m_pid, SIGTERM);
    }
    auto st = wait(timeout);
    if (!st.ok() && m_pid) {
        TRY(kill());
        return Error("sandbox '" + m_name + "' did not stop within " +
                     std::to_string(timeout.count() / 1000) + " s; it was killed");
    }
    return st;
}

Status Sandbox::kill() {
    if (!m_pid) return {};
    pid_t pid = *m_pid;
    if (::kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return Error::from_errno("kill sandbox process");
    TRY(wait(10s));
    if (!m_name.empty()) {
        auto db = TRY(open_db(sdk::msb_home()));
        if (auto record = TRY(store::find_sandbox(db, m_name))) {
            auto run = TRY(store::latest_run(db, record->id));
            if (run && run->status == store::RunStatus::Running && run->pid == pid) {
                TRY(store::finalize_run(db, run->id,
                                        {.exit_signal = SIGKILL,
                                         .reason = store::TerminationReason::Signal,
                                         .detail = "killed by msb"}));
                TRY(store::update_sandbox_status(db, record->id, store::SandboxStatus::Stopped));
            }
        }
    }
    return {};
}

}  // namespace msb
