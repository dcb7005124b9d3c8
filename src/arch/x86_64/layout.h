// The x86-64 guest-physical memory map msb builds: where RAM, the boot structures, the MMIO
// hole and the device windows live. One place for every fixed address.
//
//   0x0000_0500  GDT                      0x0000_7000  zero page (struct boot_params)
//   0x0000_9000  PML4, 0xa000 PDPT        0x0003_0000  page directories (one per GiB mapped)
//   0x0002_0000  kernel command line      0x0009_fc00  MP table (in the reserved EBDA area)
//   0x0010_0000  kernel (bzImage) / 16 MiB vmlinux p_paddr; initramfs high in low RAM
//   0xc000_0000 .. 4 GiB  MMIO hole: virtio-mmio windows from 0xd000_0000, IOAPIC, LAPIC, TSS
//   4 GiB ..      RAM that did not fit below the hole
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::arch::x86_64 {

inline constexpr uint64_t kMiB = 1ULL << 20;
inline constexpr uint64_t kGiB = 1ULL << 30;

inline constexpr uint64_t kGdtAddress = 0x500;
inline constexpr uint64_t kZeroPageAddress = 0x7000;
inline constexpr uint64_t kBootStackTop = 0x8ff0;
inline constexpr uint64_t kPml4Address = 0x9000;
inline constexpr uint64_t kPdptAddress = 0xa000;
inline constexpr uint64_t kCmdlineAddress = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 0x10000;  // room reserved up to the page directories
inline constexpr uint64_t kPageDirectoriesAddress = 0x30000;
inline constexpr uint64_t kEbdaStart = 0x9fc00;  // end of conventional RAM, start of EBDA
inline constexpr uint64_t kMpTableAddress = 0x9fc00;
inline constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB

inline constexpr uint64_t kMmioHoleStart = 0xc000'0000;
inline constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;
inline constexpr uint64_t kDeviceWindowsStart = 0xd000'0000;
inline constexpr uint64_t kDeviceWindowsEnd = 0xfec0'0000;
inline constexpr uint64_t kIoApicAddress = 0xfec0'0000;
inline constexpr uint64_t kLocalApicAddress = 0xfee0'0000;
inline constexpr uint64_t kIdentityMapAddress = 0xfffb'c000;
inline constexpr uint64_t kTssAddress = 0xfffb'd000;

// Page directories fit between kPageDirectoriesAddress and the EBDA: this bounds the mapped
// guest-physical space (and so the largest RAM size) to 64 GiB of RAM plus the 1 GiB hole.
inline constexpr uint64_t kMaxMappedAddress = 65 * kGiB;
inline constexpr uint64_t kMaxMemory = 64 * kGiB;
inline constexpr uint64_t kMinMemory = 128 * kMiB;

// E820 types (Documentation/x86/zero-page.rst / ACPI spec).
enum class E820Type : uint32_t { Ram = 1, Reserved = 2 };

struct E820Entry {
    uint64_t address;
    uint64_t size;
    E820Type type;
    bool operator==(const E820Entry&) const = default;
};

// Where the RAM of a guest of a given size goes.
class MemoryLayout {
public:
    // REQUIRES nothing: sizes outside [kMinMemory, kMaxMemory] or not a multiple of 2 MiB are
    // rejected with an error naming the limit.
    static Result<MemoryLayout> create(uint64_t memory_bytes);

    uint64_t memory_size() const { return m_memory; }
    // RAM below the hole: [0, low_ram_end()).
    uint64_t low_ram_end() const { return m_low_end; }
    // RAM above 4 GiB: [kMmioHoleEnd, high_ram_end()), empty when high_ram_end() == kMmioHoleEnd.
    uint64_t high_ram_end() const { return m_high_end; }
    // One past the highest RAM address.
    uint64_t ram_top() const { return m_high_end > kMmioHoleEnd ? m_high_end : m_low_end; }

    // The regions to back with GuestMemory (the hole is never RAM).
    std::vector<kvm::MemoryRegion> ram_regions() const;
    // The e820 map given to the kernel: conventional RAM, the EBDA/BIOS area reserved, RAM from
    // 1 MiB to the hole, RAM above 4 GiB.
    std::vector<E820Entry> e820() const;

private:
    MemoryLayout(uint64_t memory, uint64_t low_end, uint64_t high_end)
        : m_memory(memory), m_low_end(low_end), m_high_end(high_end) {}

    uint64_t m_memory;
    uint64_t m_low_end;
    uint64_t m_high_end;
};

}  // namespace msb::arch::x86_64
