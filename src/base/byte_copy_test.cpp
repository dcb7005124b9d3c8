#include "base/byte_copy.h"

#include <gtest/gtest.h>

namespace msb {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    return v;
}

TEST(ByteCopy, CopiesEverySizeAndAlignmentExactly) {
    const auto src = pattern(70000, 3);
    for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{63}, size_t{4097},
                     size_t{65536}, size_t{65547}}) {
        for (size_t offset : {size_t{0}, size_t{1}, size_t{7}}) {
            std::vector<uint8_t> dst(n + 16, 0xee);
            copy_bytes(dst.data() + offset, src.data() + offset, n);
            for (size_t i = 0; i < offset; ++i) ASSERT_EQ(dst[i], 0xee);
            ASSERT_TRUE(
                std::equal(src.begin() + offset, src.begin() + offset + n, dst.begin() + offset))
                << "n=" << n << " offset=" << offset;
            for (size_t i = offset + n; i < dst.size(); ++i) ASSERT_EQ(dst[i], 0xee);
        }
    }
}

TEST(ByteCopy, AppendKeepsWhatWasThere) {
    std::vector<uint8_t> out = {1, 2, 3};
    const auto more = pattern(65536, 9);
    append_bytes_to(out, more);
    ASSERT_EQ(out.size(), 3 + more.size());
    EXPECT_EQ(out[0], 1);
    EXPECT_EQ(out[2], 3);
    EXPECT_TRUE(std::equal(more.begin(), more.end(), out.begin() + 3));
    EXPECT_EQ(copy_to_vector(more), more);
    EXPECT_TRUE(copy_to_vector({}).empty());
}

TEST(ByteCopy, ReserveBytesKeepsContentAndNeverShrinks) {
    auto out = pattern(5000, 3);
    const auto before = out;
    reserve_bytes(out, 20000);
    EXPECT_GE(out.capacity(), 20000u);
    EXPECT_EQ(out, before);
    const uint8_t* data = out.data();
    reserve_bytes(out, 100);  // smaller than held: nothing moves
    EXPECT_EQ(out.data(), data);
    EXPECT_EQ(out, before);
    std::vector<uint8_t> empty;
    reserve_bytes(empty, 9);
    EXPECT_TRUE(empty.empty());
    EXPECT_GE(empty.capacity(), 9u);
}

}  // namespace
}  // namespace msb
