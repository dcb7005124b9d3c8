// The guest agent in a booted sandbox, driven through the SDK: one VM (a minute to boot on the
// PVM host) shared by every case below, so the cases run in this order in one process (ctest
// registers the binary as a single test). Needs /dev/kvm and the built guest kernel.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "msb/sandbox.h"
#include "protocol/heartbeat.h"

namespace msb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Output of `seq 1 N`, produced in pieces: what the guest's stream must equal byte for byte.
class SeqStream {
public:
    // Consumes data.size() expected bytes and reports whether they equal `data`.
    bool matches(std::string_view data) {
        while (!data.empty()) {
            if (m_pos == m_line.size()) {
                m_line = std::to_string(++m_n) + "\n";
                m_pos = 0;
            }
            size_t n = std::min(data.size(), m_line.size() - m_pos);
            if (data.substr(0, n) != std::string_view(m_line).substr(m_pos, n)) return false;
            m_pos += n;
            data.remove_prefix(n);
        }
        return true;
    }

private:
    uint64_t m_n = 0;
    std::string m_line;
    size_t m_pos = 0;
};

// The exit code of a finished exec, -1000 when the exec itself failed.
int code(const Result<ExecOutput>& r) { return r.ok() ? r->exit_code : -1000; }

class AgentInGuest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (::access("/dev/kvm", R_OK | W_OK) != 0) {
            s_skip = "/dev/kvm is not available on this host";
            return;
        }
        char tmpl[] = "/tmp/msb-agent-in-guest-XXXXXX";
        s_home = ::mkdtemp(tmpl);
        ::setenv("MSB_HOME", s_home.c_str(), 1);
        ::setenv("MSB_BIN", MSB_BINARY_DIR "/msb", 1);
        ::setenv("MSB_READY_TIMEOUT", "900s", 1);
        fs::create_directories(s_home + "/share");
        fs::create_directories(s_home + "/ro");
        std::ofstream(s_home + "/ro/keep.txt") << "read only\n";
        auto sandbox = Sandbox::builder("agent")
                           .memory_mib(256)
                           .volume(s_home + "/share", "/data")
                           .volume(s_home + "/ro", "/ro", Access::ReadOnly)
                           // The protocol's heartbeat: rewritten every second even when
                           // nothing changed (msb's PVM default is 30 s; docs/agent.md).
                           .env("MSB_HEARTBEAT_REFRESH", "1")
                           .create();
        if (!sandbox.ok()) {
            s_setup_error = sandbox.error().message();
            return;
        }
        s_sandbox = std::make_unique<Sandbox>(std::move(sandbox).value());
    }

    static void TearDownTestSuite() {
        if (s_sandbox) (void)s_sandbox->stop(60s);
        s_sandbox.reset();
        if (!s_home.empty()) (void)Sandbox::remove("agent");
        if (!s_home.empty() && !::getenv("MSB_KEEP_TEST_HOME")) fs::remove_all(s_home);
    }

    void SetUp() override {
        if (!s_skip.empty()) GTEST_SKIP() << s_skip;
        ASSERT_TRUE(s_sandbox) << "sandbox did not start: " << s_setup_error;
    }

    static Sandbox& sandbox() { return *s_sandbox; }
    static std::string runtime_dir() { return s_home + "/sandboxes/agent/runtime"; }

    static inline std::string s_skip;
    static inline std::string s_home;
    static inline std::string s_setup_error;
    static inline std::unique_ptr<Sandbox> s_sandbox;
};

TEST_F(AgentInGuest, PipesStdinAndExitCodes) {
    auto both = sandbox().exec("sh", {"-c", "echo out; echo err >&2; exit 3"});
    ASSERT_TRUE(both.ok()) << both.error().message();
    EXPECT_EQ(both->stdout_data, "out\n");
    EXPECT_EQ(both->stderr_data, "err\n");
    EXPECT_EQ(both->exit_code, 3);

    ExecOptions with_stdin;
    with_stdin.stdin_data = std::string("round\ntrip\0bytes", 16);
    auto cat = sandbox().exec("cat", {}, with_stdin);
    ASSERT_TRUE(cat.ok());
    EXPECT_EQ(cat->stdout_data, std::string("round\ntrip\0bytes", 16));
    EXPECT_EQ(cat->exit_code, 0);

    EXPECT_EQ(code(sandbox().exec("true")), 0);
    EXPECT_EQ(code(sandbox().exec("/no/such/command")), 127);
    ASSERT_TRUE(sandbox().fs().write("/tmp/not-executable", "echo hi\n", 0644).ok());
    EXPECT_EQ(code(sandbox().exec("/tmp/not-executable")), 126);

    auto sleeper = sandbox().exec_stream("sleep", {"600"});
    ASSERT_TRUE(sleeper.ok());
    auto started = sleeper->next_event(120s);
    ASSERT_TRUE(started.ok());
    EXPECT_EQ(started->kind, ExecEventKind::Started);
    ASSERT_TRUE(sleeper->signal(SIGKILL).ok());
    EXPECT_EQ(sleeper->wait().value_or(-1), 137);
}

// Every sandbox has a virtio-rng device: the guest's CRNG is seeded during boot, so reading
// /dev/random (which waits for that) answers at once.
TEST_F(AgentInGuest, TheGuestHasAnEntropySource) {
    auto rng = sandbox().exec("cat", {"/sys/class/misc/hw_random/rng_current"});
    ASSERT_TRUE(rng.ok()) << rng.error().message();
    EXPECT_EQ(rng->stdout_data, "virtio_rng.0\n") << rng->stderr_data;
    auto bytes = sandbox().exec(
        "sh", {"-c", "head -c 64 /dev/random | wc -c; dmesg | grep -c 'crng init done'"});
    ASSERT_TRUE(bytes.ok()) << bytes.error().message();
    EXPECT_EQ(bytes->stdout_data, "64\n1\n") << bytes->stderr_data;
}

// Stdin streamed in 64 KiB and odd-sized chunks arrives byte for byte, round after round. On the
// PVM host the agent once lost ~1 in 100 such frames: growing its frame buffer with the
// vector's own memmove zeroed 16-byte runs of the frame's start (byte_copy.h).
TEST_F(AgentInGuest, StreamedStdinArrivesByteForByte) {
    std::mt19937 rng(7);
    const size_t kChunkSizes[] = {64 * 1024, 16 * 1024, 64 * 1024 - 7};
    for (int round = 0; round < 12; ++round) {
        const size_t chunk = kChunkSizes[round % 3];
        auto h = sandbox().exec_stream("sh", {"-c", "cat > /tmp/stdin.bin"});
        ASSERT_TRUE(h.ok()) << h.error().message();
        std::string sent;
        for (int i = 0; i < 16; ++i) {
            std::string piece(chunk, '\0');
            for (auto& c : piece) c = static_cast<char>(rng());
            ASSERT_TRUE(h->write_stdin(piece).ok()) << "round " << round << " chunk " << i;
            sent += piece;
        }
        ASSERT_TRUE(h->close_stdin().ok());
        ASSERT_EQ(h->wait().value_or(-1), 0) << "round " << round;
        auto got = sandbox().fs().read("/tmp/stdin.bin");
        ASSERT_TRUE(got.ok()) << got.error().message();
        ASSERT_EQ(got->size(), sent.size()) << "round " << round << ", " << chunk << "-byte chunks";
        ASSERT_TRUE(*got == sent) << "round " << round << ": the bytes differ";
    }
    std::string log = slurp(s_home + "/sandboxes/agent/logs/guest.log");
    EXPECT_EQ(log.find("dropping frame"), std::string::npos) << log;
}

// Collects a PTY session's output until `needle` appears (or the deadline passes).
std::string read_until(ExecHandle& h, const std::string& needle, std::string& seen) {
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (seen.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        auto e = h.next_event(5s);
        if (!e.ok()) continue;
        if (e->kind == ExecEventKind::Stdout || e->kind == ExecEventKind::Stderr) seen += e->data;
        if (e->kind == ExecEventKind::Exited) break;
    }
    return seen;
}

TEST_F(AgentInGuest, PtyIsATerminalAndFollowsResizes) {
    ExecOptions tty;
    tty.tty = true;
    tty.rows = 24;
    tty.cols = 80;
    auto h = sandbox().exec_stream("sh", {"-c", "tty; stty size; read line; stty size"}, tty);
    ASSERT_TRUE(h.ok()) << h.error().message();
    std::string seen;
    read_until(*h, "24 80", seen);
    EXPECT_NE(seen.find("/dev/pts/"), std::string::npos) << seen;
    ASSERT_NE(seen.find("24 80"), std::string::npos) << seen;
    ASSERT_TRUE(h->resize(40, 132).ok());
    ASSERT_TRUE(h->write_stdin("go\n").ok());
    read_until(*h, "40 132", seen);
    EXPECT_NE(seen.find("40 132"), std::string::npos) << seen;
    EXPECT_EQ(h->wait().value_or(-1), 0);
}

// Sizes: what the issue asks for on hardware KVM. On the PVM host every guest syscall and kernel
// copy is emulated: a sandbox moves ~32 KiB/s through `seq | head | agent | port` and ~0.1 MiB/s
// through the fs protocol, and one spawn takes ~3 s (measured; docs/agent.md, docs/performance.md),
// so 1 GiB would take hours and 100 MiB each way some 20 minutes; there those defaults are
// scaled down. A hundred sessions are run everywhere: on PVM they spend five minutes or more
// just spawning, so their waits are long. MSB_TEST_STREAM_MIB, MSB_TEST_FS_MIB and
// MSB_TEST_SESSIONS override the sizes.
bool on_pvm() { return fs::exists("/sys/module/kvm_pvm"); }
uint64_t env_or(const char* name, uint64_t hardware, uint64_t pvm) {
    if (const char* v = std::getenv(name); v && *v) return std::stoull(v);
    return on_pvm() ? pvm : hardware;
}
uint64_t stream_bytes() { return env_or("MSB_TEST_STREAM_MIB", 1024, 1) << 20; }
uint64_t fs_bytes() { return env_or("MSB_TEST_FS_MIB", 100, 2) << 20; }
int session_count() { return static_cast<int>(env_or("MSB_TEST_SESSIONS", 100, 100)); }

// Byte for byte, not only the count: on the PVM host glibc's vector memcpy in the agent once
// punched 16-byte holes of zeros into every 64 KiB frame (base/byte_copy.h, docs/vmm.md).
TEST_F(AgentInGuest, AGibOfStdoutArrivesComplete) {
    const uint64_t kBytes = stream_bytes();
    auto h =
        sandbox().exec_stream("sh", {"-c", "seq 1 200000000 | head -c " + std::to_string(kBytes)});
    ASSERT_TRUE(h.ok()) << h.error().message();
    SeqStream expected;
    uint64_t received = 0;
    bool intact = true;
    int exit_code = -1;
    auto started = std::chrono::steady_clock::now();
    for (;;) {
        auto e = h->next_event(300s);
        ASSERT_TRUE(e.ok()) << "after " << received << " bytes: " << e.error().message();
        if (e->kind == ExecEventKind::Stdout) {
            if (intact && !expected.matches(e->data)) {
                intact = false;
                ADD_FAILURE() << "differs in the chunk at offset " << received << " (size "
                              << e->data.size() << "), which starts: "
                              << e->data.substr(0, std::min<size_t>(64, e->data.size()));
            }
            received += e->data.size();
        } else if (e->kind == ExecEventKind::Exited) {
            exit_code = e->exit_code;
            break;
        }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_EQ(received, kBytes);
    EXPECT_TRUE(intact) << "the stream differs from seq's output";
    EXPECT_EQ(exit_code, 0);
    std::printf("%llu MiB of guest stdout in %.1f s (%.2f MiB/s)\n",
                static_cast<unsigned long long>(kBytes >> 20), secs, double(kBytes >> 20) / secs);
}

TEST_F(AgentInGuest, ConcurrentSessions) {
    const int kSessions = session_count();
    std::vector<ExecHandle> sessions;
    for (int i = 0; i < kSessions; i++) {
        auto h = sandbox().exec_stream("sh", {"-c", "read x; echo \"$x-done\""});
        ASSERT_TRUE(h.ok()) << "session " << i << ": " << h.error().message();
        sessions.push_back(std::move(h).value());
    }
    // All of them are alive at once before any gets its input.
    for (int i = 0; i < kSessions; i++)
        ASSERT_TRUE(sessions[i].write_stdin(std::to_string(i) + "\n").ok());
    // The agent starts them one after another (~3 s each on PVM), and a session's stdin is read
    // only once every spawn queued before it is done.
    for (int i = 0; i < kSessions; i++) {
        std::string out;
        int code = -1;
        for (;;) {
            auto e = sessions[i].next_event(i == 0 ? 1200s : 300s);
            ASSERT_TRUE(e.ok()) << "session " << i << ": " << e.error().message();
            if (e->kind == ExecEventKind::Stdout) out += e->data;
            if (e->kind == ExecEventKind::Exited) {
                code = e->exit_code;
                break;
            }
        }
        EXPECT_EQ(out, std::to_string(i) + "-done\n");
        EXPECT_EQ(code, 0);
    }
}

TEST_F(AgentInGuest, EveryFilesystemOperationAndAHundredMibRoundTrip) {
    auto f = sandbox().fs();
    ASSERT_TRUE(f.mkdir("/tmp/ops").ok());
    ASSERT_TRUE(f.write("/tmp/ops/a.txt", "alpha", 0600).ok());
    EXPECT_EQ(f.read("/tmp/ops/a.txt").value_or(""), "alpha");
    auto st = f.stat("/tmp/ops/a.txt");
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->size, 5u);
    EXPECT_EQ(st->kind, "file");
    EXPECT_EQ(st->mode & 0777, 0600u);
    ASSERT_TRUE(f.copy("/tmp/ops/a.txt", "/tmp/ops/b.txt").ok());
    ASSERT_TRUE(f.rename("/tmp/ops/b.txt", "/tmp/ops/c.txt").ok());
    EXPECT_FALSE(f.exists("/tmp/ops/b.txt").value_or(true));
    EXPECT_EQ(f.read("/tmp/ops/c.txt").value_or(""), "alpha");
    auto entries = f.list("/tmp/ops");
    ASSERT_TRUE(entries.ok());
    EXPECT_EQ(entries->size(), 2u);
    ASSERT_TRUE(f.remove("/tmp/ops/a.txt").ok());
    ASSERT_TRUE(f.remove("/tmp/ops/c.txt").ok());
    ASSERT_TRUE(f.remove_dir("/tmp/ops").ok());
    EXPECT_FALSE(f.exists("/tmp/ops").value_or(true));
    EXPECT_FALSE(f.read("/tmp/no-such-file").ok());

    // 100 MiB (hardware) of pseudo-random bytes into the guest and back.
    std::string big(fs_bytes(), '\0');
    std::mt19937_64 rng(42);
    for (size_t i = 0; i + 8 <= big.size(); i += 8) {
        uint64_t v = rng();
        std::memcpy(&big[i], &v, 8);
    }
    ASSERT_TRUE(f.write("/data/big.bin", big).ok());
    EXPECT_EQ(fs::file_size(s_home + "/share/big.bin"), big.size());
    auto back = f.read("/data/big.bin");
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_TRUE(*back == big) << "the bytes read back differ";
    EXPECT_TRUE(slurp(s_home + "/share/big.bin") == big) << "the host copy differs";
    fs::remove(s_home + "/share/big.bin");
}

TEST_F(AgentInGuest, ReadOnlyVolumeRefusesEveryWrite) {
    auto shell = sandbox().exec(
        "sh", {"-c",
               "cat /ro/keep.txt; if echo x > /ro/new 2>/dev/null; then echo WROTE; fi; "
               "if rm /ro/keep.txt 2>/dev/null; then echo REMOVED; fi; "
               "if mkdir /ro/d 2>/dev/null; then echo MADE; fi"});
    ASSERT_TRUE(shell.ok());
    EXPECT_EQ(shell->stdout_data, "read only\n");
    EXPECT_FALSE(sandbox().fs().write("/ro/via-protocol", "x").ok());
    EXPECT_EQ(slurp(s_home + "/ro/keep.txt"), "read only\n");
    EXPECT_FALSE(fs::exists(s_home + "/ro/new"));
    EXPECT_FALSE(fs::exists(s_home + "/ro/via-protocol"));
}

std::optional<protocol::Heartbeat> heartbeat(const std::string& dir) {
    auto parsed = protocol::parse_heartbeat_json(slurp(dir + "/heartbeat.json"));
    if (!parsed.ok()) return std::nullopt;
    return parsed.value();
}

// This sandbox runs with MSB_HEARTBEAT_REFRESH=1: heartbeat.json is rewritten every second, with
// a fresh timestamp, while last_activity moves only when a frame comes from the host.
TEST_F(AgentInGuest, HeartbeatEverySecondAndLastActivityMovesOnlyOnHostFrames) {
    // The previous case's last frame reaches heartbeat.json on the agent's next tick: wait until
    // two reads 2 s apart agree.
    auto first = heartbeat(runtime_dir());
    for (int i = 0; i < 30; i++) {
        std::this_thread::sleep_for(2s);
        auto again = heartbeat(runtime_dir());
        bool settled = first && again && again->last_activity_ns == first->last_activity_ns &&
                       again->active_sessions == 0;
        first = again;
        if (settled) break;
    }
    ASSERT_TRUE(first.has_value()) << slurp(runtime_dir() + "/heartbeat.json");
    // Idle for ten seconds: nothing from the host, so last_activity stays where it was, but the
    // agent rewrites the file on every 1 s tick with a fresh timestamp (gaps measured on the
    // guest's clock; one late tick is allowed for on a loaded host).
    std::vector<int64_t> stamps;
    for (int i = 0; i < 40; i++) {
        std::this_thread::sleep_for(250ms);
        auto h = heartbeat(runtime_dir());
        ASSERT_TRUE(h.has_value()) << "heartbeat.json must always be whole (written by rename)";
        EXPECT_EQ(h->last_activity_ns, first->last_activity_ns);
        EXPECT_EQ(h->active_sessions, 0u);
        if (stamps.empty() || stamps.back() != h->timestamp_ns) stamps.push_back(h->timestamp_ns);
    }
    std::string gaps;
    int64_t widest = 0;
    for (size_t i = 1; i < stamps.size(); i++) {
        int64_t gap = stamps[i] - stamps[i - 1];
        widest = std::max(widest, gap);
        gaps += std::to_string(gap / 1'000'000) + " ms ";
    }
    std::printf("heartbeat rewrites while idle, %zu in 10 s; gaps: %s\n", stamps.size(),
                gaps.c_str());
    EXPECT_GE(stamps.size(), 8u) << "gaps: " << gaps;
    EXPECT_LE(widest, 2'200'000'000) << "gaps: " << gaps;
    // A running session shows within a couple of ticks; its end and the host frame that
    // started it move last_activity.
    auto running = sandbox().exec_stream("sleep", {"8"});
    ASSERT_TRUE(running.ok());
    bool saw_session = false;
    for (int i = 0; i < 60 && !saw_session; i++) {
        std::this_thread::sleep_for(250ms);
        auto h = heartbeat(runtime_dir());
        saw_session = h && h->active_sessions == 1;
    }
    EXPECT_TRUE(saw_session) << "a running exec never appeared in heartbeat.json";
    EXPECT_EQ(running->wait().value_or(-1), 0);
    std::this_thread::sleep_for(2500ms);
    auto after = heartbeat(runtime_dir());
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->active_sessions, 0u);
    EXPECT_GT(after->last_activity_ns, first->last_activity_ns);
}

// Last on purpose: the graceful stop must keep a file written (and not synced) just before it.
TEST_F(AgentInGuest, ShutdownKeepsAFileWrittenJustBeforeIt) {
    auto last = sandbox().exec("sh", {"-c", "echo the last word > /data/last.txt"});
    ASSERT_TRUE(last.ok());
    ASSERT_EQ(last->exit_code, 0);
    ASSERT_TRUE(sandbox().stop(120s).ok());
    s_sandbox.reset();
    EXPECT_EQ(slurp(s_home + "/share/last.txt"), "the last word\n");
}

}  // namespace
}  // namespace msb
