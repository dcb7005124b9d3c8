// The two tiny port devices a microVM needs besides the UART:
//
// I8042 (ports 0x60 and 0x64): just the keyboard controller's reset line. Linux with
// `reboot=k` writes command 0xfe ("pulse reset") to port 0x64; we report it as a guest reset.
// The status register reads 0 (input and output buffers empty) so the driver never waits.
//
// ExitPort (port 0x4f0, CONFIG_MSB_EXIT_PORT in our guest kernel): when PID 1 exits, the kernel
// writes its raw wait status with one 32-bit OUT. The VMM ends the VM with that status.
#pragma once

#include <cstdint>
#include <functional>

#include "vmm/bus.h"

namespace msb::vmm {

class I8042 final : public PioDevice {
public:
    static constexpr uint16_t kDataPort = 0x60;
    static constexpr uint16_t kCommandPort = 0x64;
    static constexpr uint8_t kCommandReset = 0xfe;

    explicit I8042(std::function<void()> on_reset) : m_on_reset(std::move(on_reset)) {}
    // Registered on the bus at 0x60 with size 5 (0x60..0x64).
    void pio_read(uint16_t offset, std::span<uint8_t> data) override;
    void pio_write(uint16_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void()> m_on_reset;
};

class ExitPort final : public PioDevice {
public:
    static constexpr uint16_t kPort = 0x4f0;

    explicit ExitPort(std::function<void(uint32_t status)> on_exit)
        : m_on_exit(std::move(on_exit)) {}
    void pio_read(uint16_t offset, std::span<uint8_t> data) override;
    // Only a 4-byte write at offset 0 counts; anything else is ignored (and logged).
    void pio_write(uint16_t offset, std::span<const uint8_t> data) override;

private:
    std::function<void(uint32_t)> m_on_exit;
};

}  // namespace msb::vmm
