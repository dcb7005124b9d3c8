// Tests of the virtio-mmio transport, driven by the fake Linux-style driver.
#include "virtio/mmio_transport.h"

#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <atomic>

#include "testing/fake_driver.h"
#include "testing/loop_thread.h"
#include "virtio/features.h"
#include "virtio/ring_abi.h"

namespace msb::virtio {
namespace {

using msb::testing::FakeDriver;
using msb::testing::Layout;
using msb::testing::LoopThread;
using msb::testing::take_interrupts;

constexpr uint64_t kEchoFeature = feature_bit(3);
constexpr uint64_t kEverything = ~0ull;

// Copies each chain's readable bytes into its writable part.
class EchoDevice : public VirtioDevice {
public:
    uint32_t device_type() const override { return 42; }
    uint64_t device_features() const override { return kEchoFeature; }
    std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override {
        for (size_t i = 0; i < data.size(); ++i)
            data[i] = offset + i < 8 ? static_cast<uint8_t>(0x10 + offset + i) : 0;
    }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override {
        if (offset == 0 && !data.empty()) config_writes = data[0];
    }
    Status activate(DeviceContext context) override {
        queues = std::move(context.queues);
        features = context.features;
        // `memory` is a reference member: this is the address of the VM's GuestMemory.
        // cppcheck-suppress danglingLifetime
        memory = &context.memory;
        ++activations;
        return {};
    }
    void queue_notify(size_t index) override {
        Queue& q = queues[index];
        while (auto chain = q.pop()) {
            DescriptorChainReader in(*memory, *chain);
            DescriptorChainWriter out(*memory, *chain);
            while (in.remaining() && out.remaining()) {
                auto src = in.peek();
                size_t n = out.write(src);
                in.consume(n);
            }
            q.add_used(chain->head(), out.bytes_written());
        }
        q.notify_used();
    }
    void reset() override {
        queues.clear();
        ++resets;
    }

    std::vector<Queue> queues;
    uint64_t features = 0;
    const kvm::GuestMemory* memory = nullptr;
    std::atomic<int> activations{0};
    std::atomic<int> resets{0};
    std::atomic<int> config_writes{0};
};

class MmioTransportTest : public ::testing::Test {
protected:
    void SetUp() override {
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 8 << 20}})));
        thread = MUST(LoopThread::create());
        device = std::make_shared<EchoDevice>();
        transport = MUST(MmioTransport::create(device));
        transport->attach_memory(*memory);
        MUST(transport->start(thread->loop()));
        driver.emplace(*transport, *memory);
    }
    void TearDown() override { thread.reset(); }

    std::optional<kvm::GuestMemory> memory;
    std::unique_ptr<LoopThread> thread;
    std::shared_ptr<EchoDevice> device;
    std::shared_ptr<MmioTransport> transport;
    std::optional<FakeDriver> driver;
};

TEST_F(MmioTransportTest, IdentifiesAsAVersion2Device) {
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976u);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_VERSION), 2u);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_DEVICE_ID), 42u);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_VENDOR_ID), MmioTransport::kVendorId);
}

TEST_F(MmioTransportTest, OffersVersion1EventIndexIndirectAndDeviceFeatures) {
    uint64_t offered = driver->device_features();
    EXPECT_TRUE(has_feature(offered, VIRTIO_F_VERSION_1));
    EXPECT_TRUE(has_feature(offered, VIRTIO_RING_F_EVENT_IDX));
    EXPECT_TRUE(has_feature(offered, VIRTIO_RING_F_INDIRECT_DESC));
    EXPECT_TRUE(offered & kEchoFeature);
    EXPECT_FALSE(has_feature(offered, VIRTIO_F_RING_PACKED));
    driver->write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_DEVICE_FEATURES), 0u);
}

TEST_F(MmioTransportTest, NegotiationKeepsTheAcceptedSubset) {
    ASSERT_TRUE(driver->negotiate(feature_bit(VIRTIO_F_VERSION_1) | kEchoFeature).ok());
    EXPECT_EQ(transport->driver_features(), feature_bit(VIRTIO_F_VERSION_1) | kEchoFeature);
    EXPECT_EQ(driver->status(), uint32_t{VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                         VIRTIO_CONFIG_S_FEATURES_OK});
}

TEST_F(MmioTransportTest, RefusesFeaturesThatWereNotOffered) {
    driver->write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    driver->write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    driver->write32(VIRTIO_MMIO_DRIVER_FEATURES, 1 | (1u << (VIRTIO_F_RING_PACKED - 32)));
    driver->write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                            VIRTIO_CONFIG_S_FEATURES_OK);
    EXPECT_FALSE(driver->status() & VIRTIO_CONFIG_S_FEATURES_OK);
    EXPECT_GT(transport->rejected_accesses(), 0u);
}

TEST_F(MmioTransportTest, RefusesADriverWithoutVersion1) {
    EXPECT_FALSE(driver->negotiate(kEchoFeature).ok());
    EXPECT_FALSE(driver->status() & VIRTIO_CONFIG_S_FEATURES_OK);
}

TEST_F(MmioTransportTest, DriverOkWithoutFeaturesOkDoesNotActivate) {
    driver->write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                            VIRTIO_CONFIG_S_DRIVER_OK);
    EXPECT_FALSE(driver->status() & VIRTIO_CONFIG_S_DRIVER_OK);
    thread->run_sync([] {});
    EXPECT_EQ(device->activations, 0);
}

TEST_F(MmioTransportTest, StatusWritesThatClearBitsAreIgnored) {
    driver->write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    driver->write32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_DRIVER);
    EXPECT_EQ(driver->status(), uint32_t{VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER});
}

TEST_F(MmioTransportTest, DriverOkActivatesTheDeviceAndQueuesCarryData) {
    ASSERT_TRUE(driver->init(kEverything, {16, 8}).ok());
    EXPECT_TRUE(driver->status() & VIRTIO_CONFIG_S_DRIVER_OK);
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({{1, 2, 3}, {4}}, {2, 8}).has_value());
    ASSERT_TRUE(q.add({{5, 6}}, {2}, Layout::Indirect).has_value());
    q.kick();
    auto first = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->written, (std::vector<uint8_t>{1, 2, 3, 4}));
    auto second = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->written, (std::vector<uint8_t>{5, 6}));
    EXPECT_EQ(device->activations, 1);
    EXPECT_TRUE(has_feature(device->features, VIRTIO_RING_F_EVENT_IDX));
    // The used-buffer interrupt was raised and is visible in InterruptStatus until acked.
    EXPECT_GT(take_interrupts(transport->irq_fd()), 0u);
    EXPECT_TRUE(driver->read32(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING);
    driver->write32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0u);
}

TEST_F(MmioTransportTest, QueueSizeMustBeAPowerOfTwoWithinTheMaximum) {
    ASSERT_TRUE(driver->negotiate(kEverything).ok());
    EXPECT_FALSE(driver->setup_queue(0, 12).ok());  // 12 is not a power of two
    driver->write32(VIRTIO_MMIO_QUEUE_SEL, 1);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 8u);
    driver->write32(VIRTIO_MMIO_QUEUE_SEL, 7);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0u);
    EXPECT_FALSE(driver->setup_queue(7, 8).ok());
}

TEST_F(MmioTransportTest, QueueRingsOutsideGuestMemoryAreRefused) {
    ASSERT_TRUE(driver->negotiate(kEverything).ok());
    driver->write32(VIRTIO_MMIO_QUEUE_SEL, 0);
    driver->write32(VIRTIO_MMIO_QUEUE_NUM, 16);
    driver->write32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
    driver->write32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2000);
    driver->write32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x3000);
    driver->write32(VIRTIO_MMIO_QUEUE_USED_HIGH, 0x10);  // 64 GiB: outside RAM
    driver->write32(VIRTIO_MMIO_QUEUE_READY, 1);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_QUEUE_READY), 0u);
    driver->write32(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    driver->write32(VIRTIO_MMIO_QUEUE_READY, 1);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_QUEUE_READY), 1u);
}

TEST_F(MmioTransportTest, ResetReturnsToTheInitialStateAndResetsTheDevice) {
    ASSERT_TRUE(driver->init(kEverything, {16}).ok());
    thread->run_sync([] {});
    ASSERT_EQ(device->activations, 1);
    driver->reset();
    EXPECT_EQ(device->resets, 1);  // synchronous: done before the write returns
    EXPECT_EQ(driver->status(), 0u);
    EXPECT_EQ(transport->driver_features(), 0u);
    driver->write32(VIRTIO_MMIO_QUEUE_SEL, 0);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_QUEUE_READY), 0u);
    // The device works again after a second probe.
    ASSERT_TRUE(driver->init(kEverything, {16}).ok());
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({{9}}, {1}).has_value());
    q.kick();
    auto used = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(used->written, std::vector<uint8_t>{9});
    EXPECT_EQ(device->activations, 2);
}

TEST_F(MmioTransportTest, ConfigSpaceIsDelegatedToTheDevice) {
    EXPECT_EQ(driver->read_config(0, 1), 0x10u);
    EXPECT_EQ(driver->read_config(2, 2), 0x1312u);
    EXPECT_EQ(driver->read_config(4, 4), 0x17161514u);
    EXPECT_EQ(driver->read_config(100, 4), 0u);
    uint8_t value = 7;
    transport->mmio_write(VIRTIO_MMIO_CONFIG, {&value, 1});
    EXPECT_EQ(device->config_writes, 7);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_CONFIG_GENERATION), 0u);
}

TEST_F(MmioTransportTest, ListsOneNotifyEventPerQueue) {
    auto events = transport->notify_events();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].offset, uint64_t{VIRTIO_MMIO_QUEUE_NOTIFY});
    EXPECT_EQ(events[1].datamatch, 1u);
    EXPECT_NE(events[0].fd, events[1].fd);
    EXPECT_GE(transport->irq_fd(), 0);
}

TEST_F(MmioTransportTest, MisalignedOrNarrowRegisterAccessesAreIgnored) {
    uint8_t byte = 0xff;
    transport->mmio_write(VIRTIO_MMIO_STATUS, {&byte, 1});
    EXPECT_EQ(driver->status(), 0u);
    uint16_t half = 0;
    transport->mmio_read(VIRTIO_MMIO_MAGIC_VALUE, {reinterpret_cast<uint8_t*>(&half), 2});
    EXPECT_EQ(half, 0);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_MAGIC_VALUE + 1), 0u);
    EXPECT_GE(transport->rejected_accesses(), 3u);
}

TEST_F(MmioTransportTest, CorruptRingSetsNeedsResetAndRaisesAConfigInterrupt) {
    ASSERT_TRUE(driver->init(kEverything, {16}).ok());
    auto& q = driver->queue(0);
    take_interrupts(transport->irq_fd());
    q.set_avail_idx(100);
    q.kick();
    for (int i = 0; i < 200 && !(driver->status() & VIRTIO_CONFIG_S_NEEDS_RESET); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(driver->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
    EXPECT_TRUE(driver->read32(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
    EXPECT_EQ(driver->read32(VIRTIO_MMIO_CONFIG_GENERATION), 1u);
    driver->reset();
    EXPECT_FALSE(driver->status() & VIRTIO_CONFIG_S_NEEDS_RESET);
}

}  // namespace
}  // namespace msb::virtio
