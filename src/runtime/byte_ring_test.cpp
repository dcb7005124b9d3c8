#include "runtime/byte_ring.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <numeric>
#include <thread>
#include <vector>

namespace msb::runtime {
namespace {

TEST(ByteRing, WrapsAroundAndKeepsOrder) {
    auto ring = MUST(ByteRing::create(8));
    std::vector<uint8_t> in = {1, 2, 3, 4, 5, 6};
    EXPECT_EQ(ring->write(in), 6u);
    std::vector<uint8_t> out(4);
    EXPECT_EQ(ring->read(out), 4u);
    EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3, 4}));
    std::vector<uint8_t> more = {7, 8, 9, 10, 11, 12};
    EXPECT_EQ(ring->write(more), 6u);  // fills to capacity across the end of the buffer
    EXPECT_EQ(ring->write(more), 0u);  // full: nothing taken, nothing dropped
    std::vector<uint8_t> all(16);
    ASSERT_EQ(ring->read(all), 8u);
    EXPECT_EQ(std::vector<uint8_t>(all.begin(), all.begin() + 8),
              (std::vector<uint8_t>{5, 6, 7, 8, 9, 10, 11, 12}));
}

TEST(ByteRing, ArmRefusesToSleepWhenDataIsThere) {
    auto ring = MUST(ByteRing::create(16));
    EXPECT_TRUE(ring->arm_readable());
    uint8_t b = 1;
    ring->write({&b, 1});
    pollfd p{ring->readable_fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 1);  // the armed reader was woken
    ring->ack_readable();
    EXPECT_FALSE(ring->arm_readable());  // data present: read instead of sleeping
}

TEST(ByteRing, ThreadsTransferEverythingInOrderWithSleepingBothSides) {
    auto ring = MUST(ByteRing::create(4096));
    constexpr size_t kTotal = 32 << 20;
    std::thread producer([&] {
        std::vector<uint8_t> chunk(1000);
        size_t sent = 0;
        while (sent < kTotal) {
            size_t n = std::min(chunk.size(), kTotal - sent);
            for (size_t i = 0; i < n; ++i) chunk[i] = static_cast<uint8_t>((sent + i) * 7);
            size_t off = 0;
            while (off < n) {
                size_t w = ring->write({chunk.data() + off, n - off});
                off += w;
                if (off < n && ring->arm_writable()) {
                    pollfd p{ring->writable_fd(), POLLIN, 0};
                    ::poll(&p, 1, -1);
                    ring->ack_writable();
                }
            }
            sent += n;
        }
    });
    size_t got = 0;
    bool in_order = true;
    std::vector<uint8_t> buf(777);
    while (got < kTotal) {
        size_t n = ring->read(buf);
        for (size_t i = 0; i < n; ++i) in_order &= buf[i] == static_cast<uint8_t>((got + i) * 7);
        got += n;
        if (n == 0 && ring->arm_readable()) {
            pollfd p{ring->readable_fd(), POLLIN, 0};
            ::poll(&p, 1, -1);
            ring->ack_readable();
        }
    }
    producer.join();
    EXPECT_EQ(got, kTotal);
    EXPECT_TRUE(in_order);
}

}  // namespace
}  // namespace msb::runtime
