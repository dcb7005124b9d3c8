// Tests of the split virtqueue (rings laid out by the fake Linux-style driver).
#include "virtio/queue.h"

#include <gtest/gtest.h>
#include <linux/virtio_mmio.h>

#include "testing/fake_driver.h"
#include "virtio/features.h"
#include "virtio/ring_abi.h"

namespace msb::virtio {
namespace {

using msb::testing::FakeQueue;
using msb::testing::GuestHeap;
using msb::testing::Layout;
using msb::testing::take_interrupts;

// Kicks go nowhere: these tests call the Queue directly on the test thread.
class NullDevice : public MmioDevice {
public:
    void mmio_read(uint64_t, std::span<uint8_t>) override {}
    void mmio_write(uint64_t, std::span<const uint8_t>) override { ++kicks; }
    std::vector<NotifyEvent> notify_events() const override { return {}; }
    int irq_fd() const override { return -1; }
    Status start(EventLoop&) override { return {}; }
    int kicks = 0;
};

class QueueTest : public ::testing::Test {
protected:
    void SetUp() override {
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 16 << 20}})));
        interrupt.emplace(MUST(Interrupt::create()));
        heap.emplace(*memory, 0x10000);
    }
    // Lays out a ring of `size` entries and builds the device-side queue over it.
    void make(uint16_t size, uint64_t features) {
        fq.emplace(device, *heap, 0, size);
        QueueConfig config{.max_size = 256,
                           .size = size,
                           .ready = true,
                           .desc_table = fq->desc_table(),
                           .avail_ring = fq->avail_ring(),
                           .used_ring = fq->used_ring()};
        queue = MUST(Queue::create("test queue", config, *memory, *interrupt, features));
        if (features & feature_bit(VIRTIO_RING_F_EVENT_IDX)) fq->set_event_idx(true);
    }

    NullDevice device;
    std::optional<kvm::GuestMemory> memory;
    std::optional<Interrupt> interrupt;
    std::optional<GuestHeap> heap;
    std::optional<FakeQueue> fq;
    Queue queue;
};

TEST_F(QueueTest, IndicesWrapAroundFrom65535To0) {
    make(4, 0);
    // 70000 round trips carry both 16-bit indices across 65535 → 0.
    for (uint32_t i = 0; i < 70000; ++i) {
        uint8_t tag = static_cast<uint8_t>(i);
        ASSERT_TRUE(fq->add({{tag}}, {1}).has_value()) << i;
        auto chain = queue.pop();
        ASSERT_TRUE(chain.has_value()) << i;
        DescriptorChainReader in(*memory, *chain);
        auto got = in.read_obj<uint8_t>();
        ASSERT_EQ(got, tag) << i;
        DescriptorChainWriter out(*memory, *chain);
        ASSERT_TRUE(out.write_obj<uint8_t>(static_cast<uint8_t>(tag + 1)));
        queue.add_used(chain->head(), out.bytes_written());
        auto used = fq->take_used();
        ASSERT_TRUE(used.has_value()) << i;
        ASSERT_EQ(used->written, std::vector<uint8_t>{static_cast<uint8_t>(tag + 1)}) << i;
    }
    EXPECT_EQ(queue.next_avail(), static_cast<uint16_t>(70000));
    EXPECT_EQ(queue.next_used(), static_cast<uint16_t>(70000));
    EXPECT_EQ(queue.malformed_chains(), 0u);
    EXPECT_FALSE(queue.pop().has_value());
}

TEST_F(QueueTest, EventIndexSuppressesInterruptsUntilUsedEventIsPassed) {
    make(8, feature_bit(VIRTIO_RING_F_EVENT_IDX));
    fq->set_used_event(2);  // "interrupt me when the used index passes 2"
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    take_interrupts(interrupt->fd());
    int raised_at = -1;
    for (int i = 0; i < 4; ++i) {
        auto chain = queue.pop();
        ASSERT_TRUE(chain.has_value());
        queue.add_used(chain->head(), 0);
        queue.notify_used();
        if (take_interrupts(interrupt->fd()) > 0) {
            EXPECT_EQ(raised_at, -1) << "only one interrupt expected";
            raised_at = i;
        }
    }
    EXPECT_EQ(raised_at, 2);  // used idx became 3 = used_event + 1
    EXPECT_TRUE(interrupt->status() & VIRTIO_MMIO_INT_VRING);
}

TEST_F(QueueTest, EventIndexPublishesAvailEventWhenTheRingDrains) {
    make(8, feature_bit(VIRTIO_RING_F_EVENT_IDX));
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    ASSERT_TRUE(queue.pop().has_value());
    ASSERT_TRUE(queue.pop().has_value());
    EXPECT_FALSE(queue.pop().has_value());
    EXPECT_EQ(fq->avail_event(), 2);
    // Linux's kick_prepare: the next buffer crosses avail_event, so the driver must kick;
    // the one after that does not need another kick.
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    EXPECT_TRUE(fq->kick_if_needed());
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    EXPECT_FALSE(fq->kick_if_needed());
}

TEST_F(QueueTest, NoInterruptFlagSuppressesInterruptsWithoutEventIndex) {
    make(8, 0);
    fq->set_no_interrupt(true);
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    auto chain = queue.pop();
    queue.add_used(chain->head(), 0);
    queue.notify_used();
    EXPECT_EQ(take_interrupts(interrupt->fd()), 0u);
    fq->set_no_interrupt(false);
    ASSERT_TRUE(fq->add({{1}}, {}).has_value());
    chain = queue.pop();
    queue.add_used(chain->head(), 0);
    queue.notify_used();
    EXPECT_EQ(take_interrupts(interrupt->fd()), 1u);
    queue.notify_used();  // nothing new: no interrupt
    EXPECT_EQ(take_interrupts(interrupt->fd()), 0u);
}

TEST_F(QueueTest, IndirectChainsArePoppedWhenNegotiated) {
    make(8, feature_bit(VIRTIO_RING_F_INDIRECT_DESC));
    ASSERT_TRUE(fq->add({{1, 2}, {3}}, {4, 4}, Layout::Indirect).has_value());
    auto chain = queue.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_EQ(chain->readable_bytes(), 3u);
    EXPECT_EQ(chain->writable_bytes(), 8u);
}

TEST_F(QueueTest, MalformedChainIsReturnedEmptyAndSkipped) {
    make(8, 0);
    // A looping chain by hand at descriptors 6 → 7 → 6.
    fq->write_descriptor(6, {0x2000, 1, VRING_DESC_F_NEXT, 7});
    fq->write_descriptor(7, {0x2000, 1, VRING_DESC_F_NEXT, 6});
    fq->publish(6);
    // Then indirect without negotiation, then a good chain.
    fq->write_descriptor(5, {0x8000, 16, VRING_DESC_F_INDIRECT, 0});
    fq->publish(5);
    ASSERT_TRUE(fq->add({{42}}, {}).has_value());

    auto chain = queue.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_EQ(queue.malformed_chains(), 2u);
    EXPECT_FALSE(queue.broken());
    EXPECT_FALSE(interrupt->needs_reset());
    auto first = fq->take_used();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->head, 6);
    EXPECT_EQ(first->length, 0u);
    auto second = fq->take_used();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->head, 5);
}

TEST_F(QueueTest, AvailIndexRunningAheadBreaksTheQueueAndAsksForReset) {
    make(8, 0);
    take_interrupts(interrupt->fd());
    fq->set_avail_idx(9);
    EXPECT_FALSE(queue.pop().has_value());
    EXPECT_TRUE(queue.broken());
    EXPECT_TRUE(interrupt->needs_reset());
    EXPECT_TRUE(interrupt->status() & VIRTIO_MMIO_INT_CONFIG);
    EXPECT_EQ(take_interrupts(interrupt->fd()), 1u);
    fq->set_avail_idx(0);
    EXPECT_FALSE(queue.pop().has_value());  // stays broken until reset
}

TEST_F(QueueTest, HeadIndexOutsideTheTableBreaksTheQueue) {
    make(8, 0);
    fq->publish(200);
    EXPECT_FALSE(queue.pop().has_value());
    EXPECT_TRUE(queue.broken());
    EXPECT_TRUE(interrupt->needs_reset());
}

TEST(QueueConfigTest, ValidationRejectsBadSizesAlignmentAndAddresses) {
    auto memory = MUST(kvm::GuestMemory::create({{0, 1 << 20}}));
    QueueConfig good{.max_size = 256,
                     .size = 16,
                     .ready = false,
                     .desc_table = 0x1000,
                     .avail_ring = 0x2000,
                     .used_ring = 0x3000};
    EXPECT_TRUE(validate_queue_config(good, memory).ok());
    auto with = [&](auto change) {
        QueueConfig c = good;
        change(c);
        return validate_queue_config(c, memory).ok();
    };
    EXPECT_FALSE(with([](QueueConfig& c) { c.size = 0; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.size = 24; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.size = 512; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.desc_table = 0x1008; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.avail_ring = 0x2001; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.used_ring = 0x3002; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.used_ring = (1 << 20) - 64; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.desc_table = 1ull << 40; }));
    EXPECT_FALSE(with([](QueueConfig& c) { c.avail_ring = ~0ull - 1; }));
}

}  // namespace
}  // namespace msb::virtio
