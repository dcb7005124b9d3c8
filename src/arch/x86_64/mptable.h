// Intel MultiProcessor Specification 1.4 table: how a kernel without ACPI finds the CPUs, the
// IOAPIC and the ISA interrupt routing. Without it Linux boots uniprocessor (and, on the PVM
// host, 1.2 s slower).
//
// Contents: floating pointer, then the configuration table with one processor entry per vCPU
// (APIC id = vCPU index, vCPU 0 the bootstrap processor), one ISA bus, one IOAPIC (id = vCPU
// count, so it collides with no CPU), 24 IOAPIC pins routed 1:1 from ISA IRQs, ExtINT → LINT0
// and NMI → LINT1.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::arch::x86_64 {

inline constexpr uint32_t kMaxVcpus = 32;
inline constexpr uint32_t kIoApicPins = 24;

// MP spec 1.4 §4.1: the floating pointer structure.
struct __attribute__((packed)) MpFloatingPointer {
    char signature[4];  // "_MP_"
    uint32_t config_table;
    uint8_t length;  // in 16-byte units
    uint8_t spec_revision;
    uint8_t checksum;
    uint8_t features[5];
};
static_assert(sizeof(MpFloatingPointer) == 16);

// MP spec 1.4 §4.2: configuration table header.
struct __attribute__((packed)) MpConfigHeader {
    char signature[4];  // "PCMP"
    uint16_t length;
    uint8_t spec_revision;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t local_apic;
    uint16_t extended_length;
    uint8_t extended_checksum;
    uint8_t reserved;
};
static_assert(sizeof(MpConfigHeader) == 44);

// MP spec 1.4 §4.3.1.
struct __attribute__((packed)) MpProcessorEntry {
    uint8_t type;  // 0
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t flags;  // bit 0 enabled, bit 1 bootstrap processor
    uint32_t signature;
    uint32_t features;
    uint32_t reserved[2];
};
static_assert(sizeof(MpProcessorEntry) == 20);

inline constexpr uint8_t kMpProcessorEnabled = 1;
inline constexpr uint8_t kMpProcessorBootstrap = 2;

// Builds the table as it must appear at guest-physical `base` (floating pointer first).
// REQUIRES: 1 <= vcpus <= kMaxVcpus (else an error).
Result<std::vector<uint8_t>> build_mp_table(uint32_t vcpus, uint64_t base);

// Writes build_mp_table(vcpus, kMpTableAddress) into guest memory (fits below 1 MiB).
Status write_mp_table(const kvm::GuestMemory& memory, uint32_t vcpus);

// Sum of bytes, mod 256 (a valid MP structure sums to 0).
uint8_t mp_checksum(const uint8_t* data, size_t size);

}  // namespace msb::arch::x86_64
