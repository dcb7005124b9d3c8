// BufferedPortBackend: a ready-made ConsolePortBackend for a host peer on another thread (the
// runtime's agent relay): two bounded byte queues, one per direction, with eventfds to wait on
// on both sides.
//
//   auto agent = TRY(devices::BufferedPortBackend::create(256 * 1024));
//   // device side: pass `agent` as the backend of the port named "agent"
//   // host side (relay thread): epoll host_readable_fd() / host_writable_fd(), then
//   size_t n = agent->receive(buf);   // guest → host, 0 when empty
//   size_t m = agent->send(bytes);    // host → guest, may take fewer bytes than offered
//
// Nothing is dropped in either direction: a full queue makes the writer wait (the guest's
// transmit queue stalls; the host's send() returns less). Each wake fd follows the
// ConsolePortBackend rule: it is drained by the side that waits on it before that side looks
// at the queue, and signalled by the other side after it changes the queue.
//
// Thread-safety: the device side is called on the device thread, the host side from any one
// thread; an internal mutex guards the queues.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "base/event_fd.h"
#include "devices/console/port_backend.h"

namespace msb::devices {

class BufferedPortBackend final : public ConsolePortBackend {
public:
    // `capacity`: bytes buffered in each direction (> 0).
    static Result<std::shared_ptr<BufferedPortBackend>> create(size_t capacity);

    // ConsolePortBackend (device thread).
    Result<size_t> read(std::span<uint8_t> out) override;
    Result<size_t> write(std::span<const uint8_t> in) override;
    int read_wake_fd() const override { return m_to_guest_ready.fd(); }
    int write_wake_fd() const override { return m_from_guest_room.fd(); }
    void guest_open_changed(bool open) override;

    // Host side.
    // Queues up to bytes.size() bytes for the guest; returns how many were taken (0: full).
    size_t send(std::span<const uint8_t> bytes);
    // Takes up to out.size() bytes the guest sent; returns how many (0: none yet).
    size_t receive(std::span<uint8_t> out);
    // EPOLLIN when receive() may return data / send() may take data. Drained by receive() and
    // send() themselves before they look at the queue.
    int host_readable_fd() const { return m_from_guest_ready.fd(); }
    int host_writable_fd() const { return m_to_guest_room.fd(); }
    // Whether a guest program has the port open (VIRTIO_CONSOLE_PORT_OPEN).
    bool guest_open() const { return m_guest_open.load(); }

private:
    // A fixed-capacity FIFO of bytes.
    class ByteRing {
    public:
        explicit ByteRing(size_t capacity) : m_bytes(capacity) {}
        size_t size() const { return m_size; }
        size_t room() const { return m_bytes.size() - m_size; }
        size_t push(std::span<const uint8_t> in);
        size_t pop(std::span<uint8_t> out);

    private:
        std::vector<uint8_t> m_bytes;
        size_t m_head = 0;  // index of the oldest byte
        size_t m_size = 0;
    };

    BufferedPortBackend(size_t capacity, EventFd a, EventFd b, EventFd c, EventFd d);

    std::mutex m_mutex;
    ByteRing m_to_guest;         // GUARDED_BY(m_mutex)
    ByteRing m_from_guest;       // GUARDED_BY(m_mutex)
    EventFd m_to_guest_ready;    // host sent data      → device reads
    EventFd m_to_guest_room;     // device read data    → host may send
    EventFd m_from_guest_ready;  // device wrote data   → host receives
    EventFd m_from_guest_room;   // host received data  → device may write
    std::atomic<bool> m_guest_open{false};
};

}  // namespace msb::devices
