// FakeDriver: a guest virtio driver in a test, so devices are tested without /dev/kvm.
//
// It drives an MmioDevice's registers the way Linux's virtio-mmio driver does at probe (reset,
// ACKNOWLEDGE, DRIVER, feature pages, FEATURES_OK read back, per-queue setup, DRIVER_OK) and
// lays out split rings in a GuestMemory the way Linux's virtio_ring does (descriptor table,
// available ring right after it, used ring on the next 4 KiB boundary; a free list of
// descriptors; readable buffers before writable ones; optional indirect tables; event index).
//
//   auto memory = MUST(kvm::GuestMemory::create({{0, 16 << 20}}));
//   transport->attach_memory(memory); MUST(transport->start(loop_thread->loop()));
//   FakeDriver driver(*transport, memory);
//   MUST(driver.init(kAllFeatures, {{.size = 64}}));
//   driver.queue(0).add({{bytes}}, {128});  driver.queue(0).kick();
//   auto used = driver.queue(0).wait_used(std::chrono::seconds(2));
//
// Not thread-safe: one test thread drives it. Buffers are allocated from a bump allocator over
// guest RAM starting at `heap_start` and never reused.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"
#include "virtio/mmio_device.h"
#include "virtio/ring_abi.h"

namespace msb::testing {

// Bump allocator of guest-physical addresses.
class GuestHeap {
public:
    GuestHeap(const kvm::GuestMemory& memory, uint64_t start) : m_memory(memory), m_next(start) {}
    // REQUIRES: the allocation fits in guest RAM (aborts the test otherwise).
    uint64_t allocate(uint64_t size, uint64_t align = 8);
    const kvm::GuestMemory& memory() const { return m_memory; }

private:
    const kvm::GuestMemory& m_memory;
    uint64_t m_next;
};

enum class Layout { Direct, Indirect };

struct UsedBuffer {
    uint16_t head;
    uint32_t length;
    std::vector<uint8_t> written;  // the first `length` bytes of the chain's writable buffers
};

class FakeQueue {
public:
    FakeQueue(virtio::MmioDevice& device, GuestHeap& heap, uint16_t index, uint16_t size);

    uint16_t size() const { return m_size; }
    uint64_t desc_table() const { return m_desc; }
    uint64_t avail_ring() const { return m_avail; }
    uint64_t used_ring() const { return m_used; }

    // Adds a chain of readable buffers (copied into guest RAM) followed by writable buffers of
    // the given lengths, and publishes it. Returns the head, or nullopt when the ring is full.
    std::optional<uint16_t> add(const std::vector<std::vector<uint8_t>>& readable,
                                const std::vector<uint32_t>& writable,
                                Layout layout = Layout::Direct);
    // Raw access for malformed-chain tests: writes descriptor `index` of the table (or of any
    // table at `table`), and publishes `head` in the available ring.
    void write_descriptor(uint16_t index, const vring_desc& desc);
    void write_descriptor_at(uint64_t table, uint16_t index, const vring_desc& desc);
    void publish(uint16_t head);
    // Sets the available index directly (corrupt-ring tests).
    void set_avail_idx(uint16_t idx);

    // Writes QueueNotify (as a vCPU exit would deliver it).
    void kick();
    // Kicks only if the device asked for it (avail_event / VRING_USED_F_NO_NOTIFY), like Linux's
    // virtqueue_kick_prepare. Returns whether it kicked.
    bool kick_if_needed();

    // Takes the next used buffer if there is one (and frees its descriptors).
    std::optional<UsedBuffer> take_used();
    // Polls for a used buffer until `timeout`.
    std::optional<UsedBuffer> wait_used(std::chrono::milliseconds timeout);
    uint16_t used_idx() const;

    // Driver-side interrupt suppression: used_event (EVENT_IDX) and VRING_AVAIL_F_NO_INTERRUPT.
    void set_used_event(uint16_t value);
    void set_no_interrupt(bool suppress);
    // avail_event as written by the device.
    uint16_t avail_event() const;
    uint16_t avail_idx() const { return m_avail_idx; }
    // Whether VIRTIO_RING_F_EVENT_IDX was negotiated (FakeDriver sets it; tests that build a
    // FakeQueue by hand set it themselves).
    void set_event_idx(bool on) { m_event_idx = on; }
    uint16_t free_descriptors() const { return static_cast<uint16_t>(m_free.size()); }

private:
    friend class FakeDriver;
    struct Pending {
        std::vector<uint16_t> descriptors;
        std::vector<std::pair<uint64_t, uint32_t>> writable;  // address, length
    };

    virtio::MmioDevice& m_device;
    GuestHeap& m_heap;
    const kvm::GuestMemory& m_memory;
    uint16_t m_index;
    uint16_t m_size;
    uint64_t m_desc;
    uint64_t m_avail;
    uint64_t m_used;
    uint16_t m_avail_idx = 0;
    uint16_t m_last_kick_idx = 0;
    uint16_t m_last_used = 0;
    bool m_event_idx = false;      // VIRTIO_RING_F_EVENT_IDX was negotiated
    std::vector<uint16_t> m_free;  // free descriptor indices (stack)
    std::map<uint16_t, Pending> m_pending;
};

class FakeDriver {
public:
    // `heap_start`: where ring and buffer allocations begin in guest RAM.
    FakeDriver(virtio::MmioDevice& device, const kvm::GuestMemory& memory,
               uint64_t heap_start = 0x100000);

    uint32_t read32(uint64_t offset);
    void write32(uint64_t offset, uint32_t value);

    // Reset + ACKNOWLEDGE + DRIVER + feature negotiation + FEATURES_OK (read back).
    // Accepts offered & wanted. Fails if the device refuses FEATURES_OK.
    Status negotiate(uint64_t wanted_features);
    // Sets up queue `index` with min(size, QueueNumMax) entries and writes QueueReady.
    // Fails when the queue does not exist, is already live, or reads back not ready.
    Status setup_queue(uint16_t index, uint16_t size);
    void driver_ok();
    // The whole Linux probe sequence: negotiate, set up `queue_sizes.size()` queues, DRIVER_OK.
    Status init(uint64_t wanted_features, const std::vector<uint16_t>& queue_sizes);
    void reset() { write32(0x70, 0); }

    uint32_t status() { return read32(0x70); }
    uint64_t device_features();
    uint64_t accepted_features() const { return m_accepted; }
    // Config space read of `size` bytes (1, 2, 4) at `offset` within the device config.
    uint32_t read_config(uint64_t offset, size_t size);

    FakeQueue& queue(uint16_t index) { return m_queues.at(index); }
    bool has_queue(uint16_t index) const { return m_queues.count(index) != 0; }
    GuestHeap& heap() { return m_heap; }

private:
    virtio::MmioDevice& m_device;
    const kvm::GuestMemory& m_memory;
    GuestHeap m_heap;
    uint64_t m_accepted = 0;
    std::map<uint16_t, FakeQueue> m_queues;
};

// Reads and clears the irqfd counter without blocking: how many times the device raised its
// interrupt since the last call (0 if none).
uint64_t take_interrupts(int irq_fd);

}  // namespace msb::testing
