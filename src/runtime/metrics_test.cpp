#include "runtime/metrics.h"

#include <gtest/gtest.h>

namespace msb::runtime {
namespace {

TEST(ProcessCounters, ParsesStatWithSpacesInTheCommandName) {
    std::string stat =
        "1234 (msb sandbox (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 "
        "1000000 500 18446744073709551615";
    auto c = MUST(parse_process_counters(stat, "2000 300 100 1 0 50 0\n",
                                         "rchar: 1\nread_bytes: 4096\nwrite_bytes: 8192\n", 4096));
    EXPECT_EQ(c.cpu_ticks, 300u);
    EXPECT_EQ(c.rss_bytes, 300u * 4096);
    EXPECT_EQ(c.read_bytes, 4096u);
    EXPECT_EQ(c.write_bytes, 8192u);
}

TEST(ProcessCounters, RejectsGarbageAndToleratesMissingIo) {
    EXPECT_FALSE(parse_process_counters("garbage", "1 2", "", 4096).ok());
    EXPECT_FALSE(parse_process_counters("1 (x) S 1 2", "1 2", "", 4096).ok());
    std::string stat = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1";
    auto c = MUST(parse_process_counters(stat, "10 20 0", "", 4096));
    EXPECT_EQ(c.cpu_ticks, 10u);
    EXPECT_EQ(c.read_bytes, 0u);
}

TEST(ProcessCounters, ReadsThisProcess) {
    auto c = MUST(read_process_counters());
    EXPECT_GT(c.rss_bytes, 0u);
}

TEST(CpuPercent, IsRelativeToOneCore) {
    EXPECT_DOUBLE_EQ(cpu_percent(100, 1.0, 100), 100.0);
    EXPECT_DOUBLE_EQ(cpu_percent(50, 2.0, 100), 25.0);
    EXPECT_DOUBLE_EQ(cpu_percent(5, 0.0, 100), 0.0);
}

}  // namespace
}  // namespace msb::runtime
