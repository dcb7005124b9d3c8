// Serial: enough of a 16550A UART at 0x3f8 / IRQ 4 for Linux's 8250 driver to use it as the
// console: divisor latch, IER/IIR with the transmitter-empty (THRE) interrupt, LCR/MCR/SCR,
// loopback MSR for autoconfig, and a line status that always reports an empty transmitter.
// Input is not implemented (reads of RBR return 0, LSR never reports data ready).
//
// Output goes to every sink fd, buffered per line (and flushed by flush() at VM exit).
// Thread-safety: every method may be called from any vCPU thread; one mutex serialises them.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vmm/bus.h"

namespace msb::vmm {

class Serial final : public PioDevice {
public:
    static constexpr uint16_t kCom1Base = 0x3f8;
    static constexpr uint16_t kSize = 8;
    static constexpr uint32_t kCom1Irq = 4;

    // Receives output a line at a time (or kMaxLine bytes), on a vCPU thread.
    using Writer = std::function<void(std::span<const uint8_t>)>;

    // `set_irq(true/false)` drives the interrupt line; `sinks` are fds that receive the output
    // (not owned; must stay open while the VM runs); `writer`, when set, receives it too.
    Serial(std::function<void(bool)> set_irq, std::vector<int> sinks, Writer writer = {})
        : m_set_irq(std::move(set_irq)), m_sinks(std::move(sinks)), m_writer(std::move(writer)) {}

    void pio_read(uint16_t offset, std::span<uint8_t> data) override;
    void pio_write(uint16_t offset, std::span<const uint8_t> data) override;

    // Writes out any partial line.
    void flush();

private:
    uint8_t read_register(uint16_t offset);           // REQUIRES: m_mutex held
    void write_register(uint16_t offset, uint8_t v);  // REQUIRES: m_mutex held
    void update_irq();                                // REQUIRES: m_mutex held
    void emit(uint8_t byte);                          // REQUIRES: m_mutex held
    void flush_locked();                              // REQUIRES: m_mutex held

    std::function<void(bool)> m_set_irq;
    std::vector<int> m_sinks;
    Writer m_writer;

    std::mutex m_mutex;
    uint8_t m_ier = 0, m_lcr = 0, m_mcr = 0, m_scr = 0, m_fcr = 0, m_dll = 0, m_dlm = 0;
    bool m_thr_interrupt_pending = false;
    std::string m_line;
};

}  // namespace msb::vmm
