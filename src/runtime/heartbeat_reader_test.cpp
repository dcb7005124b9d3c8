// HeartbeatReader: the idle decision at its boundaries and with bad files.
#include "runtime/heartbeat_reader.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace msb::runtime {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr int64_t kNs = 1'000'000'000;

class HeartbeatReaderTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/msb-heartbeat-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        m_dir = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    void write_file(const std::string& text) { std::ofstream(m_dir + "/heartbeat.json") << text; }
    void write_heartbeat(int64_t last_activity_ns, uint32_t sessions) {
        write_file(protocol::encode_heartbeat_json({last_activity_ns, sessions, last_activity_ns}));
    }
    static system_clock::time_point at(int64_t unix_ns) {
        return system_clock::time_point(
            std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(unix_ns)));
    }

    std::string m_dir;
};

// A guest clock hours away from the host's changes nothing: only the guest's own interval
// (timestamp − last_activity) and host time since the heartbeat was first seen count.
TEST_F(HeartbeatReaderTest, ObserveIdleIgnoresAGuestClockFarFromTheHosts) {
    const int64_t guest_now = 1'000 * kNs;  // the guest believes it is 1970
    HeartbeatReader reader(m_dir);
    uint64_t host = 5'000'000 * uint64_t(kNs);
    // Last activity 1.5 s before the heartbeat was written.
    write_file(protocol::encode_heartbeat_json({guest_now, 0, guest_now - 3 * kNs / 2}));
    EXPECT_FALSE(reader.observe_idle(2, host));
    EXPECT_FALSE(reader.observe_idle(2, host + kNs / 4));  // 1.75 s
    EXPECT_TRUE(reader.observe_idle(2, host + kNs / 2));   // 2.0 s
    // The next heartbeat (1 s later on the guest clock, still no activity) restarts the host
    // term but carries the guest's 2.5 s.
    write_file(protocol::encode_heartbeat_json({guest_now + kNs, 0, guest_now - 3 * kNs / 2}));
    EXPECT_TRUE(reader.observe_idle(2, host + 2 * kNs));
    EXPECT_FALSE(reader.observe_idle(3, host + 2 * kNs));
}

TEST_F(HeartbeatReaderTest, ObserveIdleIsNeverIdleWithSessionsOrGarbage) {
    HeartbeatReader reader(m_dir);
    write_file(protocol::encode_heartbeat_json({100 * kNs, 1, 0}));
    EXPECT_FALSE(reader.observe_idle(1, 1'000 * uint64_t(kNs)));
    // last_activity after the heartbeat's own time (a lying guest): counts as no idle time.
    write_file(protocol::encode_heartbeat_json({101 * kNs, 0, 500 * kNs}));
    EXPECT_FALSE(reader.observe_idle(1, 2'000 * uint64_t(kNs)));
    EXPECT_TRUE(reader.observe_idle(1, 2'001 * uint64_t(kNs)));
    write_file("not json");
    EXPECT_FALSE(reader.observe_idle(0, 3'000 * uint64_t(kNs)));
}

TEST_F(HeartbeatReaderTest, IsIdleExactlyFromIdleSecsAfterTheLastActivity) {
    const int64_t last = 1'764'390'000 * kNs + 250'000'000;  // x.25 s
    write_heartbeat(last, 0);
    HeartbeatReader reader(m_dir);
    ASSERT_TRUE(reader.read().has_value());
    EXPECT_FALSE(reader.is_idle(30, at(last + 29 * kNs)));
    EXPECT_FALSE(reader.is_idle(30, at(last + 30 * kNs - 1))) << "29.999999999 s truncates to 29";
    EXPECT_TRUE(reader.is_idle(30, at(last + 30 * kNs)));
    EXPECT_TRUE(reader.is_idle(30, at(last + 31 * kNs)));
}

TEST_F(HeartbeatReaderTest, IsNeverIdleWhileSessionsAreActive) {
    const int64_t last = 1'764'390'000 * kNs;
    write_heartbeat(last, 1);
    HeartbeatReader reader(m_dir);
    EXPECT_FALSE(reader.is_idle(30, at(last + 3600 * kNs)));
    write_heartbeat(last, 0);
    EXPECT_TRUE(reader.is_idle(30, at(last + 3600 * kNs)));
}

TEST_F(HeartbeatReaderTest, ALastActivityInTheFutureIsNotIdle) {
    const int64_t last = 1'764'390'000 * kNs;
    write_heartbeat(last, 0);
    HeartbeatReader reader(m_dir);
    EXPECT_FALSE(reader.is_idle(1, at(last - 5 * kNs)));
    // Less than a second in the future truncates to 0 elapsed, as chrono does.
    EXPECT_TRUE(reader.is_idle(0, at(last - kNs / 2)));
}

TEST_F(HeartbeatReaderTest, MissingOrGarbageFilesAreNotIdle) {
    HeartbeatReader reader(m_dir);
    EXPECT_FALSE(reader.read().has_value());
    EXPECT_FALSE(reader.is_idle(0));
    write_file("{not json");
    EXPECT_FALSE(reader.is_idle(0));
    write_file(R"({"timestamp":"2026-01-01T00:00:00Z","active_sessions":0})");
    EXPECT_FALSE(reader.is_idle(0)) << "missing last_activity";
    write_file(R"({"timestamp":"2026-01-01T00:00:00Z","active_sessions":"0",)"
               R"("last_activity":"2026-01-01T00:00:00Z"})");
    EXPECT_FALSE(reader.is_idle(0)) << "active_sessions of the wrong type";
    write_file(std::string(HeartbeatReader::kMaxFileSize + 10, ' ') +
               protocol::encode_heartbeat_json({0, 0, 0}));
    EXPECT_FALSE(reader.is_idle(0)) << "only the first 64 KiB are read";
}

TEST_F(HeartbeatReaderTest, RefusesSymlinksAndFifosPlantedByTheGuest) {
    const std::string target = m_dir + "/real.json";
    std::ofstream(target) << protocol::encode_heartbeat_json({0, 0, 0});
    std::filesystem::create_symlink(target, m_dir + "/heartbeat.json");
    HeartbeatReader reader(m_dir);
    EXPECT_FALSE(reader.read().has_value());
    std::filesystem::remove(m_dir + "/heartbeat.json");
    ASSERT_EQ(::mkfifo((m_dir + "/heartbeat.json").c_str(), 0600), 0);
    EXPECT_FALSE(reader.read().has_value()) << "must neither block nor read a FIFO";
}

TEST_F(HeartbeatReaderTest, ExtremeTimestampsDoNotOverflow) {
    protocol::Heartbeat hb{0, 0, INT64_MIN + 1};
    EXPECT_TRUE(heartbeat_is_idle(hb, 10, INT64_MAX));
    hb.last_activity_ns = INT64_MAX;
    EXPECT_FALSE(heartbeat_is_idle(hb, 10, INT64_MIN + 1));
}

TEST_F(HeartbeatReaderTest, ReadsAFileWrittenByTheAgentFormat) {
    const auto now = system_clock::now();
    const int64_t now_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    write_heartbeat(now_ns - 100 * kNs, 0);
    HeartbeatReader reader(m_dir);
    auto hb = reader.read();
    ASSERT_TRUE(hb.has_value());
    EXPECT_EQ(hb->last_activity_ns, now_ns - 100 * kNs);
    EXPECT_TRUE(reader.is_idle(100));
    EXPECT_FALSE(reader.is_idle(1000));
}

}  // namespace
}  // namespace msb::runtime
