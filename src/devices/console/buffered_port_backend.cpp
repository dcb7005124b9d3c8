// Bounded two-way byte queues between a console port and a host thread.
#include "devices/console/buffered_port_backend.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace msb::devices {

size_t BufferedPortBackend::ByteRing::push(std::span<const uint8_t> in) {
    size_t n = std::min(in.size(), room());
    if (n == 0) return 0;
    size_t tail = (m_head + m_size) % m_bytes.size();
    size_t first = std::min(n, m_bytes.size() - tail);
    std::memcpy(m_bytes.data() + tail, in.data(), first);
    std::memcpy(m_bytes.data(), in.data() + first, n - first);
    m_size += n;
    return n;
}

size_t BufferedPortBackend::ByteRing::pop(std::span<uint8_t> out) {
    size_t n = std::min(out.size(), m_size);
    if (n == 0) return 0;
    size_t first = std::min(n, m_bytes.size() - m_head);
    std::memcpy(out.data(), m_bytes.data() + m_head, first);
    std::memcpy(out.data() + first, m_bytes.data(), n - first);
    m_head = (m_head + n) % m_bytes.size();
    m_size -= n;
    return n;
}

Result<std::shared_ptr<BufferedPortBackend>> BufferedPortBackend::create(size_t capacity) {
    if (capacity == 0) return Error("console port buffer capacity must be > 0");
    EventFd a = TRY(EventFd::create());
    EventFd b = TRY(EventFd::create());
    EventFd c = TRY(EventFd::create());
    EventFd d = TRY(EventFd::create());
    return std::shared_ptr<BufferedPortBackend>(
        new BufferedPortBackend(capacity, std::move(a), std::move(b), std::move(c), std::move(d)));
}

BufferedPortBackend::BufferedPortBackend(size_t capacity, EventFd a, EventFd b, EventFd c,
                                         EventFd d)
    : m_to_guest(capacity),
      m_from_guest(capacity),
      m_to_guest_ready(std::move(a)),
      m_to_guest_room(std::move(b)),
      m_from_guest_ready(std::move(c)),
      m_from_guest_room(std::move(d)) {
    m_to_guest_room.signal();  // room to send from the start
}

// Every operation drains the wake fd of its own side first and re-signals it if its
// condition still holds afterwards, so a level-triggered waiter neither spins nor stalls.

Result<size_t> BufferedPortBackend::read(std::span<uint8_t> out) {
    m_to_guest_ready.drain();
    size_t n;
    bool more;
    {
        std::lock_guard lock(m_mutex);
        n = m_to_guest.pop(out);
        more = m_to_guest.size() > 0;
    }
    if (more) m_to_guest_ready.signal();
    if (n == 0) return Error("console port: no data for the guest", EAGAIN);
    m_to_guest_room.signal();
    return n;
}

Result<size_t> BufferedPortBackend::write(std::span<const uint8_t> in) {
    m_from_guest_room.drain();
    size_t n;
    bool room;
    {
        std::lock_guard lock(m_mutex);
        n = m_from_guest.push(in);
        room = m_from_guest.room() > 0;
    }
    if (room) m_from_guest_room.signal();
    if (n == 0) return Error("console port: host side full", EAGAIN);
    m_from_guest_ready.signal();
    return n;
}

void BufferedPortBackend::guest_open_changed(bool open) { m_guest_open.store(open); }

size_t BufferedPortBackend::send(std::span<const uint8_t> bytes) {
    m_to_guest_room.drain();
    size_t n;
    bool room;
    {
        std::lock_guard lock(m_mutex);
        n = m_to_guest.push(bytes);
        room = m_to_guest.room() > 0;
    }
    if (room) m_to_guest_room.signal();
    if (n > 0) m_to_guest_ready.signal();
    return n;
}

size_t BufferedPortBackend::receive(std::span<uint8_t> out) {
    m_from_guest_ready.drain();
    size_t n;
    bool more;
    {
        std::lock_guard lock(m_mutex);
        n = m_from_guest.pop(out);
        more = m_from_guest.size() > 0;
    }
    if (more) m_from_guest_ready.signal();
    if (n > 0) m_from_guest_room.signal();
    return n;
}

}  // namespace msb::devices
