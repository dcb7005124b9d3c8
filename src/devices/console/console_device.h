// ConsoleDevice: virtio-console (device ID 3) with VIRTIO_CONSOLE_F_MULTIPORT (virtio 1.2 §5.3).
//
// Port 0 is the guest's console (hvc0): its output goes to a ConsoleOutputSink (guest.log).
// Ports 1..n are named ports, each backed by a ConsolePortBackend; the guest sees each name in
// /sys/class/virtio-ports/vport*/name (the agent opens the port named "agent").
//
//   auto sink = TRY(devices::FileOutputSink::open(log_dir + "/guest.log"));
//   auto console = TRY(devices::ConsoleDevice::create({
//       .output = sink,
//       .ports = {{.name = "agent", .backend = agent_backend}},
//   }));
//   auto transport = TRY(virtio::MmioTransport::create(console));
//   builder.mmio_device(transport);
//
// Queues (Linux drivers/char/virtio_console.c layout): port 0 receiveq 0 / transmitq 1,
// control receiveq 2 / transmitq 3, port k >= 1 receiveq 2+2k / transmitq 3+2k. Every port
// costs the guest two virtqueues, and setting them up is slow under emulated KVM, so the
// number of named ports is capped at kMaxNamedPorts.
//
// Control protocol, as the Linux driver runs it: the guest fills the control receiveq and sends
// DEVICE_READY; we answer PORT_ADD for every port; the guest sends PORT_READY per port; we answer
// CONSOLE_PORT (port 0), PORT_NAME (named ports) and PORT_OPEN=1 (the host side of every named
// port is always open). The guest sends PORT_OPEN when a program opens/closes the port; host
// data is delivered only while the guest has it open (Linux discards data for closed ports).
// Guest control messages are validated; bad ones are counted and rate-limit logged. Outbound
// control messages wait (bounded: kMaxPendingControl) until the guest posts control buffers.
//
// Threads: everything after activate() runs on the device event-loop thread; the counters
// below are safe to read from any thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/console/port_backend.h"
#include "virtio/virtio_device.h"

namespace msb::devices {

struct ConsolePortConfig {
    std::string name;  // 1..kMaxPortName bytes, no NUL
    std::shared_ptr<ConsolePortBackend> backend;
};

struct ConsoleConfig {
    std::shared_ptr<ConsoleOutputSink> output;  // port 0 output; null discards it
    std::vector<ConsolePortConfig> ports;       // ports 1..n in order
};

class ConsoleDevice final : public virtio::VirtioDevice {
public:
    static constexpr size_t kMaxNamedPorts = 4;
    static constexpr size_t kMaxPortName = 128;
    static constexpr uint16_t kDataQueueSize = 128;
    static constexpr uint16_t kControlQueueSize = 32;
    static constexpr size_t kMaxPendingControl = 64;

    static Result<std::shared_ptr<ConsoleDevice>> create(ConsoleConfig config);
    ~ConsoleDevice() override;

    // VirtioDevice.
    uint32_t device_type() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override;
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Status activate(virtio::DeviceContext context) override;
    void queue_notify(size_t index) override;
    void reset() override;

    // Port ids: 0 is the console, 1..n the named ports in config order.
    size_t port_count() const { return m_ports.size(); }
    bool guest_open(size_t port) const;
    // Guest control messages rejected (bad id, unknown event, short buffer).
    uint64_t bad_control_messages() const { return m_bad_control.load(); }
    // Outbound control messages dropped because the guest stopped taking them.
    uint64_t dropped_control_messages() const { return m_dropped_control.load(); }
    // Guest bytes discarded because a backend failed (not for backpressure: that never drops).
    uint64_t discarded_bytes() const { return m_discarded.load(); }

private:
    struct Port {
        std::string name;
        std::shared_ptr<ConsolePortBackend> backend;  // null for port 0
        std::atomic<bool> guest_open{false};
        bool broken = false;
        // Host→guest: a receive buffer taken from the guest while the backend had no data.
        std::optional<virtio::DescriptorChain> held_rx;
        bool read_watched = false;
        // Guest→host: the transmit chain being written when the backend filled up.
        std::optional<virtio::DescriptorChain> pending_tx;
        size_t pending_tx_done = 0;
        bool write_watched = false;
    };
    struct Active {
        std::vector<virtio::Queue> queues;
        const kvm::GuestMemory& memory;
        virtio::Interrupt& interrupt;
        EventLoop& loop;
    };

    explicit ConsoleDevice(ConsoleConfig config);

    static size_t rx_queue(size_t port) { return port == 0 ? 0 : 2 + 2 * port; }
    static size_t tx_queue(size_t port) { return port == 0 ? 1 : 3 + 2 * port; }
    static constexpr size_t kControlRx = 2;
    static constexpr size_t kControlTx = 3;

    void send_control(uint32_t id, uint16_t event, uint16_t value, std::string_view extra = {});
    void flush_control();
    void handle_control_tx();
    void handle_control_message(uint32_t id, uint16_t event, uint16_t value);
    void process_console_output();
    void process_rx(size_t port);
    void process_tx(size_t port);
    void watch_read(size_t port, bool on);
    void watch_write(size_t port, bool on);
    void mark_broken(size_t port, const Error& error);

    std::shared_ptr<ConsoleOutputSink> m_output;
    std::vector<std::unique_ptr<Port>> m_ports;
    std::optional<Active> m_active;
    std::deque<std::vector<uint8_t>> m_pending_control;
    std::atomic<uint64_t> m_bad_control{0};
    std::atomic<uint64_t> m_dropped_control{0};
    std::atomic<uint64_t> m_discarded{0};
};

}  // namespace msb::devices
