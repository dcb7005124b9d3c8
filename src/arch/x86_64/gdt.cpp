// Boot GDT and long-mode entry state.
#include "arch/x86_64/gdt.h"

#include "arch/x86_64/layout.h"

namespace msb::arch::x86_64 {

uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
    return ((uint64_t{base} & 0xff000000) << 32) | ((uint64_t{flags} & 0xf0ff) << 40) |
           ((uint64_t{limit} & 0x000f0000) << 32) | ((uint64_t{base} & 0x00ffffff) << 16) |
           (uint64_t{limit} & 0x0000ffff);
}

std::array<uint64_t, 4> boot_gdt() {
    // 0xa09b: G, L, P, DPL0, code execute/read accessed. 0xc093: G, D/B, P, data read/write
    // accessed.
    return {0, 0, gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff)};
}

Status write_gdt(const kvm::GuestMemory& memory) {
    return memory.write_obj(kGdtAddress, boot_gdt());
}

kvm::SpecialRegisters long_mode_registers(uint64_t cr3) {
    kvm::SpecialRegisters s;
    kvm::Segment code;
    code.limit = 0xffffffff;
    code.selector = kBootCodeSelector;
    code.type = 11;  // execute/read, accessed
    code.present = 1;
    code.s = 1;
    code.l = 1;
    code.g = 1;
    kvm::Segment data;
    data.limit = 0xffffffff;
    data.selector = kBootDataSelector;
    data.type = 3;  // read/write, accessed
    data.present = 1;
    data.db = 1;
    data.s = 1;
    data.g = 1;
    s.cs = code;
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.gdt_base = kGdtAddress;
    s.gdt_limit = static_cast<uint16_t>(boot_gdt().size() * 8 - 1);
    s.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
    s.cr3 = cr3;
    s.cr4 = kCr4Pae;
    s.efer = kEferLme | kEferLma;
    return s;
}

}  // namespace msb::arch::x86_64
