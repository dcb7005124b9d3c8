#include "base/time.h"

#include <gtest/gtest.h>

namespace msb {
namespace {

TEST(Rfc3339, FormatsUtcSeconds) {
    EXPECT_EQ(format_rfc3339(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_rfc3339(1796272296), "2026-12-03T04:31:36Z");
}

TEST(Rfc3339, ParsesWhatItFormats) {
    for (int64_t t : {0LL, 951782400LL, 1796272296LL, 4102444800LL})
        EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t);
}

TEST(Rfc3339, ParsesFractionsAndOffsets) {
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:10.123456Z"), 10);
    EXPECT_EQ(parse_rfc3339("1970-01-01T01:00:00+01:00"), 0);
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00-00:30"), 1800);
}

TEST(Rfc3339, RejectsMalformedText) {
    for (const char* s : {"", "garbage", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00",
                          "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Zjunk", "2026-01-01 00:00"})
        EXPECT_FALSE(parse_rfc3339(s).has_value()) << s;
}

TEST(Deadline, ExpiresAndClampsRemaining) {
    auto d = Deadline::after(std::chrono::milliseconds(0));
    EXPECT_TRUE(d.expired());
    EXPECT_EQ(d.remaining().count(), 0);
    auto later = Deadline::after(std::chrono::hours(1));
    EXPECT_FALSE(later.expired());
    EXPECT_EQ(later.remaining(std::chrono::milliseconds(50)).count(), 50);
    EXPECT_FALSE(Deadline::never().expired());
}

TEST(SqlTimestamp, HasStoreFormat) {
    std::string s = sql_timestamp_now();
    ASSERT_EQ(s.size(), 19u);
    EXPECT_EQ(s[10], ' ');
    EXPECT_EQ(s[4], '-');
}

}  // namespace
}  // namespace msb
