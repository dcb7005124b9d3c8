// 16550A subset. Register semantics: TI PC16550D datasheet §8.
#include "vmm/serial.h"

#include "base/unique_fd.h"

namespace msb::vmm {

namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerThri = 0x02;
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kLsrThreEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
constexpr size_t kMaxLine = 1024;
}  // namespace

void Serial::pio_read(uint16_t offset, std::span<uint8_t> data) {
    std::lock_guard lock(m_mutex);
    for (auto& byte : data) byte = 0;
    if (!data.empty()) data[0] = read_register(offset);
}

void Serial::pio_write(uint16_t offset, std::span<const uint8_t> data) {
    std::lock_guard lock(m_mutex);
    if (!data.empty()) write_register(offset, data[0]);
}

uint8_t Serial::read_register(uint16_t offset) {
    bool dlab = m_lcr & kLcrDlab;
    switch (offset) {
        case 0:
            return dlab ? m_dll : 0;
        case 1:
            return dlab ? m_dlm : m_ier;
        case 2: {
            uint8_t fifo = (m_fcr & 1) ? kIirFifoEnabled : 0;
            if ((m_ier & kIerThri) && m_thr_interrupt_pending) {
                // Reading IIR while THRE is the source clears it (datasheet table IV).
                m_thr_interrupt_pending = false;
                update_irq();
                return fifo | kIirThri;
            }
            return fifo | kIirNoInterrupt;
        }
        case 3:
            return m_lcr;
        case 4:
            return m_mcr;
        case 5:
            return kLsrThreEmpty | kLsrTransmitterEmpty;
        case 6:
            // In loopback the modem outputs feed the inputs: report CTS|DCD as the 8250 driver's
            // autoconfig expects; otherwise DCD|DSR|CTS (a connected terminal).
            return (m_mcr & kMcrLoop) ? 0x90 : 0xb0;
        case 7:
            return m_scr;
        default:
            return 0xff;
    }
}

void Serial::write_register(uint16_t offset, uint8_t v) {
    bool dlab = m_lcr & kLcrDlab;
    switch (offset) {
        case 0:
            if (dlab) {
                m_dll = v;
                return;
            }
            emit(v);
            m_thr_interrupt_pending = true;  // the byte left at once: the holding register is empty
            update_irq();
            return;
        case 1:
            if (dlab) {
                m_dlm = v;
                return;
            }
            m_ier = v & 0x0f;
            if (m_ier & kIerThri) m_thr_interrupt_pending = true;
            update_irq();
            return;
        case 2:
            m_fcr = v;
            return;
        case 3:
            m_lcr = v;
            return;
        case 4:
            m_mcr = v;
            return;
        case 7:
            m_scr = v;
            return;
        default:
            return;
    }
}

void Serial::update_irq() {
    bool on = (m_ier & kIerThri) && m_thr_interrupt_pending;
    // Lower then raise, so an already-high line makes a fresh edge for the IOAPIC.
    m_set_irq(false);
    if (on) m_set_irq(true);
}

void Serial::emit(uint8_t byte) {
    m_line.push_back(static_cast<char>(byte));
    if (byte == '\n' || m_line.size() >= kMaxLine) flush_locked();
}

void Serial::flush_locked() {
    if (m_line.empty()) return;
    for (int fd : m_sinks) {
        // A sink that fails (closed terminal, full disk) must not stop the guest.
        [[maybe_unused]] Status s = write_all(fd, m_line.data(), m_line.size());
    }
    if (m_writer) m_writer({reinterpret_cast<const uint8_t*>(m_line.data()), m_line.size()});
    m_line.clear();
}

void Serial::flush() {
    std::lock_guard lock(m_mutex);
    flush_locked();
}

}  // namespace msb::vmm
