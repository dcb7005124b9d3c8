// virtio-mmio transport, version 2 (virtio 1.2 §4.2.2, §4.2.3).
#include "virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include "virtio/ring_abi.h"

#include <cstring>
#include <future>
#include <string>

#include "base/log.h"
#include "virtio/features.h"

namespace msb::virtio {

namespace {

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVersion = 2;         // modern register layout; no legacy support

log::RateLimit g_access_log;

uint64_t transport_features() {
    return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_RING_F_EVENT_IDX) |
           feature_bit(VIRTIO_RING_F_INDIRECT_DESC);
}

void set_low(uint64_t& value, uint32_t low) { value = (value & ~0xffffffffull) | low; }
void set_high(uint64_t& value, uint32_t high) {
    value = (value & 0xffffffffull) | (uint64_t{high} << 32);
}

}  // namespace

Result<std::shared_ptr<MmioTransport>> MmioTransport::create(std::shared_ptr<VirtioDevice> device) {
    if (!device) return Error("virtio-mmio transport: no device");
    std::vector<uint16_t> max_sizes = device->queue_max_sizes();
    for (uint16_t size : max_sizes)
        if (size == 0 || size > 32768 || (size & (size - 1)))
            return Error("virtio-mmio transport: queue size " + std::to_string(size) +
                         " is not a power of two <= 32768");
    Interrupt interrupt = TRY(Interrupt::create());
    std::vector<EventFd> notify;
    notify.reserve(max_sizes.size());
    for (size_t i = 0; i < max_sizes.size(); ++i)
        notify.push_back(TRY(EventFd::create(EventFd::Mode::NonBlocking)));
    return std::shared_ptr<MmioTransport>(new MmioTransport(
        std::move(device), std::move(interrupt), std::move(notify), std::move(max_sizes)));
}

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, Interrupt interrupt,
                             std::vector<EventFd> notify, std::vector<uint16_t> max_sizes)
    : m_device(std::move(device)),
      m_interrupt(std::move(interrupt)),
      m_notify(std::move(notify)),
      m_offered((m_device->device_features() & 0xffffffull) | transport_features()) {
    m_queues.resize(max_sizes.size());
    for (size_t i = 0; i < max_sizes.size(); ++i) m_queues[i].max_size = max_sizes[i];
}

std::vector<NotifyEvent> MmioTransport::notify_events() const {
    std::vector<NotifyEvent> events;
    for (size_t i = 0; i < m_notify.size(); ++i)
        events.push_back({VIRTIO_MMIO_QUEUE_NOTIFY, static_cast<uint32_t>(i), m_notify[i].fd()});
    return events;
}

void MmioTransport::attach_memory(const kvm::GuestMemory& memory) {
    std::lock_guard lock(m_mutex);
    m_memory = &memory;
}

Status MmioTransport::start(EventLoop& loop) {
    std::lock_guard lock(m_mutex);
    m_loop = &loop;
    return {};
}

uint32_t MmioTransport::status() const {
    std::lock_guard lock(m_mutex);
    return m_status | (m_interrupt.needs_reset() ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
}

uint64_t MmioTransport::driver_features() const {
    std::lock_guard lock(m_mutex);
    return m_driver_features;
}

uint64_t MmioTransport::rejected_accesses() const { return m_rejected.load(); }

void MmioTransport::reject(const char* what, uint64_t offset) {
    m_rejected.fetch_add(1, std::memory_order_relaxed);
    if (g_access_log.allow())
        log::warn("virtio-mmio (device {}): {} at offset {:#x} ({} so far)",
                  m_device->device_type(), what, offset, g_access_log.count());
}

QueueConfig* MmioTransport::selected_queue() {
    return m_queue_sel < m_queues.size() ? &m_queues[m_queue_sel] : nullptr;
}

void MmioTransport::mmio_read(uint64_t offset, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());
    if (offset >= VIRTIO_MMIO_CONFIG) {
        m_device->read_config(offset - VIRTIO_MMIO_CONFIG, data);
        return;
    }
    // virtio 1.2 §4.2.2.2: the driver uses only aligned 32-bit accesses for registers.
    if (data.size() != 4 || offset % 4) {
        reject("register read that is not 32-bit aligned", offset);
        return;
    }
    uint32_t value;
    {
        std::lock_guard lock(m_mutex);
        value = read_register(offset);
    }
    std::memcpy(data.data(), &value, 4);
}

void MmioTransport::mmio_write(uint64_t offset, std::span<const uint8_t> data) {
    if (offset >= VIRTIO_MMIO_CONFIG) {
        m_device->write_config(offset - VIRTIO_MMIO_CONFIG, data);
        return;
    }
    if (data.size() != 4 || offset % 4) {
        reject("register write that is not 32-bit aligned", offset);
        return;
    }
    uint32_t value;
    std::memcpy(&value, data.data(), 4);
    std::lock_guard lock(m_mutex);
    write_register(offset, value);
}

uint32_t MmioTransport::read_register(uint64_t offset) {
    QueueConfig* q = selected_queue();
    switch (offset) {
        case VIRTIO_MMIO_MAGIC_VALUE:
            return kMagic;
        case VIRTIO_MMIO_VERSION:
            return kVersion;
        case VIRTIO_MMIO_DEVICE_ID:
            return m_device->device_type();
        case VIRTIO_MMIO_VENDOR_ID:
            return kVendorId;
        case VIRTIO_MMIO_DEVICE_FEATURES:
            if (m_device_features_sel == 0) return static_cast<uint32_t>(m_offered);
            if (m_device_features_sel == 1) return static_cast<uint32_t>(m_offered >> 32);
            return 0;
        case VIRTIO_MMIO_QUEUE_NUM_MAX:
            return q ? q->max_size : 0;
        case VIRTIO_MMIO_QUEUE_READY:
            return q && q->ready ? 1 : 0;
        case VIRTIO_MMIO_INTERRUPT_STATUS:
            return m_interrupt.status();
        case VIRTIO_MMIO_STATUS:
            return m_status | (m_interrupt.needs_reset() ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
        // No shared memory regions: a length of all ones means "absent" (Linux
        // vm_get_shm_region).
        case VIRTIO_MMIO_SHM_LEN_LOW:
        case VIRTIO_MMIO_SHM_LEN_HIGH:
        case VIRTIO_MMIO_SHM_BASE_LOW:
        case VIRTIO_MMIO_SHM_BASE_HIGH:
            return 0xffffffff;
        case VIRTIO_MMIO_CONFIG_GENERATION:
            return m_interrupt.config_generation();
        default:
            reject("read of a write-only or unknown register", offset);
            return 0;
    }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
    const bool features_locked = m_status & VIRTIO_CONFIG_S_FEATURES_OK;
    const bool running = m_status & VIRTIO_CONFIG_S_DRIVER_OK;
    QueueConfig* q = selected_queue();
    // Queue registers may change only while the queue is not ready and the device not running
    // (virtio 1.2 §4.2.2.3).
    auto queue_writable = [&]() {
        if (!q) {
            reject("write to a queue register with no queue selected", offset);
            return false;
        }
        if (q->ready || running) {
            reject("write to the registers of a live queue", offset);
            return false;
        }
        return true;
    };
    switch (offset) {
        case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
            m_device_features_sel = value;
            return;
        case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
            m_driver_features_sel = value;
            return;
        case VIRTIO_MMIO_DRIVER_FEATURES:
            if (features_locked) {
                reject("feature write after FEATURES_OK", offset);
                return;
            }
            if (m_driver_features_sel == 0)
                set_low(m_driver_features, value);
            else if (m_driver_features_sel == 1)
                set_high(m_driver_features, value);
            else if (value != 0)
                reject("driver features beyond bit 63", offset);
            return;
        case VIRTIO_MMIO_QUEUE_SEL:
            m_queue_sel = value;
            return;
        case VIRTIO_MMIO_QUEUE_NUM:
            if (queue_writable()) q->size = static_cast<uint16_t>(value > 0xffff ? 0 : value);
            return;
        case VIRTIO_MMIO_QUEUE_DESC_LOW:
            if (queue_writable()) set_low(q->desc_table, value);
            return;
        case VIRTIO_MMIO_QUEUE_DESC_HIGH:
            if (queue_writable()) set_high(q->desc_table, value);
            return;
        case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
            if (queue_writable()) set_low(q->avail_ring, value);
            return;
        case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
            if (queue_writable()) set_high(q->avail_ring, value);
            return;
        case VIRTIO_MMIO_QUEUE_USED_LOW:
            if (queue_writable()) set_low(q->used_ring, value);
            return;
        case VIRTIO_MMIO_QUEUE_USED_HIGH:
            if (queue_writable()) set_high(q->used_ring, value);
            return;
        case VIRTIO_MMIO_QUEUE_READY:
            if (!q) {
                reject("QueueReady with no queue selected", offset);
                return;
            }
            if (running) {
                reject("QueueReady change while DRIVER_OK", offset);
                return;
            }
            if (value == 0) {
                q->ready = false;
                return;
            }
            if (!m_memory) {
                reject("QueueReady before guest memory was attached", offset);
                return;
            }
            if (Status s = validate_queue_config(*q, *m_memory); !s.ok()) {
                // The queue stays not ready; the driver can read that back.
                reject(("queue " + std::to_string(m_queue_sel) + " refused: " + s.error().message())
                           .c_str(),
                       offset);
                return;
            }
            q->ready = true;
            return;
        case VIRTIO_MMIO_QUEUE_NOTIFY:
            if (value < m_notify.size())
                m_notify[value].signal();
            else
                reject("notify of a queue that does not exist", offset);
            return;
        case VIRTIO_MMIO_INTERRUPT_ACK:
            m_interrupt.acknowledge(value);
            return;
        case VIRTIO_MMIO_STATUS:
            write_status(value);
            return;
        case VIRTIO_MMIO_SHM_SEL:
            return;
        default:
            reject("write to a read-only or unknown register", offset);
            return;
    }
}

void MmioTransport::write_status(uint32_t value) {
    if (value == 0) {
        reset_locked();
        return;
    }
    // virtio 1.2 §2.1.2, §3.1.1: the driver only adds bits (a reset is the write of 0).
    if (m_status & ~value) {
        reject("status write that clears bits", VIRTIO_MMIO_STATUS);
        return;
    }
    uint32_t added = value & ~m_status;
    if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
        // virtio 1.2 §3.1.1 step 5: refuse by leaving FEATURES_OK clear. We have no legacy
        // interface, so a driver that did not accept VERSION_1 is refused too.
        bool subset = (m_driver_features & ~m_offered) == 0;
        bool modern = has_feature(m_driver_features, VIRTIO_F_VERSION_1);
        if (!subset || !modern) {
            reject(subset ? "driver did not accept VIRTIO_F_VERSION_1"
                          : "driver accepted features that were not offered",
                   VIRTIO_MMIO_STATUS);
            value &= ~VIRTIO_CONFIG_S_FEATURES_OK;
            added &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        }
    }
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(value & VIRTIO_CONFIG_S_FEATURES_OK)) {
        reject("DRIVER_OK without FEATURES_OK", VIRTIO_MMIO_STATUS);
        value &= ~VIRTIO_CONFIG_S_DRIVER_OK;
        added &= ~VIRTIO_CONFIG_S_DRIVER_OK;
    }
    m_status = value;
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) && !(value & VIRTIO_CONFIG_S_FAILED)) {
        if (!m_loop || !m_memory) {
            reject("DRIVER_OK before the device was started", VIRTIO_MMIO_STATUS);
            m_interrupt.set_needs_reset();
            return;
        }
        m_activation_posted = true;
        std::weak_ptr<MmioTransport> weak = weak_from_this();
        m_loop->post([weak, configs = m_queues, features = m_driver_features]() mutable {
            if (auto self = weak.lock()) self->activate_on_loop(std::move(configs), features);
        });
    }
}

void MmioTransport::reset_locked() {
    if (m_activation_posted && m_loop) {
        // Wait for the device thread to drop the queues before the driver may reuse their
        // memory. Bounded, so a stopped loop (VM exit) cannot hang a vCPU.
        auto done = std::make_shared<std::promise<void>>();
        std::future<void> finished = done->get_future();
        std::weak_ptr<MmioTransport> weak = weak_from_this();
        m_loop->post([weak, done]() {
            if (auto self = weak.lock()) self->reset_on_loop();
            done->set_value();
        });
        if (finished.wait_for(kResetWait) != std::future_status::ready)
            log::warn("virtio-mmio (device {}): device reset did not finish in {} ms",
                      m_device->device_type(), kResetWait.count());
    }
    m_activation_posted = false;
    m_status = 0;
    m_device_features_sel = 0;
    m_driver_features_sel = 0;
    m_driver_features = 0;
    m_queue_sel = 0;
    for (QueueConfig& q : m_queues) q = QueueConfig{.max_size = q.max_size};
    m_interrupt.reset();
}

void MmioTransport::activate_on_loop(std::vector<QueueConfig> configs, uint64_t features) {
    if (m_device_active) return;
    std::vector<Queue> queues(configs.size());
    for (size_t i = 0; i < configs.size(); ++i) {
        if (!configs[i].ready) continue;
        std::string label = "virtio device " + std::to_string(m_device->device_type()) + " queue " +
                            std::to_string(i);
        auto queue = Queue::create(std::move(label), configs[i], *m_memory, m_interrupt, features);
        if (!queue.ok()) {
            log::warn("virtio-mmio (device {}): queue {}: {}", m_device->device_type(), i,
                      queue.error().message());
            m_interrupt.set_needs_reset();
            return;
        }
        queues[i] = std::move(queue).value();
    }
    Status activated = m_device->activate(DeviceContext{
        .queues = std::move(queues),
        .features = features,
        .memory = *m_memory,
        .interrupt = m_interrupt,
        .loop = *m_loop,
    });
    if (!activated.ok()) {
        log::warn("virtio-mmio (device {}): activation failed: {}", m_device->device_type(),
                  activated.error().message());
        m_interrupt.set_needs_reset();
        return;
    }
    m_device_active = true;
    for (size_t i = 0; i < m_notify.size(); ++i) {
        const EventFd& fd = m_notify[i];
        Status added = m_loop->add(fd.fd(), EPOLLIN, [this, i, &fd](uint32_t) {
            fd.drain();
            m_device->queue_notify(i);
        });
        if (!added.ok())
            log::warn("virtio-mmio (device {}): watch queue {}: {}", m_device->device_type(), i,
                      added.error().message());
    }
}

void MmioTransport::reset_on_loop() {
    for (const EventFd& fd : m_notify) {
        m_loop->remove(fd.fd());
        fd.drain();
    }
    if (m_device_active) m_device->reset();
    m_device_active = false;
}

}  // namespace msb::virtio
