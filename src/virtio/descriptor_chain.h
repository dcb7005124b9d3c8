// Descriptor chains of a split virtqueue: the bounds-checked walker and the reader/writer that
// device code uses instead of guest addresses.
//
// parse_chain() follows a chain from its head through the descriptor table (and at most one
// indirect table), validating every descriptor against guest memory before anything is read
// from or written to it. The result lists the readable (driver→device) segments followed by
// the writable (device→driver) ones, each known to lie inside guest RAM.
//
//   DescriptorChain chain = ...;                // from Queue::pop()
//   DescriptorChainReader in(memory, chain);    // request header and payload
//   auto header = in.read_obj<virtio_blk_outhdr>();
//   DescriptorChainWriter out(memory, chain);   // response
//   out.write(bytes);
//   queue.add_used(chain.head(), out.bytes_written());
//
// Lifetime: readers and writers hold references to the memory and the chain, which must outlive
// them. Host spans they hand out point into guest RAM and are valid only during the call
// sequence that processes the chain (the guest may change those bytes at any time: copy what
// must not change under you).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "kvm/guest_memory.h"

namespace msb::virtio {

// Why a chain was rejected.
enum class ChainError {
    HeadOutOfRange,         // head index >= queue size
    NextOutOfRange,         // `next` points outside the descriptor (or indirect) table
    TooLong,                // more descriptors than allowed (includes every loop)
    OutsideMemory,          // a buffer or table is not wholly inside guest RAM
    LengthOverflow,         // address + length wraps, or a direction's total exceeds 4 GiB - 1
    ReadableAfterWritable,  // a driver→device descriptor after a device→driver one
    NestedIndirect,         // an indirect descriptor inside an indirect table
    BadIndirectLength,      // indirect table length zero, not a multiple of 16, or too large
    IndirectWithNext,       // INDIRECT and NEXT both set (virtio 1.2 §2.7.5.3.1)
    IndirectNotNegotiated,  // INDIRECT used without VIRTIO_RING_F_INDIRECT_DESC
};

std::string_view to_string(ChainError error);

// One guest buffer, validated: [address, address + length) lies inside one RAM region.
struct Segment {
    uint64_t address;
    uint32_t length;
};

class DescriptorChain {
public:
    uint16_t head() const { return m_head; }
    std::span<const Segment> readable() const { return {m_segments.data(), m_readable_count}; }
    std::span<const Segment> writable() const {
        return std::span<const Segment>(m_segments).subspan(m_readable_count);
    }
    // Totals per direction; each fits in 32 bits (checked by parse_chain).
    uint32_t readable_bytes() const { return m_readable_bytes; }
    uint32_t writable_bytes() const { return m_writable_bytes; }
    // Descriptors visited, indirect table entries included.
    uint32_t descriptor_count() const { return m_descriptor_count; }

private:
    friend struct ChainParser;
    uint16_t m_head = 0;
    size_t m_readable_count = 0;
    uint32_t m_readable_bytes = 0;
    uint32_t m_writable_bytes = 0;
    uint32_t m_descriptor_count = 0;
    std::vector<Segment> m_segments;  // at most queue-size (or indirect-table) entries
};

struct ChainLimits {
    uint16_t queue_size;    // descriptor table entries; also the chain length limit
    bool indirect_allowed;  // VIRTIO_RING_F_INDIRECT_DESC negotiated
};

// Outcome of parse_chain: a chain, or the reason it was refused.
class ParsedChain {
public:
    ParsedChain(DescriptorChain chain) : m_chain(std::move(chain)) {}  // NOLINT: implicit
    ParsedChain(ChainError error) : m_error(error) {}                  // NOLINT: implicit
    bool ok() const { return m_chain.has_value(); }
    // REQUIRES: ok().
    DescriptorChain& chain() { return *m_chain; }
    // REQUIRES: !ok().
    ChainError error() const { return m_error; }

private:
    std::optional<DescriptorChain> m_chain;
    ChainError m_error = ChainError::HeadOutOfRange;
};

// Walks the chain starting at `head` in the descriptor table at `table` (queue_size entries of
// 16 bytes, already checked to be inside memory by the queue). Never allocates more than
// `queue_size` (or the indirect table's entry count, itself bounded by queue_size) segments.
ParsedChain parse_chain(const kvm::GuestMemory& memory, uint64_t table, uint16_t head,
                        ChainLimits limits);

// Sequential reader over the readable part of a chain.
class DescriptorChainReader {
public:
    DescriptorChainReader(const kvm::GuestMemory& memory, const DescriptorChain& chain);

    // Copies up to out.size() bytes; returns how many were copied (less only at the end).
    size_t read(std::span<uint8_t> out);
    // Copies exactly out.size() bytes or nothing; false when fewer bytes remain.
    bool read_exact(std::span<uint8_t> out);
    template <typename T>
    std::optional<T> read_obj() {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read_exact({reinterpret_cast<uint8_t*>(&value), sizeof value})) return std::nullopt;
        return value;
    }
    // The next contiguous run of readable guest bytes (empty at the end), without consuming it.
    std::span<const uint8_t> peek() const;
    // Consumes n bytes (clamped to remaining()).
    void consume(size_t n);

    size_t remaining() const { return m_remaining; }
    size_t bytes_read() const { return m_consumed; }

private:
    const kvm::GuestMemory& m_memory;
    std::span<const Segment> m_segments;
    size_t m_index = 0;   // current segment
    size_t m_offset = 0;  // offset inside it
    size_t m_remaining;
    size_t m_consumed = 0;
};

// Sequential writer over the writable part of a chain.
class DescriptorChainWriter {
public:
    DescriptorChainWriter(const kvm::GuestMemory& memory, const DescriptorChain& chain);

    // Copies up to in.size() bytes; returns how many were written (less only when full).
    size_t write(std::span<const uint8_t> in);
    bool write_exact(std::span<const uint8_t> in);
    template <typename T>
    bool write_obj(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        return write_exact({reinterpret_cast<const uint8_t*>(&value), sizeof value});
    }
    // The next contiguous run of writable guest bytes (empty when full), to fill in place;
    // call commit(n) with how many bytes were filled.
    std::span<uint8_t> peek() const;
    void commit(size_t n);

    size_t remaining() const { return m_remaining; }
    // The used length to report for the chain.
    uint32_t bytes_written() const { return static_cast<uint32_t>(m_written); }

private:
    const kvm::GuestMemory& m_memory;
    std::span<const Segment> m_segments;
    size_t m_index = 0;
    size_t m_offset = 0;
    size_t m_remaining;
    size_t m_written = 0;
};

}  // namespace msb::virtio
