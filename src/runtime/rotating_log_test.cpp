// RotatingLog: rotation at the limit, number of kept files, appending across reopen.
#include "runtime/rotating_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace msb::runtime {
namespace {

class RotatingLogTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/msb-rotating-log-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        m_dir = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    std::string file(const std::string& name) const { return m_dir + "/logs/" + name; }
    std::string read(const std::string& name) const {
        std::ifstream in(file(name), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    bool exists(const std::string& name) const { return std::filesystem::exists(file(name)); }

    std::string m_dir;
};

TEST_F(RotatingLogTest, AppendsUntilTheNextWriteWouldExceedTheLimit) {
    auto log = RotatingLog::open(m_dir + "/logs", "host", 10);
    ASSERT_TRUE(log.ok()) << log.error().message();
    EXPECT_EQ(log->path(), file("host.log"));
    ASSERT_TRUE(log->write("12345").ok());
    ASSERT_TRUE(log->write("67890").ok());  // exactly at the limit: no rotation yet
    EXPECT_EQ(read("host.log"), "1234567890");
    EXPECT_FALSE(exists("host.log.1"));
    ASSERT_TRUE(log->write("a").ok());  // would exceed: rotate first
    EXPECT_EQ(read("host.log.1"), "1234567890");
    EXPECT_EQ(read("host.log"), "a");
    EXPECT_EQ(log->size(), 1u);
}

TEST_F(RotatingLogTest, KeepsExactlyThreeOldFilesAndDropsTheOldest) {
    auto log = RotatingLog::open(m_dir + "/logs", "host", 4);
    ASSERT_TRUE(log.ok());
    for (char c = 'a'; c <= 'f'; ++c) ASSERT_TRUE(log->write(std::string(4, c)).ok());
    EXPECT_EQ(read("host.log"), "ffff");
    EXPECT_EQ(read("host.log.1"), "eeee");
    EXPECT_EQ(read("host.log.2"), "dddd");
    EXPECT_EQ(read("host.log.3"), "cccc");
    EXPECT_FALSE(exists("host.log.4"));
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(m_dir + "/logs")) {
        (void)e;
        ++files;
    }
    EXPECT_EQ(files, 4u);
}

TEST_F(RotatingLogTest, ReopeningAppendsAndCountsTheExistingSize) {
    {
        auto log = RotatingLog::open(m_dir + "/logs", "guest", 10);
        ASSERT_TRUE(log.ok());
        ASSERT_TRUE(log->write("123456").ok());
    }
    auto log = RotatingLog::open(m_dir + "/logs", "guest", 10);
    ASSERT_TRUE(log.ok());
    EXPECT_EQ(log->size(), 6u);
    ASSERT_TRUE(log->write("7890").ok());
    EXPECT_EQ(read("guest.log"), "1234567890");
    EXPECT_FALSE(exists("guest.log.1"));
    ASSERT_TRUE(log->write("x").ok());
    EXPECT_EQ(read("guest.log.1"), "1234567890");
    EXPECT_EQ(read("guest.log"), "x");
}

TEST_F(RotatingLogTest, AWriteLargerThanTheLimitIsWrittenWholeIntoAFreshFile) {
    auto log = RotatingLog::open(m_dir + "/logs", "host", 8);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log->write("ab").ok());
    const std::string big(20, 'Z');
    ASSERT_TRUE(log->write(big).ok());
    EXPECT_EQ(read("host.log.1"), "ab");
    EXPECT_EQ(read("host.log"), big);
    // The oversized file rotates on the next write; an empty file never rotates.
    ASSERT_TRUE(log->write("c").ok());
    EXPECT_EQ(read("host.log.1"), big);
    EXPECT_EQ(read("host.log.2"), "ab");
    EXPECT_EQ(read("host.log"), "c");

    auto fresh = RotatingLog::open(m_dir + "/logs", "empty", 8);
    ASSERT_TRUE(fresh.ok());
    ASSERT_TRUE(fresh->write(big).ok());
    EXPECT_FALSE(exists("empty.log.1")) << "no empty rotated file";
    EXPECT_EQ(read("empty.log"), big);
}

TEST_F(RotatingLogTest, OpenFailsWithAClearErrorWhenTheDirectoryCannotBeCreated) {
    std::ofstream(m_dir + "/not-a-dir") << "x";
    auto log = RotatingLog::open(m_dir + "/not-a-dir/logs", "host");
    ASSERT_FALSE(log.ok());
    EXPECT_NE(log.error().message().find("create log directory"), std::string::npos)
        << log.error().message();
}

}  // namespace
}  // namespace msb::runtime
