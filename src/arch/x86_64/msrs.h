// The model-specific registers every vCPU starts with: the values a firmware would leave behind
// for a kernel entered directly in long mode.
//
//   for (const auto& msr : x86::boot_msrs()) ...   // then Vcpu::set_msrs
//
// System-call entry points and the swapped GS base start at zero (the kernel installs its own
// during boot), fast string operations are on, and the MTRRs are enabled with write-back as the
// default memory type so that no RAM looks uncached to a kernel that honours them. Some hosts
// refuse individual MSRs (the PVM host rejects a few that hardware KVM takes); the VMM skips a
// rejected one and carries on, since none of them is needed for the kernel to boot.
#pragma once

#include <cstdint>
#include <vector>

#include "kvm/vcpu.h"

namespace msb::arch::x86_64 {

inline constexpr uint32_t kMsrTsc = 0x10;
inline constexpr uint32_t kMsrSysenterCs = 0x174;
inline constexpr uint32_t kMsrSysenterEsp = 0x175;
inline constexpr uint32_t kMsrSysenterEip = 0x176;
inline constexpr uint32_t kMsrMiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

inline constexpr uint64_t kMiscEnableFastStrings = 1u << 0;
inline constexpr uint64_t kMtrrEnable = 1u << 11;
inline constexpr uint64_t kMemoryTypeWriteBack = 6;

std::vector<kvm::MsrEntry> boot_msrs();

}  // namespace msb::arch::x86_64
