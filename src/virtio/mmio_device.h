// MmioDevice: what the VMM's MMIO bus needs from a device mapped into guest-physical space.
//
// The VMM (src/vmm) owns the bus: it routes vCPU MMIO exits inside a device's window to
// mmio_read/mmio_write with the offset from the window base, registers notify_events() as KVM
// ioeventfds and irq_fd() as a KVM irqfd on the device's interrupt line, and runs the device
// event loop thread that start() hands to the device.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::virtio {

// A guest write of `datamatch` (4 bytes) at window offset `offset` signals `fd`.
struct NotifyEvent {
    uint64_t offset;
    uint32_t datamatch;
    int fd;
};

class MmioDevice {
public:
    virtual ~MmioDevice() = default;

    // Size of the MMIO window (declared to the guest as virtio_mmio.device=<size>@<addr>:<irq>).
    virtual uint64_t window_size() const { return 0x200; }

    // Called on a vCPU thread for accesses inside the window. `data.size()` is 1, 2, 4 or 8.
    // Must not block; must tolerate any offset/size the guest chooses.
    virtual void mmio_read(uint64_t offset, std::span<uint8_t> data) = 0;
    virtual void mmio_write(uint64_t offset, std::span<const uint8_t> data) = 0;

    // Writes that the VMM should turn into eventfd signals without a vCPU exit.
    virtual std::vector<NotifyEvent> notify_events() const = 0;
    // The eventfd the device signals to raise its interrupt (edge, through KVM_IRQFD).
    virtual int irq_fd() const = 0;

    // Called once by the VMM after guest RAM exists and before start(): the memory the device
    // reads rings and buffers from. `memory` must outlive the device's use of it (until the
    // device event loop has stopped). Devices that do no DMA ignore it.
    virtual void attach_memory(const kvm::GuestMemory& memory) { (void)memory; }

    // Called once before the first vCPU runs. `loop` is the device event loop, run by the VMM
    // on its device thread until the VM exits; it outlives the device's use of it. Register
    // fds through loop.post() when not on that thread (EventLoop is single-threaded).
    virtual Status start(EventLoop& loop) = 0;
};

}  // namespace msb::virtio
