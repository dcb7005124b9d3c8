// Starts `build/msb sandbox` as a child process, as the SDK does, and checks what it leaves in
// the store and on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/time.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "store/database.h"
#include "store/records.h"

namespace msb {
namespace {

namespace fs = std::filesystem;

struct ChildResult {
    int exit_code = -1;
    pid_t pid = -1;
    std::string out;
    std::string err;
};

std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
}

// Starts msb with stdout on a pipe; returns the pid and the pipe's read end.
std::pair<pid_t, UniqueFd> start_msb(const std::vector<std::string>& args) {
    auto out = MUST(Pipe::create());
    std::string exe = std::string(MSB_BINARY_DIR) + "/msb";
    std::vector<std::string> copy = args;
    std::vector<char*> argv{exe.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out.write.get(), 1);
        ::execv(exe.c_str(), argv.data());
        ::_exit(127);
    }
    return {pid, std::move(out.read)};
}

ChildResult run_msb(const std::vector<std::string>& args) {
    auto out = MUST(Pipe::create());
    auto err = MUST(Pipe::create());
    std::vector<char*> argv;
    std::string exe = std::string(MSB_BINARY_DIR) + "/msb";
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out.write.get(), 1);
        ::dup2(err.write.get(), 2);
        ::execv(exe.c_str(), argv.data());
        ::_exit(127);
    }
    out.write.reset();
    err.write.reset();
    ChildResult r;
    r.pid = pid;
    r.out = read_all(out.read.get());
    r.err = read_all(err.read.get());
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

class SandboxProcess : public ::testing::Test {
protected:
    void SetUp() override {
        home = fs::temp_directory_path() / ("msb-sandbox-test-" + std::to_string(::getpid()));
        fs::remove_all(home);
        fs::create_directories(home);
        db_path = (home / "msb.db").string();
        auto db = MUST(store::Database::open(db_path));
        sandbox_id = MUST(store::create_sandbox(db, "box", "{}"));
    }
    void TearDown() override { fs::remove_all(home); }

    std::vector<std::string> base_args() const {
        return {"sandbox",
                "--name",
                "box",
                "--sandbox-id",
                std::to_string(sandbox_id),
                "--db-path",
                db_path,
                "--log-dir",
                (home / "logs").string(),
                "--runtime-dir",
                (home / "runtime").string(),
                "--agent-sock",
                (home / "agent.sock").string()};
    }

    fs::path home;
    std::string db_path;
    int64_t sandbox_id = 0;
};

TEST_F(SandboxProcess, UnbuildableVmEndsAsInternalErrorWithReasonAndNoSocket) {
    auto args = base_args();
    args.insert(args.end(), {"--kernel", (home / "no-such-vmlinux").string()});
    ChildResult r = run_msb(args);

    // Start-up JSON first, with the child's own pid.
    EXPECT_EQ(r.out, "{\"pid\":" + std::to_string(r.pid) + "}\n");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("sandbox error: build VM:"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(home / "agent.sock"));

    auto db = MUST(store::Database::open(db_path));
    auto run = MUST(store::latest_run(db, sandbox_id));
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->pid, r.pid);
    EXPECT_EQ(run->status, store::RunStatus::Terminated);
    EXPECT_EQ(run->termination_reason, store::TerminationReason::InternalError);
    ASSERT_TRUE(run->termination_detail.has_value());
    EXPECT_NE(run->termination_detail->find("build VM"), std::string::npos);
    EXPECT_TRUE(run->terminated_at.has_value());
    EXPECT_EQ(MUST(store::get_sandbox_by_id(db, sandbox_id)).status, store::SandboxStatus::Stopped);

    // The same reason is in host.log.
    std::ifstream host_log(home / "logs" / "host.log");
    std::stringstream text;
    text << host_log.rdbuf();
    EXPECT_NE(text.str().find("build VM"), std::string::npos);
    EXPECT_TRUE(fs::is_directory(home / "runtime" / "scripts"));
}

TEST_F(SandboxProcess, MalformedMountAndDiskFlagsAreRejectedBeforeAnythingStarts) {
    auto args = base_args();
    args.insert(args.end(), {"--mount", "no-colon"});
    ChildResult r = run_msb(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("invalid mount 'no-colon'"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");

    args = base_args();
    args.insert(args.end(), {"--disk", "d:/x.img:iso"});
    r = run_msb(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("unknown disk image format: iso"), std::string::npos) << r.err;

    auto db = MUST(store::Database::open(db_path));
    EXPECT_FALSE(MUST(store::latest_run(db, sandbox_id)).has_value());  // nothing half-made
}

// --- with a real VM (needs /dev/kvm and the built guest kernel) --------------------------------

std::string kernel_path() {
    if (const char* k = std::getenv("MSB_TEST_KERNEL")) return k;
    std::string cache = std::getenv("MSB_CACHE") ? std::getenv("MSB_CACHE")
                                                 : std::string(std::getenv("HOME")) + "/.cache/msb";
    return cache + "/kernel/" MSB_KERNEL_KEY "/vmlinux";
}

// A minimal protocol client: connects, reads the relay handshake, runs one exec.
class Client {
public:
    static Result<Client> connect(const std::string& path, Deadline deadline) {
        for (;;) {
            UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
            if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
                Client c(std::move(fd));
                uint8_t off[4];
                if (!c.read_exact(off, 4)) return Error("no handshake");
                c.m_next_id = ((uint32_t{off[0]} << 24) | (uint32_t{off[1]} << 16) |
                               (uint32_t{off[2]} << 8) | off[3]) +
                              1;
                auto ready = c.next_message();
                if (!ready.ok()) return ready.error();
                if (ready->type != protocol::MessageType::Ready)
                    return Error("first frame is not core.ready");
                return c;
            }
            if (deadline.expired()) return Error::from_errno("connect " + path);
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    Result<protocol::Message> next_message() {
        uint8_t prefix[4];
        if (!read_exact(prefix, 4)) return Error("connection closed");
        uint32_t len = (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                       (uint32_t{prefix[2]} << 8) | prefix[3];
        TRY(protocol::check_frame_length(len));
        std::vector<uint8_t> bytes(4 + len);
        std::memcpy(bytes.data(), prefix, 4);
        if (!read_exact(bytes.data() + 4, len)) return Error("connection closed mid-frame");
        return protocol::decode_frame(bytes);
    }

    Status send(protocol::MessageType type, std::vector<uint8_t> payload, uint32_t id) {
        auto frame =
            TRY(protocol::encode_frame(protocol::make_message(type, id, std::move(payload))));
        return write_all(m_fd.get(), frame.data(), frame.size());
    }

    struct Output {
        std::string out;
        int code = -1;
    };
    Result<Output> exec(const std::string& cmd, std::vector<std::string> args) {
        uint32_t id = m_next_id++;
        protocol::ExecRequest req;
        req.cmd = cmd;
        req.args = std::move(args);
        TRY(send(protocol::MessageType::ExecRequest, protocol::encode_payload(req), id));
        Output o;
        for (;;) {
            auto m = TRY(next_message());
            if (m.id != id) continue;
            if (m.type == protocol::MessageType::ExecStdout) {
                auto d = TRY(protocol::decode_payload<protocol::ExecStdout>(m.payload));
                o.out.append(d.data.begin(), d.data.end());
            } else if (m.type == protocol::MessageType::ExecExited) {
                o.code = TRY(protocol::decode_payload<protocol::ExecExited>(m.payload)).code;
                return o;
            }
        }
    }

private:
    explicit Client(UniqueFd fd) : m_fd(std::move(fd)) {}
    bool read_exact(uint8_t* p, size_t n) {
        while (n > 0) {
            ssize_t r = ::read(m_fd.get(), p, n);
            if (r <= 0) return false;
            p += r;
            n -= static_cast<size_t>(r);
        }
        return true;
    }
    UniqueFd m_fd;
    uint32_t m_next_id = 1;
};

TEST_F(SandboxProcess, BootsExecsAndShutsDownGracefullyRecordingCompleted) {
    if (::access("/dev/kvm", R_OK | W_OK) != 0)
        GTEST_SKIP() << "/dev/kvm not available on this host";
    if (::access(kernel_path().c_str(), R_OK) != 0)
        GTEST_SKIP() << "guest kernel not built: " << kernel_path();
    auto args = base_args();
    args.insert(args.end(), {"--kernel", kernel_path(), "--ready-timeout", "120"});
    auto [pid, out] = start_msb(args);
    // Watchdog: whatever happens, the sandbox process does not outlive the test by much.
    std::thread watchdog([pid = pid] {
        for (int i = 0; i < 300 && ::kill(pid, 0) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::seconds(1));
        ::kill(pid, SIGKILL);
    });
    watchdog.detach();

    auto client =
        Client::connect((home / "agent.sock").string(), Deadline::after(std::chrono::seconds(150)));
    ASSERT_TRUE(client.ok()) << client.error().message();
    auto echo = client->exec("echo", {"hello", "from", "msb"});
    ASSERT_TRUE(echo.ok()) << echo.error().message();
    EXPECT_EQ(echo->out, "hello from msb\n");
    EXPECT_EQ(echo->code, 0);
    auto three = client->exec("sh", {"-c", "exit 3"});
    ASSERT_TRUE(three.ok());
    EXPECT_EQ(three->code, 3);

    ASSERT_TRUE(client
                    ->send(protocol::MessageType::Shutdown,
                           protocol::encode_payload(protocol::Shutdown{}), 0)
                    .ok());
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(fs::exists(home / "agent.sock"));
    auto db = MUST(store::Database::open(db_path));
    auto run = MUST(store::latest_run(db, sandbox_id));
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->status, store::RunStatus::Terminated);
    EXPECT_EQ(run->termination_reason, store::TerminationReason::Completed);
    EXPECT_EQ(run->exit_code, 0);
}

TEST_F(SandboxProcess, MainCommandStatusEndsTheSandboxAsFailed) {
    if (::access("/dev/kvm", R_OK | W_OK) != 0)
        GTEST_SKIP() << "/dev/kvm not available on this host";
    if (::access(kernel_path().c_str(), R_OK) != 0)
        GTEST_SKIP() << "guest kernel not built: " << kernel_path();
    auto args = base_args();
    args.insert(args.end(),
                {"--kernel", kernel_path(), "--exec-path", "/bin/sh", "--", "-c", "exit 3"});
    ChildResult r = run_msb(args);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    auto db = MUST(store::Database::open(db_path));
    auto run = MUST(store::latest_run(db, sandbox_id));
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->termination_reason, store::TerminationReason::Failed);
    EXPECT_EQ(run->exit_code, 3);
}

}  // namespace
}  // namespace msb
