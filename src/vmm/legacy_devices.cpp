// i8042 reset line and the msb exit port.
#include "vmm/legacy_devices.h"

#include <cstring>

#include "base/log.h"

namespace msb::vmm {

void I8042::pio_read(uint16_t, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());
}

void I8042::pio_write(uint16_t offset, std::span<const uint8_t> data) {
    if (offset == kCommandPort - kDataPort && !data.empty() && data[0] == kCommandReset)
        m_on_reset();
}

void ExitPort::pio_read(uint16_t, std::span<uint8_t> data) {
    std::memset(data.data(), 0xff, data.size());
}

void ExitPort::pio_write(uint16_t offset, std::span<const uint8_t> data) {
    if (offset != 0 || data.size() != 4) {
        static log::RateLimit limit;
        if (limit.allow())
            log::warn("exit port: ignored {}-byte write at offset {}", data.size(), offset);
        return;
    }
    uint32_t status;
    std::memcpy(&status, data.data(), sizeof status);
    m_on_exit(status);
}

}  // namespace msb::vmm
