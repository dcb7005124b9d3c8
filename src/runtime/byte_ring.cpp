// ByteRing: SPSC ring with acquire/release counters and edge wakes.
#include "runtime/byte_ring.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace msb::runtime {

Result<std::unique_ptr<ByteRing>> ByteRing::create(size_t capacity) {
    if (capacity == 0 || capacity > (size_t{1} << 30)) return Error("byte ring: bad capacity");
    capacity = std::bit_ceil(capacity);
    auto data_event = TRY(EventFd::create());
    auto space_event = TRY(EventFd::create());
    return std::unique_ptr<ByteRing>(new ByteRing(std::make_unique<uint8_t[]>(capacity), capacity,
                                                  std::move(data_event), std::move(space_event)));
}

ByteRing::ByteRing(std::unique_ptr<uint8_t[]> buffer, size_t capacity, EventFd data_event,
                   EventFd space_event)
    : m_buffer(std::move(buffer)),
      m_mask(capacity - 1),
      m_data_event(std::move(data_event)),
      m_space_event(std::move(space_event)) {}

size_t ByteRing::write(std::span<const uint8_t> data) {
    uint64_t head = m_head.load(std::memory_order_relaxed);
    uint64_t tail = m_tail.load(std::memory_order_acquire);
    size_t free_bytes = capacity() - static_cast<size_t>(head - tail);
    size_t n = std::min(free_bytes, data.size());
    if (n == 0) return 0;
    size_t start = static_cast<size_t>(head) & m_mask;
    size_t first = std::min(n, capacity() - start);
    std::memcpy(m_buffer.get() + start, data.data(), first);
    std::memcpy(m_buffer.get(), data.data() + first, n - first);
    m_head.store(head + n, std::memory_order_release);
    // Pairs with the fence in arm_readable(): either the consumer sees the new head, or we see
    // its armed flag (Dekker-style; both sides use seq_cst fences).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (m_reader_waiting.load(std::memory_order_relaxed) &&
        m_reader_waiting.exchange(false, std::memory_order_acq_rel))
        m_data_event.signal();
    return n;
}

size_t ByteRing::peek(std::span<uint8_t> out) const {
    uint64_t tail = m_tail.load(std::memory_order_relaxed);
    uint64_t head = m_head.load(std::memory_order_acquire);
    size_t n = std::min(static_cast<size_t>(head - tail), out.size());
    size_t start = static_cast<size_t>(tail) & m_mask;
    size_t first = std::min(n, capacity() - start);
    std::memcpy(out.data(), m_buffer.get() + start, first);
    std::memcpy(out.data() + first, m_buffer.get(), n - first);
    return n;
}

size_t ByteRing::read(std::span<uint8_t> out) {
    size_t n = peek(out);
    if (n == 0) return 0;
    uint64_t tail = m_tail.load(std::memory_order_relaxed);
    m_tail.store(tail + n, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (m_writer_waiting.load(std::memory_order_relaxed) &&
        m_writer_waiting.exchange(false, std::memory_order_acq_rel))
        m_space_event.signal();
    return n;
}

bool ByteRing::arm_readable() {
    m_reader_waiting.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (readable_bytes() == 0) return true;
    m_reader_waiting.store(false, std::memory_order_relaxed);
    return false;
}

bool ByteRing::arm_writable() {
    m_writer_waiting.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (writable_bytes() == 0) return true;
    m_writer_waiting.store(false, std::memory_order_relaxed);
    return false;
}

size_t ByteRing::readable_bytes() const {
    return static_cast<size_t>(m_head.load(std::memory_order_acquire) -
                               m_tail.load(std::memory_order_acquire));
}

size_t ByteRing::writable_bytes() const { return capacity() - readable_bytes(); }

}  // namespace msb::runtime
