// System: the open /dev/kvm handle, the root of every KVM object.
//
//   auto kvm = TRY(kvm::System::open());
//   auto vm = TRY(kvm::Vm::create(kvm));
//
// Only this layer includes <linux/kvm.h>; the types below are our own plain copies of the few
// fields the layers above need, so that arch/ and vmm/ stay free of the uapi header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::kvm {

// One CPUID leaf as KVM reports and accepts it (struct kvm_cpuid_entry2 without padding).
struct CpuidEntry {
    uint32_t function = 0;
    uint32_t index = 0;
    uint32_t flags = 0;  // kCpuidFlagSignificantIndex when `index` selects a sub-leaf
    uint32_t eax = 0;
    uint32_t ebx = 0;
    uint32_t ecx = 0;
    uint32_t edx = 0;
};
// KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
inline constexpr uint32_t kCpuidFlagSignificantIndex = 1;

class System {
public:
    // Opens `path` (default /dev/kvm) and checks the API version. Errors say what to do:
    // a missing device names the modules, EACCES names the kvm group.
    static Result<System> open(const std::string& path = "/dev/kvm");

    int fd() const { return m_fd.get(); }
    // Size of the kvm_run area every vCPU maps.
    Result<size_t> vcpu_mmap_size() const;
    // KVM_GET_SUPPORTED_CPUID.
    Result<std::vector<CpuidEntry>> supported_cpuid() const;
    // KVM_CHECK_EXTENSION; 0 when absent.
    int check_extension(int capability) const;

private:
    explicit System(UniqueFd fd) : m_fd(std::move(fd)) {}
    UniqueFd m_fd;
};

}  // namespace msb::kvm
