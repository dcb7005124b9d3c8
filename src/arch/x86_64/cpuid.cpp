// CPUID policy.
#include "arch/x86_64/cpuid.h"

#include <sys/stat.h>

namespace msb::arch::x86_64 {

HostKind detect_host_kind(const std::string& sysfs_module_dir) {
    struct stat st {};
    return ::stat((sysfs_module_dir + "/kvm_pvm").c_str(), &st) == 0 ? HostKind::Pvm
                                                                     : HostKind::Hardware;
}

namespace {

// Bits needed to number `count` items (x2APIC topology shift).
uint32_t bits_for(uint32_t count) {
    uint32_t bits = 0;
    while ((1u << bits) < count) ++bits;
    return bits;
}

}  // namespace

std::vector<kvm::CpuidEntry> cpuid_for_vcpu(std::vector<kvm::CpuidEntry> entries, HostKind host,
                                            uint32_t index, uint32_t count) {
    for (auto& e : entries) {
        switch (e.function) {
            case 1:
                e.ecx &= ~kCpuidLeaf1EcxCx16;
                // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
                e.ebx = (e.ebx & 0x0000ffff) | (index << 24) | ((count & 0xff) << 16);
                if (count > 1) e.edx |= 1u << 28;  // HTT: EBX[23:16] is valid
                break;
            case 0xb:
            case 0x1f:
                // Extended topology (SDM vol. 2 CPUID leaf 0Bh): level 0 = SMT with one thread per
                // core, level 1 = core with `count` cores; EDX = x2APIC id on every sub-leaf.
                e.edx = index;
                if (e.index == 0) {
                    e.eax = 0;
                    e.ebx = 1;
                    e.ecx = (1u << 8) | 0;
                } else if (e.index == 1) {
                    e.eax = bits_for(count);
                    e.ebx = count;
                    e.ecx = (2u << 8) | 1;
                } else {
                    e.eax = 0;
                    e.ebx = 0;
                    e.ecx = e.index;
                }
                break;
            case kKvmCpuidFeatures:
                if (host == HostKind::Pvm)
                    e.eax &=
                        ~(kKvmFeaturePvUnhalt | kKvmFeaturePvSendIpi | kKvmFeaturePvSchedYield);
                break;
            default:
                break;
        }
    }
    return entries;
}

}  // namespace msb::arch::x86_64
