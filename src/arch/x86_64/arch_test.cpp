// Unit tests for the x86-64 boot structures: no KVM needed.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "arch/x86_64/boot_params.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/msrs.h"
#include "arch/x86_64/page_tables.h"

namespace msb::arch::x86_64 {
namespace {

TEST(MemoryLayout, KeepsSmallGuestsBelowTheHole) {
    auto layout = MUST(MemoryLayout::create(128 * kMiB));
    EXPECT_EQ(layout.low_ram_end(), 128 * kMiB);
    EXPECT_EQ(layout.ram_top(), 128 * kMiB);
    auto regions = layout.ram_regions();
    ASSERT_EQ(regions.size(), 1u);
    EXPECT_EQ(regions[0].size, 128 * kMiB);
    std::vector<E820Entry> expected{{0, 0x9fc00, E820Type::Ram},
                                    {0x9fc00, 0x60400, E820Type::Reserved},
                                    {0x100000, 127 * kMiB, E820Type::Ram}};
    EXPECT_EQ(layout.e820(), expected);
}

TEST(MemoryLayout, PutsRamBeyondThreeGibAboveFourGib) {
    auto layout = MUST(MemoryLayout::create(4 * kGiB));
    EXPECT_EQ(layout.low_ram_end(), kMmioHoleStart);
    EXPECT_EQ(layout.high_ram_end(), 5 * kGiB);
    EXPECT_EQ(layout.ram_top(), 5 * kGiB);
    auto regions = layout.ram_regions();
    ASSERT_EQ(regions.size(), 2u);
    EXPECT_EQ(regions[1].guest_address, 4 * kGiB);
    EXPECT_EQ(regions[1].size, 1 * kGiB);
    auto e820 = layout.e820();
    ASSERT_EQ(e820.size(), 4u);
    EXPECT_EQ(e820[2], (E820Entry{0x100000, kMmioHoleStart - 0x100000, E820Type::Ram}));
    EXPECT_EQ(e820[3], (E820Entry{4 * kGiB, kGiB, E820Type::Ram}));
    // Nothing in the map touches the hole.
    for (const auto& e : e820)
        EXPECT_TRUE(e.address + e.size <= kMmioHoleStart || e.address >= kMmioHoleEnd);
}

TEST(MemoryLayout, RejectsSizesOutOfRange) {
    EXPECT_FALSE(MemoryLayout::create(64 * kMiB).ok());
    EXPECT_FALSE(MemoryLayout::create(65 * kGiB).ok());
    EXPECT_FALSE(MemoryLayout::create(128 * kMiB + 4096).ok());
    EXPECT_TRUE(MemoryLayout::create(kMaxMemory).ok());
}

TEST(PageTables, IdentityMapEveryAddressUpToTheTop) {
    auto layout = MUST(MemoryLayout::create(4 * kGiB));
    auto mem = MUST(kvm::GuestMemory::create(layout.ram_regions()));
    uint64_t cr3 = MUST(write_identity_page_tables(mem, layout.ram_top()));
    EXPECT_EQ(cr3, kPml4Address);
    // Walk the tables like the MMU for a few addresses, including one above 4 GiB.
    for (uint64_t address :
         {uint64_t{0}, uint64_t{0x1000000}, kMmioHoleStart - 1, 4 * kGiB + 0x12345, 5 * kGiB - 1}) {
        uint64_t pml4e = MUST(mem.read_obj<uint64_t>(cr3 + ((address >> 39) & 511) * 8));
        ASSERT_TRUE(pml4e & kPtePresent);
        uint64_t pdpte =
            MUST(mem.read_obj<uint64_t>((pml4e & ~0xfffULL) + ((address >> 30) & 511) * 8));
        ASSERT_TRUE(pdpte & kPtePresent) << std::hex << address;
        uint64_t pde =
            MUST(mem.read_obj<uint64_t>((pdpte & ~0xfffULL) + ((address >> 21) & 511) * 8));
        ASSERT_TRUE(pde & kPtePresent);
        ASSERT_TRUE(pde & kPteLargePage);
        EXPECT_EQ((pde & ~0x1fffffULL & ((1ULL << 52) - 1)) + (address & 0x1fffff), address);
    }
    // Nothing is mapped beyond the last GiB needed.
    uint64_t pdpte_beyond = MUST(mem.read_obj<uint64_t>(kPdptAddress + uint64_t{5} * 8));
    EXPECT_EQ(pdpte_beyond, 0u);
}

TEST(PageTables, RejectsTopsBeyondTheLimit) {
    auto mem = MUST(kvm::GuestMemory::create({{0, 1 * kMiB}}));
    EXPECT_FALSE(write_identity_page_tables(mem, kMaxMappedAddress + 1).ok());
}

TEST(Gdt, HasTheBootCodeAndDataSelectorsOfTheLinuxProtocol) {
    auto gdt = boot_gdt();
    EXPECT_EQ(gdt[kBootCodeSelector / 8], 0x00af9b000000ffffULL);
    EXPECT_EQ(gdt[kBootDataSelector / 8], 0x00cf93000000ffffULL);
    auto sregs = long_mode_registers(kPml4Address);
    EXPECT_EQ(sregs.cs.selector, kBootCodeSelector);
    EXPECT_EQ(sregs.cs.l, 1);
    EXPECT_EQ(sregs.ss.selector, kBootDataSelector);
    EXPECT_EQ(sregs.gdt_limit, 31);
    EXPECT_TRUE(sregs.cr0 & kCr0Pg);
    EXPECT_TRUE(sregs.efer & kEferLma);
    EXPECT_EQ(sregs.cr3, kPml4Address);
}

TEST(MpTable, HasValidChecksumsAndOneProcessorPerVcpu) {
    for (uint32_t vcpus : {1u, 4u, kMaxVcpus}) {
        auto table = MUST(build_mp_table(vcpus, kMpTableAddress));
        MpFloatingPointer pointer;
        std::memcpy(&pointer, table.data(), sizeof pointer);
        EXPECT_EQ(std::memcmp(pointer.signature, "_MP_", 4), 0);
        EXPECT_EQ(mp_checksum(table.data(), 16), 0);
        EXPECT_EQ(pointer.config_table, kMpTableAddress + 16);
        MpConfigHeader header;
        std::memcpy(&header, table.data() + 16, sizeof header);
        EXPECT_EQ(std::memcmp(header.signature, "PCMP", 4), 0);
        ASSERT_EQ(header.length + 16u, table.size());
        EXPECT_EQ(mp_checksum(table.data() + 16, header.length), 0);
        EXPECT_EQ(header.entry_count, vcpus + 1 + 1 + kIoApicPins + 2);
        for (uint32_t i = 0; i < vcpus; ++i) {
            MpProcessorEntry cpu{};
            std::memcpy(&cpu, table.data() + 16 + 44 + size_t{i} * 20, sizeof cpu);
            EXPECT_EQ(cpu.type, 0);
            EXPECT_EQ(cpu.apic_id, i);
            EXPECT_EQ(cpu.flags, i == 0 ? 3 : 1);
        }
        // The IOAPIC entry follows the bus entry; its id must not clash with a CPU's.
        const uint8_t* ioapic = table.data() + 16 + 44 + size_t{vcpus} * 20 + 8;
        EXPECT_EQ(ioapic[0], 2);
        EXPECT_EQ(ioapic[1], vcpus);
        EXPECT_LE(kMpTableAddress + table.size(), 0xa0000u);
    }
    EXPECT_FALSE(build_mp_table(0, kMpTableAddress).ok());
    EXPECT_FALSE(build_mp_table(kMaxVcpus + 1, kMpTableAddress).ok());
}

std::vector<kvm::CpuidEntry> sample_cpuid() {
    return {
        {1, 0, 0, 0x000906ea, 0xff100800, kCpuidLeaf1EcxCx16 | kCpuidLeaf1EcxHypervisor | 1, 0},
        {0xb, 0, kvm::kCpuidFlagSignificantIndex, 0, 0, 0, 0},
        {0xb, 1, kvm::kCpuidFlagSignificantIndex, 0, 0, 0, 0},
        {kKvmCpuidFeatures, 0, 0,
         kKvmFeaturePvUnhalt | kKvmFeaturePvSendIpi | kKvmFeaturePvSchedYield | 1, 0, 0, 0},
    };
}

TEST(Cpuid, ClearsCx16AndSetsTheApicIdOnEveryHost) {
    for (HostKind host : {HostKind::Hardware, HostKind::Pvm}) {
        auto entries = cpuid_for_vcpu(sample_cpuid(), host, 3, 4);
        EXPECT_EQ(entries[0].ecx & kCpuidLeaf1EcxCx16, 0u);
        EXPECT_TRUE(entries[0].ecx & kCpuidLeaf1EcxHypervisor);
        EXPECT_EQ(entries[0].ebx >> 24, 3u);
        EXPECT_EQ((entries[0].ebx >> 16) & 0xff, 4u);
        EXPECT_EQ(entries[0].ebx & 0xffff, 0x0800u);
        EXPECT_EQ(entries[1].edx, 3u);
        EXPECT_EQ(entries[2].edx, 3u);
        EXPECT_EQ(entries[2].ebx, 4u);
        EXPECT_EQ(entries[2].eax, 2u);  // two bits number four cores
    }
}

TEST(Cpuid, ClearsHypercallBasedPvFeaturesOnlyOnPvm) {
    auto pvm = cpuid_for_vcpu(sample_cpuid(), HostKind::Pvm, 0, 1);
    EXPECT_EQ(pvm[3].eax, 1u);
    auto hardware = cpuid_for_vcpu(sample_cpuid(), HostKind::Hardware, 0, 1);
    EXPECT_EQ(hardware[3].eax, sample_cpuid()[3].eax);
}

TEST(Cpuid, DetectsPvmFromTheModuleDirectory) {
    auto dir =
        std::filesystem::temp_directory_path() / ("msb-cpuid-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    EXPECT_EQ(detect_host_kind(dir.string()), HostKind::Hardware);
    std::filesystem::create_directories(dir / "kvm_pvm");
    EXPECT_EQ(detect_host_kind(dir.string()), HostKind::Pvm);
    std::filesystem::remove_all(dir);
}

TEST(BootMsrs, EnableWriteBackMtrrsAndFastStringsAndZeroTheSyscallEntries) {
    auto msrs = boot_msrs();
    auto value = [&](uint32_t index) -> std::optional<uint64_t> {
        for (const auto& m : msrs)
            if (m.index == index) return m.data;
        return std::nullopt;
    };
    EXPECT_EQ(value(kMsrMtrrDefType), 0x806u);
    EXPECT_EQ(value(kMsrMiscEnable), 1u);
    for (uint32_t zero : {kMsrStar, kMsrLstar, kMsrCstar, kMsrSyscallMask, kMsrKernelGsBase,
                          kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip})
        EXPECT_EQ(value(zero), 0u) << std::hex << zero;
    std::set<uint32_t> unique;
    for (const auto& m : msrs) EXPECT_TRUE(unique.insert(m.index).second) << "twice: " << m.index;
}

TEST(BootParams, CarryTheCommandLineInitrdAndE820) {
    auto layout = MUST(MemoryLayout::create(4 * kGiB));
    BootParamsConfig config;
    config.cmdline_size = 42;
    config.initrd_address = 0x8000000;
    config.initrd_size = 12345;
    config.e820 = layout.e820();
    boot_params params = MUST(build_boot_params(config));
    EXPECT_EQ(params.hdr.boot_flag, kBootFlag);
    EXPECT_EQ(params.hdr.header, kHdrSMagic);
    EXPECT_EQ(params.hdr.type_of_loader, kLoaderTypeUndefined);
    EXPECT_TRUE(params.hdr.loadflags & LOADED_HIGH);
    EXPECT_EQ(params.hdr.cmd_line_ptr, kCmdlineAddress);
    EXPECT_EQ(params.hdr.cmdline_size, 42u);
    EXPECT_EQ(params.hdr.ramdisk_image, 0x8000000u);
    EXPECT_EQ(params.hdr.ramdisk_size, 12345u);
    ASSERT_EQ(params.e820_entries, 4);
    EXPECT_EQ(params.e820_table[3].addr, 4 * kGiB);
    EXPECT_EQ(params.e820_table[3].size, kGiB);
    EXPECT_EQ(params.e820_table[1].type, 2u);
}

TEST(BootParams, KeepAKernelsOwnSetupHeader) {
    BootParamsConfig config;
    setup_header header{};
    header.boot_flag = kBootFlag;
    header.header = kHdrSMagic;
    header.version = 0x020c;
    header.setup_sects = 27;
    config.header = header;
    boot_params params = MUST(build_boot_params(config));
    EXPECT_EQ(params.hdr.version, 0x020c);
    EXPECT_EQ(params.hdr.setup_sects, 27);
    EXPECT_EQ(params.hdr.type_of_loader, kLoaderTypeUndefined);
}

TEST(BootParams, RejectAnInitrdAboveFourGib) {
    BootParamsConfig config;
    config.initrd_address = 4 * kGiB;
    config.initrd_size = 4096;
    EXPECT_FALSE(build_boot_params(config).ok());
}

}  // namespace
}  // namespace msb::arch::x86_64
