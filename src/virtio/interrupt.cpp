// Interrupt status and irqfd signalling for a virtio-mmio device.
#include "virtio/interrupt.h"

#include <linux/virtio_mmio.h>

namespace msb::virtio {

Result<Interrupt> Interrupt::create() {
    EventFd fd = TRY(EventFd::create(EventFd::Mode::NonBlocking));
    return Interrupt(std::move(fd));
}

void Interrupt::signal_used() {
    m_status.fetch_or(VIRTIO_MMIO_INT_VRING, std::memory_order_acq_rel);
    m_fd.signal();
}

void Interrupt::signal_config_change() {
    m_generation.fetch_add(1, std::memory_order_acq_rel);
    m_status.fetch_or(VIRTIO_MMIO_INT_CONFIG, std::memory_order_acq_rel);
    m_fd.signal();
}

void Interrupt::set_needs_reset() {
    if (m_needs_reset.exchange(true, std::memory_order_acq_rel)) return;
    signal_config_change();
}

void Interrupt::reset() {
    m_status.store(0, std::memory_order_release);
    m_needs_reset.store(false, std::memory_order_release);
}

}  // namespace msb::virtio
