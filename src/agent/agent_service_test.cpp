// The protocol service driven over a socketpair with the real protocol codec, as the host side
// would drive it through the relay.
#include "agent/agent_service.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "agent/spawn.h"
#include "base/time.h"
#include "protocol/heartbeat.h"

namespace msb::agent {
namespace {

using protocol::Message;
using protocol::MessageType;

std::string text(const std::vector<uint8_t>& data) { return std::string(data.begin(), data.end()); }
std::vector<uint8_t> bytes(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// FNV-1a, enough to compare two byte streams.
uint64_t checksum(const std::vector<uint8_t>& data) {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : data) h = (h ^ b) * 1099511628211ull;
    return h;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/msb-agent-test-XXXXXX";
        m_path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::system(("rm -rf '" + m_path + "'").c_str()); }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

// One agent service on one end of a socketpair; the test is the host on the other end.
class Harness {
public:
    explicit Harness(ServiceOptions options = {}) : m_loop(MUST(EventLoop::create())) {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        m_agent_end.reset(fds[0]);
        m_host_end.reset(fds[1]);
        MUST(set_nonblocking(m_host_end.get()));
        options.read_fd = options.write_fd = m_agent_end.get();
        if (options.base_env.empty()) options.base_env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
        m_service = MUST(AgentService::create(m_loop, std::move(options)));
        m_service->set_on_shutdown([this] { m_shutdown = true; });
        MUST(m_service->start());
    }

    template <typename P>
    void send(uint32_t id, const P& payload) {
        auto frame = MUST(protocol::encode_message(id, payload));
        send_raw(frame);
    }
    void send_raw(const std::vector<uint8_t>& frame) {
        size_t off = 0;
        while (off < frame.size()) {
            ssize_t n = ::write(m_host_end.get(), frame.data() + off, frame.size() - off);
            if (n > 0) {
                off += static_cast<size_t>(n);
            } else {
                ASSERT_TRUE(errno == EAGAIN || errno == EINTR) << strerror(errno);
                pump(std::chrono::milliseconds(1));
            }
        }
    }

    // Runs the agent's loop and reads the host end for up to `timeout`.
    void pump(std::chrono::milliseconds timeout) {
        (void)m_loop.run_once(timeout);
        uint8_t buf[65536];
        for (;;) {
            ssize_t n = ::read(m_host_end.get(), buf, sizeof buf);
            if (n <= 0) break;
            Status st = m_decoder.feed(
                std::span<const uint8_t>(buf, static_cast<size_t>(n)),
                [this](protocol::RawFrame&& f) {
                    m_frames[f.header.id].push_back(MUST(protocol::decode_message(f)));
                });
            EXPECT_TRUE(st.ok());
        }
    }

    // Pumps until session `id` has its terminal frame; returns all its frames.
    std::vector<Message> wait_terminal(
        uint32_t id, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        Deadline deadline = Deadline::after(timeout);
        while (!deadline.expired()) {
            auto& frames = m_frames[id];
            if (!frames.empty() && (frames.back().flags & protocol::kFlagTerminal)) return frames;
            pump(std::chrono::milliseconds(5));
        }
        ADD_FAILURE() << "session " << id << " did not end";
        return m_frames[id];
    }

    // Pumps until session `id` has a frame of `type`.
    void wait_for(uint32_t id, MessageType type,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        Deadline deadline = Deadline::after(timeout);
        while (!deadline.expired()) {
            for (auto& m : m_frames[id])
                if (m.type == type) return;
            pump(std::chrono::milliseconds(5));
        }
        ADD_FAILURE() << "session " << id << ": no " << protocol::message_type_name(type);
    }

    void run_agent_only(std::chrono::milliseconds duration) {
        Deadline d = Deadline::after(duration);
        while (!d.expired()) (void)m_loop.run_once(std::chrono::milliseconds(10));
    }

    std::vector<Message>& frames(uint32_t id) { return m_frames[id]; }
    AgentService& service() { return *m_service; }
    bool shutdown_done() const { return m_shutdown; }
    int host_fd() const { return m_host_end.get(); }

private:
    EventLoop m_loop;
    UniqueFd m_agent_end;
    UniqueFd m_host_end;
    std::unique_ptr<AgentService> m_service;
    protocol::FrameDecoder m_decoder;
    std::map<uint32_t, std::vector<Message>> m_frames;
    bool m_shutdown = false;
};

struct ExecOutcome {
    std::string out;
    std::string err;
    std::optional<int> code;
    bool started = false;
};

ExecOutcome summarize(const std::vector<Message>& frames) {
    ExecOutcome o;
    for (const auto& m : frames) {
        if (m.type == MessageType::ExecStarted) o.started = true;
        if (m.type == MessageType::ExecStdout)
            o.out += text(MUST(protocol::decode_payload<protocol::ExecStdout>(m.payload)).data);
        if (m.type == MessageType::ExecStderr)
            o.err += text(MUST(protocol::decode_payload<protocol::ExecStderr>(m.payload)).data);
        if (m.type == MessageType::ExecExited)
            o.code = MUST(protocol::decode_payload<protocol::ExecExited>(m.payload)).code;
    }
    return o;
}

protocol::ExecRequest exec(std::string cmd, std::vector<std::string> args = {}) {
    protocol::ExecRequest r;
    r.cmd = std::move(cmd);
    r.args = std::move(args);
    return r;
}

ExecOutcome run(Harness& h, uint32_t id, const protocol::ExecRequest& request) {
    h.send(id, request);
    return summarize(h.wait_terminal(id));
}

TEST(AgentService, SendsReadyFirstWithBootTimes) {
    ServiceOptions opts;
    opts.boot_time_ns = 11;
    opts.init_time_ns = 22;
    Harness h(opts);
    h.wait_for(0, MessageType::Ready);
    auto ready = MUST(protocol::decode_payload<protocol::Ready>(h.frames(0).front().payload));
    EXPECT_EQ(ready.boot_time_ns, 11u);
    EXPECT_EQ(ready.init_time_ns, 22u);
    EXPECT_GT(ready.ready_time_ns, 0u);
}

TEST(AgentService, ExecEchoStreamsStdoutAndExitsZero) {
    Harness h;
    auto o = run(h, 1, exec("/bin/echo", {"hello", "world"}));
    EXPECT_TRUE(o.started);
    EXPECT_EQ(o.out, "hello world\n");
    EXPECT_EQ(o.code, 0);
    // started comes first, exited last with the TERMINAL flag.
    EXPECT_EQ(h.frames(1).front().type, MessageType::ExecStarted);
    EXPECT_EQ(h.frames(1).back().type, MessageType::ExecExited);
}

TEST(AgentService, ExecReportsExitCodeAndStderr) {
    Harness h;
    auto o = run(h, 2, exec("/bin/sh", {"-c", "echo oops >&2; exit 3"}));
    EXPECT_EQ(o.err, "oops\n");
    EXPECT_EQ(o.code, 3);
}

TEST(AgentService, StdinRoundTripsThroughCat) {
    Harness h;
    h.send(3, exec("cat"));
    h.wait_for(3, MessageType::ExecStarted);
    h.send(3, protocol::ExecStdin{bytes("line one\n")});
    h.send(3, protocol::ExecStdin{bytes("line two\n")});
    h.send(3, protocol::ExecStdin{});  // close
    auto o = summarize(h.wait_terminal(3));
    EXPECT_EQ(o.out, "line one\nline two\n");
    EXPECT_EQ(o.code, 0);
}

TEST(AgentService, MissingProgramExitsWith127AndAMessage) {
    Harness h;
    auto o = run(h, 4, exec("no-such-program-msb"));
    EXPECT_FALSE(o.started);
    EXPECT_EQ(o.code, 127);
    EXPECT_NE(o.err.find("no-such-program-msb: command not found"), std::string::npos) << o.err;
    auto abs = run(h, 5, exec("/nonexistent/bin/x"));
    EXPECT_EQ(abs.code, 127);
    EXPECT_NE(abs.err.find("No such file or directory"), std::string::npos) << abs.err;
}

TEST(AgentService, NonExecutableFileExitsWith126) {
    TempDir dir;
    std::string path = dir.path() + "/data.txt";
    std::ofstream(path) << "not a program\n";
    ::chmod(path.c_str(), 0644);
    Harness h;
    auto o = run(h, 6, exec(path));
    EXPECT_EQ(o.code, 126);
    EXPECT_NE(o.err.find("Permission denied"), std::string::npos) << o.err;
}

TEST(AgentService, SignalNineGives137) {
    Harness h;
    h.send(7, exec("sleep", {"30"}));
    h.wait_for(7, MessageType::ExecStarted);
    h.send(7, protocol::ExecSignal{.signal = 9});
    auto o = summarize(h.wait_terminal(7, std::chrono::seconds(5)));
    EXPECT_EQ(o.code, 137);
}

TEST(AgentService, SignalReachesTheWholeProcessGroup) {
    Harness h;
    // The shell waits for a child; SIGTERM to the group ends both.
    h.send(8, exec("/bin/sh", {"-c", "sleep 30 & wait"}));
    h.wait_for(8, MessageType::ExecStarted);
    h.send(8, protocol::ExecSignal{.signal = 15});
    auto o = summarize(h.wait_terminal(8, std::chrono::seconds(5)));
    EXPECT_EQ(o.code, 128 + 15);
}

TEST(AgentService, PtyExecIsATerminalWithTheRequestedSize) {
    Harness h;
    auto request = exec("/bin/sh", {"-c", "test -t 0 && test -t 1 && stty size && tty"});
    request.tty = true;
    request.rows = 33;
    request.cols = 101;
    auto o = run(h, 9, request);
    EXPECT_EQ(o.code, 0) << o.out;
    EXPECT_NE(o.out.find("33 101"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("/dev/pts/"), std::string::npos) << o.out;
}

TEST(AgentService, PtyResizeAndInput) {
    Harness h;
    auto request = exec("/bin/sh", {"-c", "read line; stty size; echo got:$line"});
    request.tty = true;
    h.send(10, request);
    h.wait_for(10, MessageType::ExecStarted);
    h.send(10, protocol::ExecResize{.rows = 50, .cols = 120});
    h.send(10, protocol::ExecStdin{bytes("abc\n")});
    auto o = summarize(h.wait_terminal(10));
    EXPECT_EQ(o.code, 0);
    EXPECT_NE(o.out.find("50 120"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("got:abc"), std::string::npos) << o.out;
}

TEST(AgentService, EnvCwdAndPathPrefix) {
    TempDir dir;
    ServiceOptions opts;
    opts.scripts_dir = dir.path();
    Harness h(opts);
    std::ofstream(dir.path() + "/hello-script") << "#!/bin/sh\necho from-script\n";
    ::chmod((dir.path() + "/hello-script").c_str(), 0755);
    auto request = exec("/bin/sh", {"-c", "echo $FOO; pwd; echo $PATH; hello-script"});
    request.env = {"FOO=bar"};
    request.cwd = "/usr";
    auto o = run(h, 11, request);
    EXPECT_EQ(o.code, 0) << o.err;
    EXPECT_EQ(o.out, "bar\n/usr\n" + dir.path() + ":/usr/sbin:/usr/bin:/sbin:/bin\nfrom-script\n");
}

TEST(AgentService, RlimitsApplyPerRequest) {
    Harness h;
    auto request = exec("/bin/sh", {"-c", "ulimit -n"});
    request.rlimits = {{"nofile", 77, 77}};
    auto o = run(h, 12, request);
    EXPECT_EQ(o.out, "77\n");
    auto bad = exec("/bin/true");
    bad.rlimits = {{"bogus", 1, 1}};
    auto b = run(h, 13, bad);
    EXPECT_NE(b.code, 0);
    EXPECT_NE(b.err.find("bogus"), std::string::npos);
}

TEST(AgentService, UnknownUserFailsTheExecWithAMessage) {
    Harness h;
    auto request = exec("/bin/true");
    request.user = "no-such-user-msb";
    auto o = run(h, 14, request);
    EXPECT_EQ(o.code, 126);
    EXPECT_NE(o.err.find("no-such-user-msb"), std::string::npos);
}

TEST(AgentService, RunsManyConcurrentSessions) {
    Harness h;
    constexpr uint32_t kSessions = 40;
    for (uint32_t i = 0; i < kSessions; ++i)
        h.send(100 + i, exec("/bin/sh", {"-c", "sleep 0.2; echo s" + std::to_string(i) + "; exit " +
                                                   std::to_string(i % 7)}));
    for (uint32_t i = 0; i < kSessions; ++i) {
        auto o = summarize(h.wait_terminal(100 + i));
        EXPECT_EQ(o.out, "s" + std::to_string(i) + "\n");
        EXPECT_EQ(o.code, static_cast<int>(i % 7));
    }
    EXPECT_EQ(h.service().active_sessions(), 0u);
}

TEST(AgentService, FloodingProcessIsThrottledNotTruncated) {
    Harness h;
    // 24 MiB of output while the host does not read: the agent must stop reading the pipe.
    h.send(20, exec("/bin/sh", {"-c", "head -c 25165824 /dev/zero"}));
    h.wait_for(20, MessageType::ExecStarted);
    // Run only the agent's loop without reading the host end: the socket buffer fills, then
    // the agent's queue reaches its bound and the agent stops reading the pipe.
    h.run_agent_only(std::chrono::milliseconds(700));
    EXPECT_GT(h.service().stats().backpressure_pauses, 0u);
    EXPECT_LE(h.service().queued_bytes(),
              AgentService::kHighWater + AgentService::kOutputReadSize + 64);
    EXPECT_EQ(h.service().active_sessions(), 1u);  // still running: blocked on its pipe
    auto frames = h.wait_terminal(20, std::chrono::seconds(60));
    size_t total = 0;
    for (const auto& m : frames)
        if (m.type == MessageType::ExecStdout)
            total += MUST(protocol::decode_payload<protocol::ExecStdout>(m.payload)).data.size();
    EXPECT_EQ(total, 25165824u);
    EXPECT_EQ(summarize(frames).code, 0);
    EXPECT_GT(h.service().stats().backpressure_pauses, 0u);
}

// Content, not just length: frames of up to kOutputReadSize bytes must carry the pipe's bytes
// in order (a zero-filled source such as /dev/zero could not show a hole).
TEST(AgentService, LargeOutputArrivesByteForByte) {
    Harness h;
    h.send(21, exec("/bin/sh", {"-c", "seq 1 300000 | head -c 1048576"}));
    auto frames = h.wait_terminal(21, std::chrono::seconds(60));
    std::string got;
    for (const auto& m : frames)
        if (m.type == MessageType::ExecStdout) {
            auto data = MUST(protocol::decode_payload<protocol::ExecStdout>(m.payload)).data;
            got.append(data.begin(), data.end());
        }
    std::string want;
    for (int i = 1; want.size() < 1048576; ++i) want += std::to_string(i) + "\n";
    want.resize(1048576);
    ASSERT_EQ(got.size(), want.size());
    size_t diff = std::mismatch(got.begin(), got.end(), want.begin()).first - got.begin();
    EXPECT_EQ(diff, got.size()) << "first difference at byte " << diff;
    EXPECT_EQ(summarize(frames).code, 0);
}

protocol::FsResponse fs_response(const std::vector<Message>& frames) {
    EXPECT_FALSE(frames.empty());
    EXPECT_EQ(frames.back().type, MessageType::FsResponse);
    return MUST(protocol::decode_payload<protocol::FsResponse>(frames.back().payload));
}

protocol::FsResponse fs(Harness& h, uint32_t id, protocol::FsOp op) {
    h.send(id, protocol::FsRequest{std::move(op)});
    return fs_response(h.wait_terminal(id));
}

TEST(AgentService, FsMultiChunkWriteThenReadMatchesChecksum) {
    TempDir dir;
    Harness h;
    std::string path = dir.path() + "/big.bin";
    std::vector<uint8_t> content(7 * 1024 * 1024 + 12345);
    std::mt19937 rng(42);
    for (auto& b : content) b = static_cast<uint8_t>(rng());

    h.send(30, protocol::FsRequest{protocol::FsOp::write(path, 0600)});
    for (size_t off = 0; off < content.size(); off += protocol::kFsChunkSize) {
        size_t n = std::min(protocol::kFsChunkSize, content.size() - off);
        h.send(30, protocol::FsData{
                       std::vector<uint8_t>(content.begin() + off, content.begin() + off + n)});
    }
    h.send(30, protocol::FsData{});
    auto written = fs_response(h.wait_terminal(30));
    ASSERT_TRUE(written.ok) << written.error.value_or("");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    h.send(31, protocol::FsRequest{protocol::FsOp::read(path)});
    auto frames = h.wait_terminal(31);
    std::vector<uint8_t> read_back;
    size_t chunks = 0;
    for (const auto& m : frames) {
        if (m.type != MessageType::FsData) continue;
        auto d = MUST(protocol::decode_payload<protocol::FsData>(m.payload)).data;
        EXPECT_LE(d.size(), protocol::kFsChunkSize);
        read_back.insert(read_back.end(), d.begin(), d.end());
        ++chunks;
    }
    EXPECT_TRUE(fs_response(frames).ok);
    EXPECT_GT(chunks, 2u);
    EXPECT_EQ(read_back.size(), content.size());
    EXPECT_EQ(checksum(read_back), checksum(content));
}

TEST(AgentService, FsStatListMkdirCopyRenameRemove) {
    TempDir dir;
    Harness h;
    std::string base = dir.path();
    auto mk = fs(h, 40, protocol::FsOp::mkdir(base + "/a/b/c"));
    ASSERT_TRUE(mk.ok) << mk.error.value_or("");
    std::ofstream(base + "/a/b/c/f.txt") << "12345";

    auto st = fs(h, 41, protocol::FsOp::stat(base + "/a/b/c/f.txt"));
    ASSERT_TRUE(st.ok);
    ASSERT_EQ(st.data_kind, protocol::FsResponseDataKind::Stat);
    EXPECT_EQ(st.entries[0].kind, "file");
    EXPECT_EQ(st.entries[0].size, 5u);
    EXPECT_TRUE(st.entries[0].modified.has_value());

    auto ls = fs(h, 42, protocol::FsOp::list(base + "/a/b"));
    ASSERT_TRUE(ls.ok);
    ASSERT_EQ(ls.entries.size(), 1u);
    EXPECT_EQ(ls.entries[0].kind, "dir");
    EXPECT_EQ(ls.entries[0].path, base + "/a/b/c");

    auto cp = fs(h, 43, protocol::FsOp::copy(base + "/a", base + "/copy"));
    ASSERT_TRUE(cp.ok) << cp.error.value_or("");
    EXPECT_TRUE(fs(h, 44, protocol::FsOp::stat(base + "/copy/b/c/f.txt")).ok);

    auto mv = fs(h, 45, protocol::FsOp::rename(base + "/copy", base + "/moved"));
    ASSERT_TRUE(mv.ok);
    EXPECT_FALSE(fs(h, 46, protocol::FsOp::stat(base + "/copy")).ok);

    auto rm_file = fs(h, 47, protocol::FsOp::remove(base + "/moved/b/c/f.txt"));
    EXPECT_TRUE(rm_file.ok);
    auto rm_tree = fs(h, 48, protocol::FsOp::remove_dir(base + "/moved"));
    EXPECT_TRUE(rm_tree.ok) << rm_tree.error.value_or("");
    EXPECT_FALSE(fs(h, 49, protocol::FsOp::stat(base + "/moved")).ok);
}

TEST(AgentService, FsErrorsComeBackAsNotOkWithErrnoText) {
    TempDir dir;
    Harness h;
    auto st = fs(h, 50, protocol::FsOp::stat(dir.path() + "/missing"));
    EXPECT_FALSE(st.ok);
    EXPECT_NE(st.error.value_or("").find("No such file or directory"), std::string::npos);
    auto rd = fs(h, 51, protocol::FsOp::read(dir.path() + "/missing"));
    EXPECT_FALSE(rd.ok);
    auto rmdir = fs(h, 52, protocol::FsOp::remove_dir(dir.path() + "/missing"));
    EXPECT_FALSE(rmdir.ok);
    // A write into a missing directory fails after the host's end of stream.
    h.send(53, protocol::FsRequest{protocol::FsOp::write(dir.path() + "/no/dir/file")});
    h.send(53, protocol::FsData{bytes("x")});
    h.send(53, protocol::FsData{});
    auto wr = fs_response(h.wait_terminal(53));
    EXPECT_FALSE(wr.ok);
    EXPECT_NE(wr.error.value_or("").find("No such file or directory"), std::string::npos);
    auto list_file = fs(h, 54, protocol::FsOp::list("/etc/hostname-does-not-exist"));
    EXPECT_FALSE(list_file.ok);
}

TEST(AgentService, MalformedExecRequestIsAnsweredWithExit1) {
    Harness h;
    // An exec request whose payload lacks the required "cmd".
    auto frame =
        MUST(protocol::encode_frame(protocol::make_message(MessageType::ExecRequest, 60, {0xa0})));
    h.send_raw(frame);
    auto o = summarize(h.wait_terminal(60));
    EXPECT_EQ(o.code, 1);
    EXPECT_NE(o.err.find("malformed"), std::string::npos);
}

TEST(AgentService, CorruptFrameLengthClearsTheBufferAndServiceContinues) {
    Harness h;
    std::vector<uint8_t> garbage = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6};
    h.send_raw(garbage);
    h.pump(std::chrono::milliseconds(50));
    EXPECT_GE(h.service().stats().corrupt_frames, 1u);
    auto o = run(h, 61, exec("/bin/echo", {"alive"}));
    EXPECT_EQ(o.out, "alive\n");
}

TEST(AgentService, FramesForUnknownSessionsAreDropped) {
    Harness h;
    h.send(62, protocol::ExecStdin{bytes("nobody")});
    h.send(63, protocol::FsData{bytes("nobody")});
    h.pump(std::chrono::milliseconds(50));
    EXPECT_EQ(h.service().stats().dropped_frames, 2u);
    EXPECT_TRUE(h.frames(62).empty());
}

TEST(AgentService, ShutdownTerminatesSessionsThenReportsDone) {
    ServiceOptions opts;
    opts.kill_grace = std::chrono::milliseconds(300);
    Harness h(opts);
    h.send(70, exec("sleep", {"30"}));
    // A process that ignores SIGTERM needs the SIGKILL after the grace period.
    h.send(71, exec("/bin/sh", {"-c", "trap '' TERM; sleep 30"}));
    h.wait_for(70, MessageType::ExecStarted);
    h.wait_for(71, MessageType::ExecStarted);
    h.pump(std::chrono::milliseconds(100));
    h.send(0, protocol::Shutdown{});
    auto a = summarize(h.wait_terminal(70, std::chrono::seconds(5)));
    auto b = summarize(h.wait_terminal(71, std::chrono::seconds(5)));
    EXPECT_EQ(a.code, 128 + 15);
    EXPECT_EQ(b.code, 128 + 9);
    Deadline d = Deadline::after(std::chrono::seconds(2));
    while (!h.shutdown_done() && !d.expired()) h.pump(std::chrono::milliseconds(10));
    EXPECT_TRUE(h.shutdown_done());
}

TEST(AgentService, HeartbeatIsWrittenAtomicallyWithSessionCount) {
    TempDir dir;
    ServiceOptions opts;
    opts.runtime_dir = dir.path();
    Harness h(opts);
    h.send(80, exec("sleep", {"5"}));
    h.wait_for(80, MessageType::ExecStarted);
    // The first heartbeat is written at start; the next on the 1 s tick.
    Deadline d = Deadline::after(std::chrono::milliseconds(2500));
    std::optional<protocol::Heartbeat> beat;
    while (!d.expired()) {
        h.pump(std::chrono::milliseconds(50));
        std::ifstream in(dir.path() + "/heartbeat.json");
        std::stringstream ss;
        ss << in.rdbuf();
        auto parsed = protocol::parse_heartbeat_json(ss.str());
        if (parsed.ok() && parsed->active_sessions == 1) {
            beat = parsed.value();
            break;
        }
    }
    ASSERT_TRUE(beat.has_value());
    EXPECT_GT(beat->last_activity_ns, 0);
    EXPECT_GE(beat->timestamp_ns, beat->last_activity_ns - 1'000'000'000);
    h.send(80, protocol::ExecSignal{.signal = 9});
    h.wait_terminal(80);
}

TEST(AgentService, HeartbeatIsRewrittenEverySecondByDefault) {
    TempDir dir;
    ServiceOptions opts;
    opts.runtime_dir = dir.path();
    Harness h(opts);
    auto timestamp = [&] {
        std::ifstream in(dir.path() + "/heartbeat.json");
        std::stringstream ss;
        ss << in.rdbuf();
        auto parsed = protocol::parse_heartbeat_json(ss.str());
        return parsed.ok() ? parsed->timestamp_ns : int64_t{0};
    };
    h.pump(std::chrono::milliseconds(200));
    std::vector<int64_t> seen{timestamp()};
    ASSERT_NE(seen[0], 0) << "written at start";
    for (int i = 0; i < 3; i++) {
        h.pump(std::chrono::milliseconds(1000));
        seen.push_back(timestamp());
    }
    // Nothing happened, yet each 1 s tick wrote a fresh timestamp (the protocol's heartbeat).
    for (size_t i = 1; i < seen.size(); i++)
        EXPECT_GT(seen[i], seen[i - 1]) << "tick " << i << " did not rewrite heartbeat.json";
}

TEST(AgentService, HeartbeatIsRewrittenOnlyWhenItChangesWithALongRefresh) {
    TempDir dir;
    ServiceOptions opts;
    opts.runtime_dir = dir.path();
    opts.heartbeat_refresh = std::chrono::seconds(30);
    Harness h(opts);
    std::string path = dir.path() + "/heartbeat.json";
    auto inode = [&] {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
    };
    h.pump(std::chrono::milliseconds(200));
    auto first = inode();
    ASSERT_NE(first, 0u) << "written at start";
    h.pump(std::chrono::milliseconds(2500));  // two ticks with nothing new
    EXPECT_EQ(inode(), first) << "an unchanged heartbeat must not be rewritten";
    h.send(81, exec("true", {}));  // a host frame: last_activity moves
    h.wait_terminal(81);
    h.pump(std::chrono::milliseconds(1500));
    EXPECT_NE(inode(), first) << "activity must reach heartbeat.json on the next tick";
}

TEST(AgentService, NoHeartbeatWithoutRuntimeDir) {
    ServiceOptions opts;
    opts.runtime_dir = "/nonexistent-msb-runtime";
    Harness h(opts);
    h.pump(std::chrono::milliseconds(20));
    struct stat st {};
    EXPECT_NE(::stat("/nonexistent-msb-runtime", &st), 0);
}

}  // namespace
}  // namespace msb::agent
