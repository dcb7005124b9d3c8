// AgentConsoleBackend: the console port named "agent", backed by the two ByteRings the relay
// uses (host→guest and guest→host). The device thread calls it; the relay thread is the other
// end of each ring. No syscalls on the data path except the ring's batched wakes.
#pragma once

#include <memory>

#include "devices/console/port_backend.h"
#include "runtime/byte_ring.h"

namespace msb::runtime {

class AgentConsoleBackend final : public devices::ConsolePortBackend {
public:
    // REQUIRES: both rings outlive the backend. The device is the only consumer of `to_guest`
    // and the only producer of `from_guest`.
    AgentConsoleBackend(ByteRing& to_guest, ByteRing& from_guest)
        : m_to_guest(to_guest), m_from_guest(from_guest) {}

    Result<size_t> read(std::span<uint8_t> out) override;
    Result<size_t> write(std::span<const uint8_t> in) override;
    int read_wake_fd() const override { return m_to_guest.readable_fd(); }
    int write_wake_fd() const override { return m_from_guest.writable_fd(); }

private:
    ByteRing& m_to_guest;
    ByteRing& m_from_guest;
};

}  // namespace msb::runtime
