// Descriptor-chain walking (virtio 1.2 §2.7.5, §2.7.5.3) and the chain reader/writer.
#include "virtio/descriptor_chain.h"

#include "virtio/ring_abi.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace msb::virtio {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; this code reads them natively");
static_assert(sizeof(vring_desc) == 16);

std::string_view to_string(ChainError error) {
    switch (error) {
        case ChainError::HeadOutOfRange:
            return "head index out of range";
        case ChainError::NextOutOfRange:
            return "next index out of range";
        case ChainError::TooLong:
            return "chain too long or looping";
        case ChainError::OutsideMemory:
            return "buffer outside guest memory";
        case ChainError::LengthOverflow:
            return "length overflow";
        case ChainError::ReadableAfterWritable:
            return "readable descriptor after writable";
        case ChainError::NestedIndirect:
            return "nested indirect descriptor";
        case ChainError::BadIndirectLength:
            return "bad indirect table length";
        case ChainError::IndirectWithNext:
            return "indirect descriptor with NEXT flag";
        case ChainError::IndirectNotNegotiated:
            return "indirect descriptor not negotiated";
    }
    return "unknown chain error";
}

namespace {

// Why [address, address + length) is unusable (it wraps or leaves guest RAM), if it is.
std::optional<ChainError> check_range(const kvm::GuestMemory& memory, uint64_t address,
                                      uint64_t length) {
    if (length > std::numeric_limits<uint64_t>::max() - address) return ChainError::LengthOverflow;
    if (!memory.contains(address, length)) return ChainError::OutsideMemory;
    return std::nullopt;
}

}  // namespace

struct ChainParser {
    static ParsedChain parse(const kvm::GuestMemory& memory, uint64_t table, uint16_t head,
                             ChainLimits limits) {
        if (head >= limits.queue_size) return ChainError::HeadOutOfRange;

        DescriptorChain chain;
        chain.m_head = head;
        uint64_t current_table = table;
        uint32_t table_entries = limits.queue_size;
        bool in_indirect = false;
        uint32_t visited_direct = 0;
        uint32_t visited_indirect = 0;
        bool seen_writable = false;
        uint64_t readable_bytes = 0;
        uint64_t writable_bytes = 0;
        uint32_t index = head;

        for (;;) {
            // Counting visits bounds every walk: a loop eventually exceeds the table size.
            if (in_indirect ? ++visited_indirect > table_entries
                            : ++visited_direct > limits.queue_size)
                return ChainError::TooLong;

            auto desc = memory.read_obj<vring_desc>(current_table + uint64_t{index} * 16);
            if (!desc.ok()) return ChainError::OutsideMemory;
            const uint64_t address = desc->addr;
            const uint32_t length = desc->len;
            const uint16_t flags = desc->flags;

            if (flags & VRING_DESC_F_INDIRECT) {
                if (in_indirect) return ChainError::NestedIndirect;
                if (!limits.indirect_allowed) return ChainError::IndirectNotNegotiated;
                if (flags & VRING_DESC_F_NEXT) return ChainError::IndirectWithNext;
                // virtio 1.2 §2.7.5.3.1: the table holds len/16 descriptors. We bound it by the
                // queue size so that the walk and the segment list stay bounded.
                if (length == 0 || length % 16 != 0 || length / 16 > limits.queue_size)
                    return ChainError::BadIndirectLength;
                if (auto e = check_range(memory, address, length)) return *e;
                in_indirect = true;
                current_table = address;
                table_entries = length / 16;
                index = 0;
                chain.m_segments.reserve(chain.m_segments.size() + table_entries);
                continue;
            }

            if (auto e = check_range(memory, address, length)) return *e;
            if (flags & VRING_DESC_F_WRITE) {
                seen_writable = true;
                writable_bytes += length;
                if (writable_bytes > std::numeric_limits<uint32_t>::max())
                    return ChainError::LengthOverflow;
            } else {
                // virtio 1.2 §2.7.4.2: device-writable descriptors come after readable ones.
                if (seen_writable) return ChainError::ReadableAfterWritable;
                readable_bytes += length;
                if (readable_bytes > std::numeric_limits<uint32_t>::max())
                    return ChainError::LengthOverflow;
            }
            if (length > 0) {  // empty buffers carry nothing; keep no segment for them
                chain.m_segments.push_back({address, length});
                if (!(flags & VRING_DESC_F_WRITE)) ++chain.m_readable_count;
            }

            if (!(flags & VRING_DESC_F_NEXT)) break;
            if (desc->next >= table_entries) return ChainError::NextOutOfRange;
            index = desc->next;
        }

        chain.m_readable_bytes = static_cast<uint32_t>(readable_bytes);
        chain.m_writable_bytes = static_cast<uint32_t>(writable_bytes);
        chain.m_descriptor_count = visited_direct + visited_indirect;
        return chain;
    }
};

ParsedChain parse_chain(const kvm::GuestMemory& memory, uint64_t table, uint16_t head,
                        ChainLimits limits) {
    return ChainParser::parse(memory, table, head, limits);
}

// ---- reader ----

namespace {
// Moves a (segment index, offset) cursor `n` bytes forward across `segments`; shared by the
// reader and the writer.
template <typename Segments>
void advance_cursor(const Segments& segments, size_t& index, size_t& offset, size_t n) {
    while (n > 0 && index < segments.size()) {
        size_t step = std::min(n, static_cast<size_t>(segments[index].length) - offset);
        offset += step;
        n -= step;
        if (offset == segments[index].length) {
            ++index;
            offset = 0;
        }
    }
}
}  // namespace

DescriptorChainReader::DescriptorChainReader(const kvm::GuestMemory& memory,
                                             const DescriptorChain& chain)
    : m_memory(memory), m_segments(chain.readable()), m_remaining(chain.readable_bytes()) {}

std::span<const uint8_t> DescriptorChainReader::peek() const {
    if (m_index >= m_segments.size()) return {};
    const Segment& s = m_segments[m_index];
    size_t length = s.length - m_offset;
    // Safe: parse_chain checked the whole segment against guest memory, whose layout is fixed.
    const uint8_t* p = m_memory.host_address(s.address + m_offset, length);
    if (!p) return {};
    return {p, length};
}

void DescriptorChainReader::consume(size_t n) {
    n = std::min(n, m_remaining);
    m_remaining -= n;
    m_consumed += n;
    advance_cursor(m_segments, m_index, m_offset, n);
}

size_t DescriptorChainReader::read(std::span<uint8_t> out) {
    size_t done = 0;
    while (done < out.size()) {
        std::span<const uint8_t> src = peek();
        if (src.empty()) break;
        size_t n = std::min(src.size(), out.size() - done);
        std::memcpy(out.data() + done, src.data(), n);
        consume(n);
        done += n;
    }
    return done;
}

bool DescriptorChainReader::read_exact(std::span<uint8_t> out) {
    if (out.size() > m_remaining) return false;
    return read(out) == out.size();
}

// ---- writer ----

DescriptorChainWriter::DescriptorChainWriter(const kvm::GuestMemory& memory,
                                             const DescriptorChain& chain)
    : m_memory(memory), m_segments(chain.writable()), m_remaining(chain.writable_bytes()) {}

std::span<uint8_t> DescriptorChainWriter::peek() const {
    if (m_index >= m_segments.size()) return {};
    const Segment& s = m_segments[m_index];
    size_t length = s.length - m_offset;
    // Safe: parse_chain checked the whole segment against guest memory, whose layout is fixed.
    uint8_t* p = m_memory.host_address(s.address + m_offset, length);
    if (!p) return {};
    return {p, length};
}

void DescriptorChainWriter::commit(size_t n) {
    n = std::min(n, m_remaining);
    m_remaining -= n;
    m_written += n;
    advance_cursor(m_segments, m_index, m_offset, n);
}

size_t DescriptorChainWriter::write(std::span<const uint8_t> in) {
    size_t done = 0;
    while (done < in.size()) {
        std::span<uint8_t> dst = peek();
        if (dst.empty()) break;
        size_t n = std::min(dst.size(), in.size() - done);
        std::memcpy(dst.data(), in.data() + done, n);
        commit(n);
        done += n;
    }
    return done;
}

bool DescriptorChainWriter::write_exact(std::span<const uint8_t> in) {
    if (in.size() > m_remaining) return false;
    return write(in) == in.size();
}

}  // namespace msb::virtio
