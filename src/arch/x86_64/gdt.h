// The boot GDT and the 64-bit register state a kernel is entered with (Linux boot protocol,
// Documentation/x86/boot.rst "64-bit BOOT PROTOCOL": __BOOT_CS = 0x10 and __BOOT_DS = 0x18,
// flat segments, paging on, identity mapping, interrupts off, %rsi = zero page).
#pragma once

#include <array>
#include <cstdint>

#include "base/result.h"
#include "kvm/guest_memory.h"
#include "kvm/vcpu.h"

namespace msb::arch::x86_64 {

inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;

// Packs a segment descriptor (Intel SDM vol. 3 §3.4.5).
uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

// null, null, 64-bit code (0x10), data (0x18).
std::array<uint64_t, 4> boot_gdt();

// Writes boot_gdt() at kGdtAddress.
Status write_gdt(const kvm::GuestMemory& memory);

// Long mode with paging (CR0.PE|PG, CR4.PAE, EFER.LME|LMA), the boot GDT and flat segments.
kvm::SpecialRegisters long_mode_registers(uint64_t cr3);

// Control-register bits.
inline constexpr uint64_t kCr0Pe = 1ULL << 0;
inline constexpr uint64_t kCr0Et = 1ULL << 4;
inline constexpr uint64_t kCr0Pg = 1ULL << 31;
inline constexpr uint64_t kCr4Pae = 1ULL << 5;
inline constexpr uint64_t kEferLme = 1ULL << 8;
inline constexpr uint64_t kEferLma = 1ULL << 10;

}  // namespace msb::arch::x86_64
