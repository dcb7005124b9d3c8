// CPUID policy: what each vCPU is told about the processor, per kind of host.
//
//   auto entries = cpuid_for_vcpu(TRY(system.supported_cpuid()), detect_host_kind(), i, n);
//   TRY(vcpu.set_cpuid(entries));
//
// Everywhere: cmpxchg16b is hidden (the PVM host cannot emulate `lock cmpxchg16b` in kernel
// mode, and hiding it costs nothing elsewhere), and each vCPU gets its own APIC id (= index)
// in leaf 1 EBX[31:24] and leaves 0xB/0x1F EDX with a flat topology of `count` cores.
// On PVM: the KVM paravirtual features that issue VMCALL (PV_UNHALT, PV_SEND_IPI,
// PV_SCHED_YIELD) are cleared — a VMCALL never returns there, and Linux uses them for SMP.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvm/system.h"

namespace msb::arch::x86_64 {

enum class HostKind { Hardware, Pvm };

// Pvm when the kvm_pvm module is loaded (`sysfs_module_dir`/kvm_pvm exists).
HostKind detect_host_kind(const std::string& sysfs_module_dir = "/sys/module");

inline constexpr uint32_t kCpuidLeaf1EcxCx16 = 1u << 13;
inline constexpr uint32_t kCpuidLeaf1EcxHypervisor = 1u << 31;
inline constexpr uint32_t kKvmCpuidFeatures = 0x40000001;
inline constexpr uint32_t kKvmFeaturePvUnhalt = 1u << 7;
inline constexpr uint32_t kKvmFeaturePvSendIpi = 1u << 11;
inline constexpr uint32_t kKvmFeaturePvSchedYield = 1u << 13;

// Returns `supported` adjusted for vCPU `index` of `count`.
std::vector<kvm::CpuidEntry> cpuid_for_vcpu(std::vector<kvm::CpuidEntry> supported, HostKind host,
                                            uint32_t index, uint32_t count);

}  // namespace msb::arch::x86_64
