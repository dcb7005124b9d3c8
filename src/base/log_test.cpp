#include "base/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace msb {
namespace {

TEST(Log, WritesLinesAtOrAboveLevelToTheGivenFd) {
    auto pipe = MUST(Pipe::create(O_NONBLOCK));
    log::init({.level = log::Level::Info, .fd = pipe.write.get(), .name = "test"});
    log::debug("hidden {}", 1);
    log::warn("shown {}", 2);
    char buf[512] = {};
    ssize_t n = ::read(pipe.read.get(), buf, sizeof buf - 1);
    log::init({});
    ASSERT_GT(n, 0);
    std::string out(buf, static_cast<size_t>(n));
    EXPECT_NE(out.find("shown 2"), std::string::npos);
    EXPECT_EQ(out.find("hidden"), std::string::npos);
    EXPECT_NE(out.find("test"), std::string::npos);
}

TEST(Log, ParsesLevels) {
    EXPECT_EQ(log::parse_level("debug"), log::Level::Debug);
    EXPECT_EQ(log::parse_level("off"), log::Level::Off);
    EXPECT_FALSE(log::parse_level("loud").has_value());
}

TEST(RateLimit, AllowsBurstThenEveryNth) {
    log::RateLimit limit(2, 5);
    int allowed = 0;
    for (int i = 0; i < 20; ++i) allowed += limit.allow();
    EXPECT_EQ(allowed, 2 + 4);  // 1,2 then 5,10,15,20
    EXPECT_EQ(limit.count(), 20u);
}

}  // namespace
}  // namespace msb
