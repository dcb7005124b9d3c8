// virtio-rng: entropy from the host's getrandom(2).
#include "devices/rng/rng_device.h"

#include <linux/virtio_ids.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "base/log.h"

namespace msb::devices {

uint32_t RngDevice::device_type() const { return VIRTIO_ID_RNG; }

Status RngDevice::activate(virtio::DeviceContext context) {
    m_queue.emplace(std::move(context.queues.at(0)));
    m_memory = m_queue->ready() ? &m_queue->memory() : nullptr;
    return {};
}

void RngDevice::queue_notify(size_t) {
    if (!m_queue) return;
    static log::RateLimit limit;
    while (auto chain = m_queue->pop()) {
        virtio::DescriptorChainWriter out(*m_memory, *chain);
        size_t budget = std::min(out.remaining(), kMaxBytesPerRequest);
        while (budget > 0) {
            std::span<uint8_t> dst = out.peek();
            dst = dst.first(std::min(dst.size(), budget));
            // getrandom never blocks once the host's pool is initialised (long before a VM
            // runs); a short read only happens for requests above 32 MiB or on a signal.
            ssize_t n = ::getrandom(dst.data(), dst.size(), 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                if (limit.allow()) log::warn("virtio-rng: getrandom failed (errno {})", errno);
                break;
            }
            out.commit(static_cast<size_t>(n));
            budget -= static_cast<size_t>(n);
        }
        m_bytes += out.bytes_written();
        m_queue->add_used(chain->head(), out.bytes_written());
    }
    m_queue->notify_used();
}

}  // namespace msb::devices
