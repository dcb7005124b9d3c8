#include "arch/x86_64/msrs.h"

namespace msb::arch::x86_64 {

std::vector<kvm::MsrEntry> boot_msrs() {
    return {
        {kMsrSysenterCs, 0},
        {kMsrSysenterEsp, 0},
        {kMsrSysenterEip, 0},
        {kMsrStar, 0},
        {kMsrLstar, 0},
        {kMsrCstar, 0},
        {kMsrSyscallMask, 0},
        {kMsrKernelGsBase, 0},
        {kMsrTsc, 0},
        {kMsrMiscEnable, kMiscEnableFastStrings},
        {kMsrMtrrDefType, kMtrrEnable | kMemoryTypeWriteBack},
    };
}

}  // namespace msb::arch::x86_64
