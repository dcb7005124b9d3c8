// System: /dev/kvm.
#include "kvm/system.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include "kvm/uapi.h"

#include <cstring>

namespace msb::kvm {

Result<System> System::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return Error(path + " not found: is KVM enabled (modprobe kvm_intel/kvm_amd)?", err);
        if (err == EACCES || err == EPERM)
            return Error(path + ": permission denied — add your user to the kvm group", err);
        return Error::from_errno("open " + path, err);
    }
    System system{UniqueFd(fd)};
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        return Error(path + ": unsupported KVM API version " + std::to_string(version) + " (want " +
                     std::to_string(KVM_API_VERSION) + ")");
    return system;
}

Result<size_t> System::vcpu_mmap_size() const {
    int size = ::ioctl(m_fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE");
    return static_cast<size_t>(size);
}

int System::check_extension(int capability) const {
    int r = ::ioctl(m_fd.get(), KVM_CHECK_EXTENSION, capability);
    return r < 0 ? 0 : r;
}

Result<std::vector<CpuidEntry>> System::supported_cpuid() const {
    constexpr uint32_t kMaxEntries = 256;
    uapi::FlexBuffer<uapi::Cpuid2Header, kvm_cpuid_entry2> buffer(kMaxEntries);
    buffer.header()->nent = kMaxEntries;
    if (::ioctl(m_fd.get(), uapi::kGetSupportedCpuid, buffer.header()) < 0)
        return Error::from_errno("KVM_GET_SUPPORTED_CPUID");
    const uapi::Cpuid2Header* cpuid = buffer.header();
    std::vector<CpuidEntry> entries;
    entries.reserve(cpuid->nent);
    for (uint32_t i = 0; i < cpuid->nent; ++i) {
        const kvm_cpuid_entry2& e = buffer.entries()[i];
        entries.push_back({e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx});
    }
    return entries;
}

}  // namespace msb::kvm
