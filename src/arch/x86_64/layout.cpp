// MemoryLayout: RAM placement around the 32-bit MMIO hole.
#include "arch/x86_64/layout.h"

#include <fmt/format.h>

namespace msb::arch::x86_64 {

Result<MemoryLayout> MemoryLayout::create(uint64_t memory_bytes) {
    if (memory_bytes < kMinMemory || memory_bytes > kMaxMemory)
        return Error(fmt::format("guest memory {} MiB is out of range ({}–{} MiB)",
                                 memory_bytes >> 20, kMinMemory >> 20, kMaxMemory >> 20));
    if (memory_bytes % (2 * kMiB))
        return Error(fmt::format("guest memory {} bytes is not a multiple of 2 MiB", memory_bytes));
    uint64_t low = std::min(memory_bytes, kMmioHoleStart);
    uint64_t high = memory_bytes - low;
    return MemoryLayout(memory_bytes, low, kMmioHoleEnd + high);
}

std::vector<kvm::MemoryRegion> MemoryLayout::ram_regions() const {
    std::vector<kvm::MemoryRegion> regions{{0, m_low_end}};
    if (m_high_end > kMmioHoleEnd) regions.push_back({kMmioHoleEnd, m_high_end - kMmioHoleEnd});
    return regions;
}

std::vector<E820Entry> MemoryLayout::e820() const {
    std::vector<E820Entry> map{
        {0, kEbdaStart, E820Type::Ram},
        {kEbdaStart, kHighMemoryStart - kEbdaStart, E820Type::Reserved},
        {kHighMemoryStart, m_low_end - kHighMemoryStart, E820Type::Ram},
    };
    if (m_high_end > kMmioHoleEnd)
        map.push_back({kMmioHoleEnd, m_high_end - kMmioHoleEnd, E820Type::Ram});
    return map;
}

}  // namespace msb::arch::x86_64
