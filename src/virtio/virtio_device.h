// VirtioDevice: what a virtio device (console, rng, block, …) implements; MmioTransport does
// the rest (registers, feature negotiation, status, queue setup, notifications, interrupts).
//
// Threads: the const queries and read_config/write_config run on vCPU threads (any of them,
// possibly concurrently) and must be thread-safe; activate, queue_notify and reset run on the
// device event-loop thread, one at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "kvm/guest_memory.h"
#include "virtio/interrupt.h"
#include "virtio/queue.h"

namespace msb::virtio {

// Everything a device needs to run, handed over at DRIVER_OK.
struct DeviceContext {
    // One per queue_max_sizes() entry; queues the driver did not set up are !ready().
    std::vector<Queue> queues;
    uint64_t features;  // negotiated (device-specific bits and transport bits)
    // Outlive the device's activation (until reset() returns or the loop stops).
    const kvm::GuestMemory& memory;
    Interrupt& interrupt;
    EventLoop& loop;
};

// Copies the part of a device's config structure at [offset, offset + out.size()) into `out`,
// zero-filling whatever lies beyond the structure (any guest offset is safe).
inline void copy_config(const void* config, size_t config_size, uint64_t offset,
                        std::span<uint8_t> out) {
    std::fill(out.begin(), out.end(), uint8_t{0});
    if (offset >= config_size) return;
    size_t n = std::min<uint64_t>(out.size(), config_size - offset);
    std::memcpy(out.data(), static_cast<const uint8_t*>(config) + offset, n);
}

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    // Virtio device ID (virtio 1.2 §5): 2 block, 3 console, 4 rng, …
    virtual uint32_t device_type() const = 0;
    // Device-specific feature bits offered (bits 0–23). The transport adds VIRTIO_F_VERSION_1,
    // VIRTIO_RING_F_EVENT_IDX and VIRTIO_RING_F_INDIRECT_DESC.
    virtual uint64_t device_features() const = 0;
    // QueueNumMax of each queue; the vector's size is the number of queues.
    virtual std::vector<uint16_t> queue_max_sizes() const = 0;

    // Device configuration space access at `offset` from its start (width 1, 2, 4 or 8).
    // Bytes beyond the device's config structure read as zero; writes to read-only fields are
    // ignored.
    virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
    virtual void write_config(uint64_t offset, std::span<const uint8_t> data) {
        (void)offset;
        (void)data;
    }

    // The driver set DRIVER_OK. An error marks the device DEVICE_NEEDS_RESET.
    virtual Status activate(DeviceContext context) = 0;
    // The driver kicked queue `index` (< number of queues). Only called while activated.
    virtual void queue_notify(size_t index) = 0;
    // Device reset: drop the queues and everything registered on the loop, return to the
    // state before activate(). Called only after a successful activate().
    virtual void reset() = 0;
};

}  // namespace msb::virtio
