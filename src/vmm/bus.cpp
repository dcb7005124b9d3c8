// Port-I/O and MMIO buses.
#include "vmm/bus.h"

#include <cstring>

#include "base/log.h"

namespace msb::vmm {

Status IoBus::add(uint16_t base, uint16_t size, PioDevice* device) {
    uint32_t end = uint32_t{base} + size;
    for (const auto& e : m_entries)
        if (base < e.base + e.size && e.base < end)
            return Error("I/O port range overlaps another device");
    m_entries.push_back({base, size, device});
    return {};
}

const IoBus::Entry* IoBus::find(uint16_t port) const {
    for (const auto& e : m_entries)
        if (port >= e.base && port < e.base + e.size) return &e;
    return nullptr;
}

void IoBus::read(uint16_t port, std::span<uint8_t> data) const {
    if (const Entry* e = find(port))
        return e->device->pio_read(static_cast<uint16_t>(port - e->base), data);
    static log::RateLimit limit;
    if (limit.allow()) log::debug("unclaimed port read {:#x} ({} so far)", port, limit.count());
    std::memset(data.data(), 0xff, data.size());
}

void IoBus::write(uint16_t port, std::span<const uint8_t> data) const {
    if (const Entry* e = find(port))
        return e->device->pio_write(static_cast<uint16_t>(port - e->base), data);
    static log::RateLimit limit;
    if (limit.allow()) log::debug("unclaimed port write {:#x} ({} so far)", port, limit.count());
}

Status MmioBus::add(uint64_t base, uint64_t size, std::shared_ptr<virtio::MmioDevice> device) {
    for (const auto& e : m_entries)
        if (base < e.base + e.size && e.base < base + size)
            return Error("MMIO window overlaps another device");
    m_entries.push_back({base, size, std::move(device)});
    return {};
}

const MmioBus::Entry* MmioBus::find(uint64_t address, uint64_t size) const {
    for (const auto& e : m_entries)
        if (address >= e.base && address - e.base < e.size && size <= e.size - (address - e.base))
            return &e;
    return nullptr;
}

void MmioBus::read(uint64_t address, std::span<uint8_t> data) const {
    if (const Entry* e = find(address, data.size()))
        return e->device->mmio_read(address - e->base, data);
    static log::RateLimit limit;
    if (limit.allow()) log::debug("unclaimed MMIO read {:#x} ({} so far)", address, limit.count());
    std::memset(data.data(), 0xff, data.size());
}

void MmioBus::write(uint64_t address, std::span<const uint8_t> data) const {
    if (const Entry* e = find(address, data.size()))
        return e->device->mmio_write(address - e->base, data);
    static log::RateLimit limit;
    if (limit.allow()) log::debug("unclaimed MMIO write {:#x} ({} so far)", address, limit.count());
}

}  // namespace msb::vmm
