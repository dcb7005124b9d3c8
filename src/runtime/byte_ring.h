// ByteRing: a bounded single-producer/single-consumer byte queue without locks, with an eventfd
// on each side so the consumer can sleep until data arrives and the producer until space frees.
//
// Used between the relay thread and the console device thread for the agent port: the data
// path touches no syscall except one wake per batch. A side that wants to sleep first arms
// its wake (arm_readable / arm_writable) and sleeps only if the arm says so; the other side
// signals the eventfd only when it sees the wake armed.
//
//   auto ring = TRY(ByteRing::create(1 << 20));
//   producer: size_t n = ring->write(bytes);      // may be partial; 0 when full
//             if (n < bytes.size() && ring->arm_writable()) sleep on writable_fd()
//   consumer: size_t n = ring->read(buffer);      // may be partial; 0 when empty
//             if (n == 0 && ring->arm_readable()) sleep on readable_fd()
//   after waking: ack_readable()/ack_writable() drain the eventfd.
//
// Thread-safety: exactly one thread calls write(), exactly one (other) thread calls read().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "base/event_fd.h"
#include "base/result.h"

namespace msb::runtime {

class ByteRing {
public:
    // `capacity` is rounded up to a power of two.
    static Result<std::unique_ptr<ByteRing>> create(size_t capacity);

    ByteRing(const ByteRing&) = delete;
    ByteRing& operator=(const ByteRing&) = delete;

    // Producer side: copies as much of `data` as fits; returns the bytes taken.
    size_t write(std::span<const uint8_t> data);
    // Consumer side: copies up to out.size() bytes; returns the bytes given.
    size_t read(std::span<uint8_t> out);
    // Consumer side: bytes available without removing them (for frame peeking).
    size_t peek(std::span<uint8_t> out) const;

    // Consumer: announces that it is about to sleep until data arrives. Returns false (and
    // disarms) when data arrived meanwhile, so the caller must read again instead of sleeping.
    bool arm_readable();
    // Producer: the same for free space.
    bool arm_writable();

    size_t readable_bytes() const;
    size_t writable_bytes() const;
    size_t capacity() const { return m_mask + 1; }

    // Readable when data may be available (the consumer drains it before reading).
    int readable_fd() const { return m_data_event.fd(); }
    // Readable when space may have been freed (the producer drains it before writing).
    int writable_fd() const { return m_space_event.fd(); }
    void ack_readable() const { m_data_event.drain(); }
    void ack_writable() const { m_space_event.drain(); }

private:
    ByteRing(std::unique_ptr<uint8_t[]> buffer, size_t capacity, EventFd data_event,
             EventFd space_event);

    std::unique_ptr<uint8_t[]> m_buffer;
    size_t m_mask;
    // Monotonic counters; head - tail = bytes stored. Each is written by one side only.
    alignas(64) std::atomic<uint64_t> m_head{0};  // written by the producer
    alignas(64) std::atomic<uint64_t> m_tail{0};  // written by the consumer
    alignas(64) std::atomic<bool> m_reader_waiting{false};
    std::atomic<bool> m_writer_waiting{false};
    EventFd m_data_event;
    EventFd m_space_event;
};

}  // namespace msb::runtime
