#include "runtime/guest_log.h"

#include "base/log.h"

namespace msb::runtime {

Result<std::shared_ptr<GuestLog>> GuestLog::open(const std::string& log_dir, uint64_t max_bytes,
                                                 unsigned keep) {
    auto log = TRY(RotatingLog::open(log_dir, "guest", max_bytes, keep));
    return std::shared_ptr<GuestLog>(new GuestLog(std::move(log)));
}

void GuestLog::write(std::span<const uint8_t> bytes) {
    std::lock_guard lock(m_mutex);
    if (Status st = m_log.write(bytes); !st.ok()) {
        if (m_failed.fetch_add(1, std::memory_order_relaxed) == 0)
            log::warn("guest.log: {}; guest output is being dropped", st.error().message());
    }
}

vmm::Serial::Writer GuestLog::serial_writer() {
    return [self = shared_from_this()](std::span<const uint8_t> bytes) { self->write(bytes); };
}

}  // namespace msb::runtime
