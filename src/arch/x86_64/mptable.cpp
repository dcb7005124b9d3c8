// MP table writer.
#include "arch/x86_64/mptable.h"

#include <cstring>

#include "arch/x86_64/layout.h"

namespace msb::arch::x86_64 {

namespace {

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoApic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kInterruptInt = 0;
constexpr uint8_t kInterruptNmi = 1;
constexpr uint8_t kInterruptExtInt = 3;
constexpr uint8_t kApicVersion = 0x14;
constexpr uint8_t kIoApicVersion = 0x11;

template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    out.insert(out.end(), p, p + sizeof value);
}

void append8(std::vector<uint8_t>& out, std::initializer_list<uint8_t> bytes) {
    out.insert(out.end(), bytes);
}

}  // namespace

uint8_t mp_checksum(const uint8_t* data, size_t size) {
    uint8_t sum = 0;
    for (size_t i = 0; i < size; ++i) sum = static_cast<uint8_t>(sum + data[i]);
    return sum;
}

Result<std::vector<uint8_t>> build_mp_table(uint32_t vcpus, uint64_t base) {
    if (vcpus < 1 || vcpus > kMaxVcpus)
        return Error("MP table: " + std::to_string(vcpus) + " vCPUs is outside 1–" +
                     std::to_string(kMaxVcpus));
    const auto ioapic_id = static_cast<uint8_t>(vcpus);

    std::vector<uint8_t> entries;
    uint16_t count = 0;
    for (uint32_t i = 0; i < vcpus; ++i) {
        MpProcessorEntry cpu{};
        cpu.type = kEntryProcessor;
        cpu.apic_id = static_cast<uint8_t>(i);
        cpu.apic_version = kApicVersion;
        cpu.flags = kMpProcessorEnabled | (i == 0 ? kMpProcessorBootstrap : 0);
        cpu.signature = 0x600;  // family 6
        cpu.features = 0x201;   // FPU, APIC
        append(entries, cpu);
        ++count;
    }
    append8(entries, {kEntryBus, 0, 'I', 'S', 'A', ' ', ' ', ' '});
    ++count;
    append8(entries, {kEntryIoApic, ioapic_id, kIoApicVersion, 1 /* enabled */});
    append(entries, static_cast<uint32_t>(kIoApicAddress));
    ++count;
    for (uint8_t pin = 0; pin < kIoApicPins; ++pin) {
        // type, interrupt type, flags (conforming polarity/trigger), source bus, source IRQ,
        // destination IOAPIC, destination pin.
        append8(entries, {kEntryIoInterrupt, kInterruptInt, 0, 0, 0, pin, ioapic_id, pin});
        ++count;
    }
    append8(entries, {kEntryLocalInterrupt, kInterruptExtInt, 0, 0, 0, 0, 0, 0});  // → LINT0 of BSP
    append8(entries, {kEntryLocalInterrupt, kInterruptNmi, 0, 0, 0, 0, 0xff, 1});  // → LINT1 of all
    count += 2;

    MpConfigHeader header{};
    std::memcpy(header.signature, "PCMP", 4);
    header.length = static_cast<uint16_t>(sizeof header + entries.size());
    header.spec_revision = 4;
    std::memcpy(header.oem_id, "MSB     ", 8);
    std::memcpy(header.product_id, "MICROVM     ", 12);
    header.entry_count = count;
    header.local_apic = static_cast<uint32_t>(kLocalApicAddress);

    MpFloatingPointer pointer{};
    std::memcpy(pointer.signature, "_MP_", 4);
    pointer.config_table = static_cast<uint32_t>(base + sizeof pointer);
    pointer.length = 1;
    pointer.spec_revision = 4;
    pointer.checksum = static_cast<uint8_t>(
        -mp_checksum(reinterpret_cast<const uint8_t*>(&pointer), sizeof pointer));

    std::vector<uint8_t> table;
    append(table, pointer);
    append(table, header);
    table.insert(table.end(), entries.begin(), entries.end());
    // The configuration table checksum covers the header and every entry.
    table[sizeof pointer + offsetof(MpConfigHeader, checksum)] =
        static_cast<uint8_t>(-mp_checksum(table.data() + sizeof pointer, header.length));
    return table;
}

Status write_mp_table(const kvm::GuestMemory& memory, uint32_t vcpus) {
    auto table = TRY(build_mp_table(vcpus, kMpTableAddress));
    constexpr uint64_t kVgaStart = 0xa0000;
    if (kMpTableAddress + table.size() > kVgaStart)
        return Error("MP table does not fit below 0xa0000");
    return memory.write(kMpTableAddress, table);
}

}  // namespace msb::arch::x86_64
