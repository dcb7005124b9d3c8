// Identity page tables with 2 MiB pages.
#include "arch/x86_64/page_tables.h"

#include <fmt/format.h>

#include <vector>

#include "arch/x86_64/layout.h"

namespace msb::arch::x86_64 {

Result<uint64_t> write_identity_page_tables(const kvm::GuestMemory& memory, uint64_t top) {
    if (top == 0 || top > kMaxMappedAddress)
        return Error(fmt::format("identity map up to {:#x} exceeds the {:#x} limit", top,
                                 kMaxMappedAddress));
    uint64_t directories = (top + kGiB - 1) / kGiB;  // one page directory maps 1 GiB

    std::vector<uint64_t> pml4(512, 0);
    pml4[0] = kPdptAddress | kPtePresent | kPteWritable;
    std::vector<uint64_t> pdpt(512, 0);
    std::vector<uint64_t> pd(512 * directories, 0);
    for (uint64_t d = 0; d < directories; ++d) {
        pdpt[d] = (kPageDirectoriesAddress + d * 0x1000) | kPtePresent | kPteWritable;
        for (uint64_t i = 0; i < 512; ++i) {
            uint64_t address = d * kGiB + i * (2 * kMiB);
            pd[d * 512 + i] = address | kPtePresent | kPteWritable | kPteLargePage;
        }
    }
    auto bytes = [](const std::vector<uint64_t>& v) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 8);
    };
    TRY(memory.write(kPml4Address, bytes(pml4)));
    TRY(memory.write(kPdptAddress, bytes(pdpt)));
    TRY(memory.write(kPageDirectoriesAddress, bytes(pd)));
    return kPml4Address;
}

}  // namespace msb::arch::x86_64
