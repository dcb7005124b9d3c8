// The zero page (struct boot_params from <asm/bootparam.h>) handed to a 64-bit Linux entry in
// %rsi: setup header, command line pointer, initramfs location and the e820 memory map
// (Documentation/x86/boot.rst, zero-page.rst).
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "arch/x86_64/layout.h"
#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::arch::x86_64 {

inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;

struct BootParamsConfig {
    // The setup header read from a bzImage; absent for an ELF vmlinux, in which case a minimal
    // header (protocol 2.15, loaded high) is synthesised.
    std::optional<setup_header> header;
    uint64_t cmdline_address = kCmdlineAddress;
    uint32_t cmdline_size = 0;  // bytes, without the terminating NUL
    uint64_t initrd_address = 0;
    uint64_t initrd_size = 0;
    std::vector<E820Entry> e820;
};

// Fails when the e820 map does not fit in the zero page or the initramfs is not below 4 GiB.
Result<boot_params> build_boot_params(const BootParamsConfig& config);

// build_boot_params() written at kZeroPageAddress.
Status write_boot_params(const kvm::GuestMemory& memory, const BootParamsConfig& config);

}  // namespace msb::arch::x86_64
