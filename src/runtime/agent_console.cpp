// AgentConsoleBackend: arm-then-recheck so a wake fd is readable only when there is news.
#include "runtime/agent_console.h"

namespace msb::runtime {

Result<size_t> AgentConsoleBackend::read(std::span<uint8_t> out) {
    m_to_guest.ack_readable();
    for (;;) {
        size_t n = m_to_guest.read(out);
        if (n > 0) return n;
        if (m_to_guest.arm_readable()) return Error("agent port: no data", EAGAIN);
    }
}

Result<size_t> AgentConsoleBackend::write(std::span<const uint8_t> in) {
    m_from_guest.ack_writable();
    for (;;) {
        size_t n = m_from_guest.write(in);
        if (n > 0) return n;
        if (m_from_guest.arm_writable()) return Error("agent port: relay is behind", EAGAIN);
    }
}

}  // namespace msb::runtime
