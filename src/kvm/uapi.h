// <linux/kvm.h> for C++, internal to src/kvm.
//
// The uapi header declares flexible arrays with __DECLARE_FLEX_ARRAY, which in C++ wraps the
// array in a union with an empty struct; an empty struct has size 1 in C++, so sizeof(struct
// kvm_cpuid2) is 12 instead of 8 and sizeof(struct kvm_msrs) 16 instead of 8. The _IOW/_IOWR
// request numbers encode that size, so the C++ spellings of KVM_GET_SUPPORTED_CPUID,
// KVM_SET_CPUID2 and KVM_SET_MSRS are numbers the kernel does not know (EINVAL), and the
// `entries` member sits at the wrong offset (12 / 16 instead of 8). So never use those two
// structs here: lay out the C header below followed by the entries, and use these request
// numbers computed from the C layout.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace msb::kvm::uapi {

struct Cpuid2Header {  // struct kvm_cpuid2 without its entries
    __u32 nent;
    __u32 padding;
};
struct MsrsHeader {  // struct kvm_msrs without its entries
    __u32 nmsrs;
    __u32 pad;
};
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

// A C-layout request buffer: `Header` followed by `count` zeroed `Entry`s.
template <typename Header, typename Entry>
class FlexBuffer {
public:
    explicit FlexBuffer(size_t count)
        : m_storage((sizeof(Header) + count * sizeof(Entry) + 7) / 8, 0) {}
    Header* header() { return reinterpret_cast<Header*>(m_storage.data()); }
    // Safe: the storage is 8-byte aligned and sized for the header plus `count` entries.
    Entry* entries() {
        return reinterpret_cast<Entry*>(reinterpret_cast<char*>(m_storage.data()) + sizeof(Header));
    }

private:
    std::vector<uint64_t> m_storage;
};

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

}  // namespace msb::kvm::uapi
