// Buses: route vCPU port-I/O and MMIO exits to the device whose window contains the address.
// Unclaimed reads return all ones (as on a PC with nothing decoding the address); unclaimed
// writes are dropped. Both are counted and rate-limit logged at debug level.
//
// The layout is fixed before the first vCPU runs; dispatch is then lock-free and may run on
// any vCPU thread concurrently (devices do their own locking).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/result.h"
#include "virtio/mmio_device.h"

namespace msb::vmm {

// A device on the x86 I/O port bus. Called on vCPU threads; must not block.
class PioDevice {
public:
    virtual ~PioDevice() = default;
    virtual void pio_read(uint16_t offset, std::span<uint8_t> data) = 0;
    virtual void pio_write(uint16_t offset, std::span<const uint8_t> data) = 0;
};

class IoBus {
public:
    // REQUIRES: [base, base + size) overlaps no other device. `device` outlives the bus.
    Status add(uint16_t base, uint16_t size, PioDevice* device);
    void read(uint16_t port, std::span<uint8_t> data) const;
    void write(uint16_t port, std::span<const uint8_t> data) const;

private:
    struct Entry {
        uint32_t base;
        uint32_t size;
        PioDevice* device;
    };
    const Entry* find(uint16_t port) const;
    std::vector<Entry> m_entries;
};

class MmioBus {
public:
    Status add(uint64_t base, uint64_t size, std::shared_ptr<virtio::MmioDevice> device);
    void read(uint64_t address, std::span<uint8_t> data) const;
    void write(uint64_t address, std::span<const uint8_t> data) const;

private:
    struct Entry {
        uint64_t base;
        uint64_t size;
        std::shared_ptr<virtio::MmioDevice> device;
    };
    const Entry* find(uint64_t address, uint64_t size) const;
    std::vector<Entry> m_entries;
};

}  // namespace msb::vmm
