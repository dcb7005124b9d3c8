// Queue: the device side of one split virtqueue (virtio 1.2 §2.7).
//
// The transport records the driver's queue registers in a QueueConfig, checks it with
// validate_queue_config() when the driver writes QueueReady, and at DRIVER_OK hands each device
// a Queue built from it. The device then runs on its event thread:
//
//   while (auto chain = queue.pop()) {
//       DescriptorChainWriter out(queue.memory(), *chain);
//       ... fill ...
//       queue.add_used(chain->head(), out.bytes_written());
//   }
//   queue.notify_used();   // raises the interrupt unless the driver suppressed it
//
// Guest errors (virtio 1.2 §2.1.2 lets the device choose between recovering and
// DEVICE_NEEDS_RESET):
//   - a malformed descriptor chain (see ChainError) is counted, logged (rate-limited), returned
//     to the driver as used with length 0, and skipped; the queue keeps working, because the
//     ring itself is intact and the driver gets its descriptors back.
//   - a corrupt ring (the available index runs more than the queue size ahead of what we
//     consumed, or a head index out of range) leaves nothing trustworthy to continue from: the
//     queue stops (broken()) and the device is marked DEVICE_NEEDS_RESET, which also sends a
//     configuration change interrupt. Only a device reset recovers.
//
// Thread-safety: a Queue is used from one thread (the device's event thread). Ring memory is
// shared with the guest; indices are accessed with the barriers the spec prescribes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "kvm/guest_memory.h"
#include "virtio/descriptor_chain.h"
#include "virtio/interrupt.h"

namespace msb::virtio {

// The driver-programmed registers of one queue (QueueNum, QueueDesc/Driver/Device, QueueReady).
struct QueueConfig {
    uint16_t max_size = 0;  // QueueNumMax offered by the device
    uint16_t size = 0;      // QueueNum chosen by the driver
    bool ready = false;
    uint64_t desc_table = 0;
    uint64_t avail_ring = 0;  // "driver area"
    uint64_t used_ring = 0;   // "device area"
};

// Checks size (non-zero power of two <= max_size), alignment (virtio 1.2 §2.7: 16/2/4) and that
// each ring, including the event-index fields, lies inside guest memory.
Status validate_queue_config(const QueueConfig& config, const kvm::GuestMemory& memory);

class Queue {
public:
    // An unused queue: never ready, pops nothing.
    Queue() = default;
    // REQUIRES: validate_queue_config(config, memory) succeeded. `memory` and `interrupt` must
    // outlive the queue. `features` are the negotiated features (EVENT_IDX, INDIRECT_DESC).
    static Result<Queue> create(std::string label, const QueueConfig& config,
                                const kvm::GuestMemory& memory, Interrupt& interrupt,
                                uint64_t features);

    Queue(Queue&&) noexcept = default;
    Queue& operator=(Queue&&) noexcept = default;
    Queue(const Queue&) = delete;
    Queue& operator=(const Queue&) = delete;

    bool ready() const { return m_memory != nullptr; }
    bool broken() const { return m_broken; }
    uint16_t size() const { return m_size; }
    // REQUIRES: ready().
    const kvm::GuestMemory& memory() const { return *m_memory; }

    // The next well-formed chain the driver made available, or nullopt when there is none (or
    // the queue is broken). Malformed chains are handled as described above.
    std::optional<DescriptorChain> pop();
    // True when the driver has made buffers available that pop() has not taken yet.
    bool has_available() const;

    // Returns chain `head` to the driver with `length` bytes written into it.
    void add_used(uint16_t head, uint32_t length);
    // Raises the used-buffer interrupt if buffers were added since the last call and the driver
    // has not suppressed it (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
    void notify_used();

    uint64_t malformed_chains() const { return m_malformed; }
    uint16_t next_avail() const { return m_next_avail; }
    uint16_t next_used() const { return m_next_used; }

private:
    uint16_t load_avail_idx() const;
    void mark_broken(const char* why);

    std::string m_label;
    const kvm::GuestMemory* m_memory = nullptr;
    Interrupt* m_interrupt = nullptr;
    uint16_t m_size = 0;
    uint64_t m_desc_table = 0;
    // Host views of the rings, checked once by validate_queue_config (guest layout is fixed).
    uint8_t* m_avail = nullptr;
    uint8_t* m_used = nullptr;
    bool m_event_idx = false;
    bool m_indirect = false;
    bool m_broken = false;
    uint16_t m_next_avail = 0;
    uint16_t m_next_used = 0;
    uint16_t m_signalled_used = 0;  // m_next_used when notify_used last decided
    uint64_t m_malformed = 0;
};

}  // namespace msb::virtio
