#include "runtime/agent_console.h"

#include <gtest/gtest.h>
#include <poll.h>

namespace msb::runtime {
namespace {

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

TEST(AgentConsoleBackend, ReadWouldBlockUntilTheRelayWritesThenWakes) {
    auto to_guest = MUST(ByteRing::create(64));
    auto from_guest = MUST(ByteRing::create(64));
    AgentConsoleBackend backend(*to_guest, *from_guest);
    uint8_t buf[16];
    auto r = backend.read(buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EAGAIN);
    EXPECT_FALSE(readable(backend.read_wake_fd()));  // no news: the device must not spin
    uint8_t data[3] = {1, 2, 3};
    to_guest->write(data);
    EXPECT_TRUE(readable(backend.read_wake_fd()));
    EXPECT_EQ(MUST(backend.read(buf)), 3u);
}

TEST(AgentConsoleBackend, WriteStopsWhenTheRelayIsBehindAndResumes) {
    auto to_guest = MUST(ByteRing::create(64));
    auto from_guest = MUST(ByteRing::create(64));
    AgentConsoleBackend backend(*to_guest, *from_guest);
    std::vector<uint8_t> big(100, 7);
    EXPECT_EQ(MUST(backend.write(big)), 64u);  // partial: the ring holds 64
    auto r = backend.write(big);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), EAGAIN);
    EXPECT_FALSE(readable(backend.write_wake_fd()));
    uint8_t out[10];
    from_guest->read(out);  // the relay drains some
    EXPECT_TRUE(readable(backend.write_wake_fd()));
    EXPECT_EQ(MUST(backend.write(big)), 10u);
}

}  // namespace
}  // namespace msb::runtime
