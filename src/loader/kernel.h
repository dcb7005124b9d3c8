// Kernel images: an uncompressed ELF vmlinux (the fast path: PT_LOAD segments at p_paddr,
// entered at e_entry in 64-bit mode) or a bzImage through the 64-bit boot protocol
// (Documentation/x86/boot.rst: protected-mode kernel at 1 MiB, 64-bit entry at +0x200).
//
//   auto source = TRY(FileSource::open(path));
//   KernelImage image = TRY(parse_kernel(source));      // validates the headers
//   TRY(load_kernel(memory, source, image));            // validates against guest RAM
//
// Everything in the file is untrusted: magic, class, machine, segment bounds against the file
// and against guest RAM are checked before a byte is copied.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"
#include "loader/byte_source.h"

namespace msb::loader {

enum class KernelFormat { Elf, BzImage };

struct LoadSegment {
    uint64_t file_offset;
    uint64_t file_size;
    uint64_t guest_address;
    uint64_t memory_size;  // >= file_size; the rest is zeroed
};

struct KernelImage {
    KernelFormat format;
    uint64_t entry;  // guest-physical 64-bit entry point
    std::vector<LoadSegment> segments;
    // The bzImage's setup header, to be copied into the zero page.
    std::optional<setup_header> header;
    // Longest command line the kernel accepts, without the NUL.
    uint32_t cmdline_limit;
    // Highest address an initramfs byte may occupy.
    uint64_t initrd_address_max;
    // One past the highest byte the kernel occupies while booting (init_size for a bzImage).
    uint64_t end;
};

// x86 COMMAND_LINE_SIZE (2048) minus the NUL: the limit for a vmlinux, which has no header.
inline constexpr uint32_t kDefaultCmdlineLimit = 2047;
inline constexpr uint64_t kBzImageLoadAddress = 0x100000;
inline constexpr uint16_t kMinBootProtocol = 0x020c;  // 2.12: 64-bit entry, xloadflags

Result<KernelImage> parse_elf(const ByteSource& source);
Result<KernelImage> parse_bzimage(const ByteSource& source);
// Picks the parser by magic; an error says "not a kernel" for anything else.
Result<KernelImage> parse_kernel(const ByteSource& source);

// Copies the segments into guest memory and zeroes their tails. Fails when a segment is not
// entirely inside guest RAM or reaches below 1 MiB (where the boot structures live).
Status load_kernel(kvm::GuestMemory& memory, const ByteSource& source,
                   const KernelImage& image);

}  // namespace msb::loader
