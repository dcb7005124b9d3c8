// Interrupt: the device→driver signalling state of one virtio-mmio device.
//
// Holds the InterruptStatus bits (virtio 1.2 §4.2.2: bit 0 used buffer, bit 1 configuration
// change), the config generation counter, the DEVICE_NEEDS_RESET flag, and the eventfd that the
// VMM registers as a KVM irqfd. The transport owns it; queues and the device signal through it.
//
//   interrupt.signal_used();        // after adding used buffers the driver asked to hear about
//   interrupt.set_needs_reset();    // unrecoverable guest error on a queue (§2.1.2)
//
// Thread-safety: every method is safe from any thread (vCPU threads read/acknowledge status,
// the device thread raises it).
#pragma once

#include <atomic>
#include <cstdint>

#include "base/event_fd.h"

namespace msb::virtio {

class Interrupt {
public:
    static Result<Interrupt> create();

    Interrupt(Interrupt&& other) noexcept
        : m_fd(std::move(other.m_fd)),
          m_status(other.m_status.load()),
          m_generation(other.m_generation.load()),
          m_needs_reset(other.m_needs_reset.load()) {}
    Interrupt(const Interrupt&) = delete;
    Interrupt& operator=(const Interrupt&) = delete;

    // Sets VIRTIO_MMIO_INT_VRING and raises the interrupt line.
    void signal_used();
    // Bumps the config generation, sets VIRTIO_MMIO_INT_CONFIG and raises the line.
    void signal_config_change();
    // Marks the device as needing a reset (status bit VIRTIO_CONFIG_S_NEEDS_RESET) and sends a
    // configuration change notification, as virtio 1.2 §2.1.2 requires.
    void set_needs_reset();

    uint32_t status() const { return m_status.load(std::memory_order_acquire); }
    void acknowledge(uint32_t bits) { m_status.fetch_and(~bits, std::memory_order_acq_rel); }
    uint32_t config_generation() const { return m_generation.load(std::memory_order_acquire); }
    bool needs_reset() const { return m_needs_reset.load(std::memory_order_acquire); }

    // Device reset: clears status bits and the needs-reset flag (the generation keeps counting).
    void reset();

    int fd() const { return m_fd.fd(); }

private:
    explicit Interrupt(EventFd fd) : m_fd(std::move(fd)) {}

    EventFd m_fd;
    std::atomic<uint32_t> m_status{0};
    std::atomic<uint32_t> m_generation{0};
    std::atomic<bool> m_needs_reset{false};
};

}  // namespace msb::virtio
