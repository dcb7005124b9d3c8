// MmioTransport: virtio over MMIO, version 2 register layout (virtio 1.2 §4.2.2), wrapping one
// VirtioDevice. This is what the VMM maps into guest-physical space.
//
//   auto console = TRY(devices::ConsoleDevice::create(...));
//   auto transport = TRY(virtio::MmioTransport::create(console));
//   builder.mmio_device(transport);   // the VMM calls attach_memory(), start(), then runs vCPUs
//
// What the transport does for every device: magic/version/IDs; feature negotiation in 32-bit
// pages, always offering VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX and
// VIRTIO_RING_F_INDIRECT_DESC; the status state machine (FEATURES_OK refused — left clear — if
// the driver accepted a feature we did not offer or did not accept VERSION_1; DRIVER_OK
// activates the device; writing 0 resets it); queue selection and configuration, validated
// against guest memory at QueueReady; QueueNotify; InterruptStatus/InterruptACK;
// ConfigGeneration; config space delegated to the device.
//
// Notifications: one eventfd per queue, listed by notify_events() (offset 0x50, datamatch =
// queue index) for the VMM to register as KVM ioeventfds. A QueueNotify write that does reach
// mmio_write (tests, or no ioeventfd) signals the same eventfd. Interrupts: irq_fd().
//
// Threads: mmio_read/mmio_write on vCPU threads (serialised by an internal mutex). Activation
// and reset run on the device event loop: DRIVER_OK posts activation; a reset write posts the
// device reset and waits for it (at most kResetWait) so that the driver never sees status 0
// while the device still touches the old rings — the one case where mmio_write blocks.
//
// Lifetime: the transport registers callbacks on the device loop after DRIVER_OK; keep it
// alive until that loop has stopped dispatching (the VMM holds it until the device thread ends).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "base/event_fd.h"
#include "virtio/interrupt.h"
#include "virtio/mmio_device.h"
#include "virtio/queue.h"
#include "virtio/virtio_device.h"

namespace msb::virtio {

class MmioTransport final : public MmioDevice, public std::enable_shared_from_this<MmioTransport> {
public:
    static constexpr uint32_t kVendorId = 0x0042534d;  // "MSB\0"
    static constexpr std::chrono::milliseconds kResetWait{2000};

    static Result<std::shared_ptr<MmioTransport>> create(std::shared_ptr<VirtioDevice> device);

    MmioTransport(const MmioTransport&) = delete;
    MmioTransport& operator=(const MmioTransport&) = delete;

    // MmioDevice.
    void mmio_read(uint64_t offset, std::span<uint8_t> data) override;
    void mmio_write(uint64_t offset, std::span<const uint8_t> data) override;
    std::vector<NotifyEvent> notify_events() const override;
    int irq_fd() const override { return m_interrupt.fd(); }
    void attach_memory(const kvm::GuestMemory& memory) override;
    Status start(EventLoop& loop) override;

    // Introspection (tests, metrics).
    uint32_t status() const;
    uint64_t offered_features() const { return m_offered; }
    uint64_t driver_features() const;
    uint64_t rejected_accesses() const;
    VirtioDevice& device() { return *m_device; }
    const Interrupt& interrupt() const { return m_interrupt; }

private:
    MmioTransport(std::shared_ptr<VirtioDevice> device, Interrupt interrupt,
                  std::vector<EventFd> notify, std::vector<uint16_t> max_sizes);

    uint32_t read_register(uint64_t offset);               // REQUIRES: m_mutex held
    void write_register(uint64_t offset, uint32_t value);  // REQUIRES: m_mutex held
    void write_status(uint32_t value);                     // REQUIRES: m_mutex held
    void reset_locked();                                   // REQUIRES: m_mutex held
    QueueConfig* selected_queue();                         // REQUIRES: m_mutex held
    void reject(const char* what, uint64_t offset);

    // Loop thread.
    void activate_on_loop(std::vector<QueueConfig> configs, uint64_t features);
    void reset_on_loop();

    const std::shared_ptr<VirtioDevice> m_device;
    Interrupt m_interrupt;
    const std::vector<EventFd> m_notify;  // one per queue
    const uint64_t m_offered;
    const kvm::GuestMemory* m_memory = nullptr;  // set once before vCPUs run
    EventLoop* m_loop = nullptr;                 // set once before vCPUs run

    mutable std::mutex m_mutex;
    uint32_t m_status = 0;               // GUARDED_BY(m_mutex)
    uint32_t m_device_features_sel = 0;  // GUARDED_BY(m_mutex)
    uint32_t m_driver_features_sel = 0;  // GUARDED_BY(m_mutex)
    uint64_t m_driver_features = 0;      // GUARDED_BY(m_mutex)
    uint32_t m_queue_sel = 0;            // GUARDED_BY(m_mutex)
    std::vector<QueueConfig> m_queues;   // GUARDED_BY(m_mutex)
    bool m_activation_posted = false;    // GUARDED_BY(m_mutex)
    std::atomic<uint64_t> m_rejected{0};

    bool m_device_active = false;  // loop thread only
};

}  // namespace msb::virtio
