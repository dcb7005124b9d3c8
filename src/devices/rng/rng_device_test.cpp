// Tests of virtio-rng through the fake driver.
#include "devices/rng/rng_device.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "testing/fake_driver.h"
#include "testing/loop_thread.h"
#include "virtio/mmio_transport.h"

namespace msb::devices {
namespace {

class RngDeviceTest : public ::testing::Test {
protected:
    void SetUp() override {
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 16 << 20}})));
        thread = MUST(msb::testing::LoopThread::create());
        rng = std::make_shared<RngDevice>();
        transport = MUST(virtio::MmioTransport::create(rng));
        transport->attach_memory(*memory);
        MUST(transport->start(thread->loop()));
        driver.emplace(*transport, *memory);
        ASSERT_TRUE(driver->init(~0ull, {64}).ok());
    }
    void TearDown() override { thread.reset(); }

    std::optional<kvm::GuestMemory> memory;
    std::unique_ptr<msb::testing::LoopThread> thread;
    std::shared_ptr<RngDevice> rng;
    std::shared_ptr<virtio::MmioTransport> transport;
    std::optional<msb::testing::FakeDriver> driver;
};

TEST_F(RngDeviceTest, IsDeviceFourWithOneQueue) {
    EXPECT_EQ(driver->read32(0x008), 4u);
    EXPECT_EQ(rng->queue_max_sizes().size(), 1u);
}

TEST_F(RngDeviceTest, FillsWritableBuffersWithRandomBytes) {
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({}, {64, 64}));
    ASSERT_TRUE(q.add({}, {128}, msb::testing::Layout::Indirect));
    q.kick();
    auto a = q.wait_used(std::chrono::seconds(2));
    auto b = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->length, 128u);
    EXPECT_EQ(b->length, 128u);
    EXPECT_NE(a->written, b->written);
    // 128 random bytes are all zero with probability 2^-1024.
    EXPECT_TRUE(std::any_of(a->written.begin(), a->written.end(), [](uint8_t x) { return x; }));
    EXPECT_EQ(rng->bytes_served(), 256u);
}

TEST_F(RngDeviceTest, BoundsTheBytesServedPerRequest) {
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({}, {1 << 20}));
    q.kick();
    auto used = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, RngDevice::kMaxBytesPerRequest);
}

TEST_F(RngDeviceTest, ReadOnlyChainsGetNothing) {
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({{1, 2, 3}}, {}));
    q.kick();
    auto used = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, 0u);
}

}  // namespace
}  // namespace msb::devices
