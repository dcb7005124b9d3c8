// Exit status bookkeeping.
#include "vmm/exit_status.h"

namespace msb::vmm {

std::string to_string(ExitReason reason) {
    switch (reason) {
        case ExitReason::GuestExit:
            return "guest exit";
        case ExitReason::GuestReset:
            return "guest reset";
        case ExitReason::TripleFault:
            return "triple fault";
        case ExitReason::InternalError:
            return "KVM internal error";
        case ExitReason::Halted:
            return "halted";
        case ExitReason::VmmError:
            return "VMM error";
        case ExitReason::Triggered:
            return "triggered";
    }
    return "unknown";
}

int exit_code_from_wait_status(uint32_t status) {
    uint32_t signal = status & 0x7f;
    if (signal == 0) return static_cast<int>((status >> 8) & 0xff);
    return 128 + static_cast<int>(signal);
}

bool ExitState::request(ExitStatus status) {
    {
        std::lock_guard lock(m_mutex);
        if (m_status) return false;
        m_status = std::move(status);
    }
    m_cv.notify_all();
    return true;
}

bool ExitState::requested() const {
    std::lock_guard lock(m_mutex);
    return m_status.has_value();
}

ExitStatus ExitState::wait() {
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [&] { return m_status.has_value(); });
    return *m_status;
}

}  // namespace msb::vmm
