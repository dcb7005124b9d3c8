// Identity page tables for entering the kernel in 64-bit mode: 2 MiB pages mapping every
// guest-physical address from 0 up to the top of RAM (rounded up to 1 GiB), hole included.
// The kernel replaces them early; they only have to cover what it touches before that
// (kernel image, zero page, command line, initramfs) — covering everything keeps it simple.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::arch::x86_64 {

// Page-table entry bits (Intel SDM vol. 3 §4.5).
inline constexpr uint64_t kPtePresent = 1ULL << 0;
inline constexpr uint64_t kPteWritable = 1ULL << 1;
inline constexpr uint64_t kPteLargePage = 1ULL << 7;

// Writes PML4 at kPml4Address, PDPT at kPdptAddress and page directories from
// kPageDirectoriesAddress so that [0, top) is identity-mapped. Returns the CR3 value.
// Fails when `top` exceeds kMaxMappedAddress or the tables do not fit in `memory`.
Result<uint64_t> write_identity_page_tables(const kvm::GuestMemory& memory, uint64_t top);

}  // namespace msb::arch::x86_64
