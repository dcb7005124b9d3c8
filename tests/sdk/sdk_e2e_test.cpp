// The SDK end to end without a VM: SDK client ⇄ agent.sock ⇄ the real runtime::Relay ⇄ two
// ByteRings ⇄ a bridge thread ⇄ socketpair ⇄ the real agent::AgentService. Only the VM (and the
// virtio console between the rings and the agent) is missing.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/agent_service.h"
#include "base/event_loop.h"
#include "msb/sandbox.h"
#include "runtime/byte_ring.h"
#include "runtime/relay.h"

namespace msb {
namespace {

using namespace std::chrono_literals;

class FakeSandbox {
public:
    FakeSandbox() {
        // The agent reaps children through a signalfd: SIGCHLD must be blocked in every thread.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);

        char tmpl[] = "/tmp/msb-sdk-e2e-XXXXXX";
        dir = ::mkdtemp(tmpl);
        to_guest = MUST(runtime::ByteRing::create(1 << 20));
        from_guest = MUST(runtime::ByteRing::create(1 << 20));
        relay = MUST(runtime::Relay::create({.socket_path = sock()}, *to_guest, *from_guest));
        relay_thread = std::thread([this] { EXPECT_TRUE(relay->run().ok()); });

        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        agent_end.reset(fds[0]);
        bridge_end.reset(fds[1]);
        MUST(set_nonblocking(bridge_end.get()));
        loop = std::make_unique<EventLoop>(MUST(EventLoop::create()));
        agent::ServiceOptions options;
        options.read_fd = options.write_fd = agent_end.get();
        options.base_env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
        options.scripts_dir = dir + "/scripts";
        service = MUST(agent::AgentService::create(*loop, std::move(options)));
        MUST(service->start());
        agent_thread = std::thread([this] { (void)loop->run(); });
        bridge_thread = std::thread([this] { bridge(); });
    }
    ~FakeSandbox() {
        stopping = true;
        relay->stop();
        loop->stop();
        bridge_thread.join();
        relay_thread.join();
        agent_thread.join();
        service.reset();
        std::filesystem::remove_all(dir);
    }
    std::string sock() const { return dir + "/agent.sock"; }

    // Moves bytes between the agent's socketpair and the relay's rings (the console's job).
    void bridge() {
        std::vector<uint8_t> up, down(64 * 1024);
        while (!stopping) {
            bool idle = true;
            if (up.size() < (1 << 20)) {
                uint8_t buf[65536];
                ssize_t n = ::read(bridge_end.get(), buf, sizeof buf);
                if (n > 0) {
                    up.insert(up.end(), buf, buf + n);
                    idle = false;
                }
            }
            if (!up.empty()) {
                size_t w = from_guest->write(up);
                up.erase(up.begin(), up.begin() + static_cast<long>(w));
                if (w) idle = false;
            }
            size_t r = to_guest->read(down);
            if (r) {
                size_t off = 0;
                while (off < r && !stopping) {
                    ssize_t n = ::write(bridge_end.get(), down.data() + off, r - off);
                    if (n > 0) {
                        off += static_cast<size_t>(n);
                    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        ADD_FAILURE() << "bridge write: " << std::strerror(errno);
                        return;
                    } else {
                        pollfd p{bridge_end.get(), POLLOUT, 0};
                        ::poll(&p, 1, 10);
                    }
                }
                idle = false;
            }
            if (idle) {
                pollfd p{bridge_end.get(), POLLIN, 0};
                ::poll(&p, 1, 2);
            }
        }
    }

    std::string dir;
    std::unique_ptr<runtime::ByteRing> to_guest, from_guest;
    std::unique_ptr<runtime::Relay> relay;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<agent::AgentService> service;
    UniqueFd agent_end, bridge_end;
    std::thread relay_thread, agent_thread, bridge_thread;
    std::atomic<bool> stopping{false};
};

TEST(SdkEndToEnd, ExecReturnsOutputAndExitCodes) {
    FakeSandbox fake;
    auto sandbox = MUST(Sandbox::connect(fake.sock()));
    auto out = MUST(sandbox.exec("sh", {"-c", "echo out; echo err >&2; exit 3"}));
    EXPECT_EQ(out.stdout_data, "out\n");
    EXPECT_EQ(out.stderr_data, "err\n");
    EXPECT_EQ(out.exit_code, 3);
    EXPECT_EQ(MUST(sandbox.exec("true")).exit_code, 0);
    EXPECT_EQ(MUST(sandbox.exec("false")).exit_code, 1);
}

TEST(SdkEndToEnd, ExecPassesStdinEnvAndWorkdir) {
    FakeSandbox fake;
    auto sandbox = MUST(Sandbox::connect(fake.sock()));
    ExecOptions options;
    options.stdin_data = "hello through stdin";
    auto out = MUST(sandbox.exec("cat", {}, options));
    EXPECT_EQ(out.stdout_data, "hello through stdin");
    ExecOptions env;
    env.env = {{"GREETING", "hi"}};
    env.workdir = "/tmp";
    auto e = MUST(sandbox.exec("sh", {"-c", "echo $GREETING; pwd"}, env));
    EXPECT_EQ(e.stdout_data, "hi\n/tmp\n");
}

TEST(SdkEndToEnd, StreamingExecCanBeSignalledAndTimedOut) {
    FakeSandbox fake;
    auto sandbox = MUST(Sandbox::connect(fake.sock()));
    auto handle = MUST(sandbox.exec_stream("sleep", {"30"}));
    auto started = MUST(handle.next_event(5s));
    EXPECT_EQ(started.kind, ExecEventKind::Started);
    EXPECT_GT(started.pid, 0u);
    MUST(handle.signal(SIGTERM));
    EXPECT_EQ(MUST(handle.wait()), 128 + SIGTERM);

    ExecOptions quick;
    quick.timeout = 300ms;
    auto t = sandbox.exec("sleep", {"30"}, quick);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code(), ETIMEDOUT);
}

TEST(SdkEndToEnd, TwoClientsGetDistinctIdRangesAndBothWork) {
    FakeSandbox fake;
    auto a = MUST(Sandbox::connect(fake.sock()));
    auto b = MUST(Sandbox::connect(fake.sock()));
    auto ha = MUST(a.exec_stream("sh", {"-c", "sleep 0.2; echo A"}));
    auto hb = MUST(b.exec_stream("sh", {"-c", "echo B"}));
    EXPECT_NE(ha.id() / runtime::Relay::kIdStep, hb.id() / runtime::Relay::kIdStep);
    EXPECT_EQ(MUST(hb.wait()), 0);
    EXPECT_EQ(MUST(ha.wait()), 0);
}

TEST(SdkEndToEnd, FilesystemWriteReadListStatAndFriends) {
    FakeSandbox fake;
    auto sandbox = MUST(Sandbox::connect(fake.sock()));
    auto fs = sandbox.fs();
    std::string base = fake.dir + "/data";
    MUST(fs.mkdir(base));
    std::string big(5 * 1024 * 1024, 'q');  // more than one 3 MiB chunk
    big[12345] = 'Z';
    MUST(fs.write(base + "/big.bin", big));
    EXPECT_EQ(MUST(fs.read(base + "/big.bin")), big);
    MUST(fs.write(base + "/small.txt", "hello", 0600));
    auto st = MUST(fs.stat(base + "/small.txt"));
    EXPECT_EQ(st.kind, "file");
    EXPECT_EQ(st.size, 5u);
    EXPECT_EQ(st.mode & 0777, 0600u);
    auto entries = MUST(fs.list(base));
    EXPECT_EQ(entries.size(), 2u);
    EXPECT_TRUE(MUST(fs.exists(base + "/small.txt")));
    EXPECT_FALSE(MUST(fs.exists(base + "/nope")));
    MUST(fs.copy(base + "/small.txt", base + "/copy.txt"));
    MUST(fs.rename(base + "/copy.txt", base + "/moved.txt"));
    EXPECT_EQ(MUST(fs.read(base + "/moved.txt")), "hello");
    MUST(fs.remove(base + "/moved.txt"));
    EXPECT_FALSE(MUST(fs.exists(base + "/moved.txt")));
    auto missing = fs.read(base + "/nope");
    ASSERT_FALSE(missing.ok());

    std::string host_file = fake.dir + "/host.txt";
    std::ofstream(host_file) << "from host";
    MUST(fs.copy_from_host(host_file, base + "/in.txt"));
    MUST(fs.copy_to_host(base + "/in.txt", fake.dir + "/back.txt"));
    std::ifstream back(fake.dir + "/back.txt");
    std::string text((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "from host");
    MUST(fs.remove(base + "/big.bin"));
    MUST(fs.remove(base + "/small.txt"));
    MUST(fs.remove(base + "/in.txt"));
    MUST(fs.remove_dir(base));
    EXPECT_FALSE(MUST(fs.exists(base)));
}

}  // namespace
}  // namespace msb
