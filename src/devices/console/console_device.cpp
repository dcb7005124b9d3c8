// virtio-console with multiport (virtio 1.2 §5.3; control flow of Linux virtio_console.c).
#include "devices/console/console_device.h"

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "virtio/features.h"

namespace msb::devices {

namespace {

static_assert(sizeof(virtio_console_control) == 8);
static_assert(sizeof(virtio_console_config) == 12);

log::RateLimit g_control_log;
log::RateLimit g_port_log;

bool would_block(const Error& e) { return e.code() == EAGAIN || e.code() == EWOULDBLOCK; }

}  // namespace

Result<std::shared_ptr<ConsoleDevice>> ConsoleDevice::create(ConsoleConfig config) {
    if (config.ports.size() > kMaxNamedPorts)
        return Error("virtio-console: " + std::to_string(config.ports.size()) +
                     " named ports requested, at most " + std::to_string(kMaxNamedPorts));
    std::vector<int> fds;
    for (const ConsolePortConfig& p : config.ports) {
        if (p.name.empty() || p.name.size() > kMaxPortName ||
            p.name.find('\0') != std::string::npos)
            return Error("virtio-console: bad port name '" + p.name + "'");
        if (!p.backend) return Error("virtio-console: port '" + p.name + "' has no backend");
        fds.push_back(p.backend->read_wake_fd());
        fds.push_back(p.backend->write_wake_fd());
    }
    std::sort(fds.begin(), fds.end());
    if (std::adjacent_find(fds.begin(), fds.end()) != fds.end())
        return Error("virtio-console: port backends must use distinct wake fds");
    return std::shared_ptr<ConsoleDevice>(new ConsoleDevice(std::move(config)));
}

ConsoleDevice::ConsoleDevice(ConsoleConfig config) : m_output(std::move(config.output)) {
    m_ports.push_back(std::make_unique<Port>());  // port 0: the console
    for (ConsolePortConfig& p : config.ports) {
        auto port = std::make_unique<Port>();
        port->name = std::move(p.name);
        port->backend = std::move(p.backend);
        m_ports.push_back(std::move(port));
    }
}

ConsoleDevice::~ConsoleDevice() = default;

uint32_t ConsoleDevice::device_type() const { return VIRTIO_ID_CONSOLE; }

uint64_t ConsoleDevice::device_features() const {
    return virtio::feature_bit(VIRTIO_CONSOLE_F_MULTIPORT);
}

std::vector<uint16_t> ConsoleDevice::queue_max_sizes() const {
    // Two queues per port plus the control pair (which sits where port 1's would).
    std::vector<uint16_t> sizes(2 * (m_ports.size() + 1), kDataQueueSize);
    sizes[kControlRx] = kControlQueueSize;
    sizes[kControlTx] = kControlQueueSize;
    return sizes;
}

void ConsoleDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    virtio_console_config config{};
    config.max_nr_ports = static_cast<uint32_t>(m_ports.size());
    virtio::copy_config(&config, sizeof config, offset, data);
}

bool ConsoleDevice::guest_open(size_t port) const {
    return port < m_ports.size() && m_ports[port]->guest_open.load();
}

Status ConsoleDevice::activate(virtio::DeviceContext context) {
    if (!virtio::has_feature(context.features, VIRTIO_CONSOLE_F_MULTIPORT))
        log::info("virtio-console: driver did not accept MULTIPORT; only port 0 works");
    m_active.emplace(
        Active{std::move(context.queues), context.memory, context.interrupt, context.loop});
    return {};
}

void ConsoleDevice::reset() {
    if (m_active) {
        for (size_t i = 0; i < m_ports.size(); ++i) {
            watch_read(i, false);
            watch_write(i, false);
        }
    }
    for (auto& port : m_ports) {
        if (port->guest_open.exchange(false) && port->backend)
            port->backend->guest_open_changed(false);
        port->broken = false;
        port->held_rx.reset();
        port->pending_tx.reset();
        port->pending_tx_done = 0;
    }
    m_pending_control.clear();
    m_active.reset();
}

void ConsoleDevice::queue_notify(size_t index) {
    if (!m_active) return;
    if (index == kControlRx) {
        flush_control();
    } else if (index == kControlTx) {
        handle_control_tx();
    } else if (index == 1) {
        process_console_output();
    } else if (index == 0) {
        // Port 0 input: we have none to give; the buffers wait.
    } else {
        size_t port = index / 2 - 1;
        if (port >= m_ports.size()) return;
        if (index % 2 == 0)
            process_rx(port);
        else
            process_tx(port);
    }
}

// ---- control queues ----

void ConsoleDevice::send_control(uint32_t id, uint16_t event, uint16_t value,
                                 std::string_view extra) {
    if (m_pending_control.size() >= kMaxPendingControl) {
        ++m_dropped_control;
        if (g_control_log.allow())
            log::warn("virtio-console: guest takes no control messages; dropped one ({} so far)",
                      g_control_log.count());
        return;
    }
    virtio_console_control message{};
    message.id = id;
    message.event = event;
    message.value = value;
    std::vector<uint8_t> bytes(sizeof message + extra.size());
    std::memcpy(bytes.data(), &message, sizeof message);
    if (!extra.empty()) std::memcpy(bytes.data() + sizeof message, extra.data(), extra.size());
    m_pending_control.push_back(std::move(bytes));
    flush_control();
}

void ConsoleDevice::flush_control() {
    virtio::Queue& q = m_active->queues[kControlRx];
    while (!m_pending_control.empty()) {
        auto chain = q.pop();
        if (!chain) break;
        virtio::DescriptorChainWriter out(m_active->memory, *chain);
        const std::vector<uint8_t>& message = m_pending_control.front();
        if (!out.write_exact(message)) {
            // Linux posts page-sized control buffers; a smaller one cannot hold the message.
            ++m_bad_control;
            if (g_control_log.allow())
                log::warn("virtio-console: control buffer of {} bytes too small for {}",
                          chain->writable_bytes(), message.size());
            q.add_used(chain->head(), 0);
            continue;
        }
        q.add_used(chain->head(), out.bytes_written());
        m_pending_control.pop_front();
    }
    q.notify_used();
}

void ConsoleDevice::handle_control_tx() {
    virtio::Queue& q = m_active->queues[kControlTx];
    while (auto chain = q.pop()) {
        virtio::DescriptorChainReader in(m_active->memory, *chain);
        auto message = in.read_obj<virtio_console_control>();
        q.add_used(chain->head(), 0);
        if (!message) {
            ++m_bad_control;
            if (g_control_log.allow())
                log::warn("virtio-console: short control message ({} bytes)",
                          chain->readable_bytes());
            continue;
        }
        handle_control_message(message->id, message->event, message->value);
        if (!m_active) return;
    }
    q.notify_used();
}

void ConsoleDevice::handle_control_message(uint32_t id, uint16_t event, uint16_t value) {
    auto bad = [&](const char* why) {
        ++m_bad_control;
        if (g_control_log.allow())
            log::warn("virtio-console: control event {} for port {}: {} ({} so far)", event, id,
                      why, g_control_log.count());
    };
    if (event == VIRTIO_CONSOLE_DEVICE_READY) {
        if (value != 1) {
            log::warn("virtio-console: guest driver failed to initialise");
            return;
        }
        for (size_t port = 0; port < m_ports.size(); ++port)
            send_control(static_cast<uint32_t>(port), VIRTIO_CONSOLE_PORT_ADD, 1);
        return;
    }
    if (id >= m_ports.size()) return bad("no such port");
    Port& port = *m_ports[id];
    switch (event) {
        case VIRTIO_CONSOLE_PORT_READY:
            if (value != 1) {
                log::warn("virtio-console: guest failed to add port {}", id);
                return;
            }
            if (id == 0) {
                send_control(id, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
            } else {
                send_control(id, VIRTIO_CONSOLE_PORT_NAME, 1, port.name);
                send_control(id, VIRTIO_CONSOLE_PORT_OPEN, 1);  // the host end is always open
            }
            return;
        case VIRTIO_CONSOLE_PORT_OPEN: {
            bool open = value != 0;
            if (port.guest_open.exchange(open) == open) return;
            if (port.backend) port.backend->guest_open_changed(open);
            if (id != 0) process_rx(id);  // starts or stops reading the backend
            return;
        }
        default:
            return bad("unexpected event");
    }
}

// ---- port 0: console output ----

void ConsoleDevice::process_console_output() {
    virtio::Queue& q = m_active->queues[tx_queue(0)];
    while (auto chain = q.pop()) {
        virtio::DescriptorChainReader in(m_active->memory, *chain);
        for (auto bytes = in.peek(); !bytes.empty(); bytes = in.peek()) {
            if (m_output) m_output->write(bytes);
            in.consume(bytes.size());
        }
        q.add_used(chain->head(), 0);
    }
    q.notify_used();
}

// ---- named ports ----

void ConsoleDevice::watch_read(size_t index, bool on) {
    Port& port = *m_ports[index];
    if (!port.backend || port.read_watched == on) return;
    if (on) {
        Status s = m_active->loop.add(port.backend->read_wake_fd(), EPOLLIN,
                                      [this, index](uint32_t) { process_rx(index); });
        if (!s.ok()) return mark_broken(index, s.error());
    } else {
        m_active->loop.remove(port.backend->read_wake_fd());
    }
    port.read_watched = on;
}

void ConsoleDevice::watch_write(size_t index, bool on) {
    Port& port = *m_ports[index];
    if (!port.backend || port.write_watched == on) return;
    if (on) {
        Status s = m_active->loop.add(port.backend->write_wake_fd(), EPOLLIN,
                                      [this, index](uint32_t) { process_tx(index); });
        if (!s.ok()) return mark_broken(index, s.error());
    } else {
        m_active->loop.remove(port.backend->write_wake_fd());
    }
    port.write_watched = on;
}

void ConsoleDevice::mark_broken(size_t index, const Error& error) {
    Port& port = *m_ports[index];
    if (!port.broken)
        log::warn("virtio-console: port '{}' backend failed: {}", port.name, error.message());
    port.broken = true;
    port.held_rx.reset();
    watch_read(index, false);
    watch_write(index, false);
}

void ConsoleDevice::process_rx(size_t index) {
    Port& port = *m_ports[index];
    if (!m_active || !port.backend) return;
    virtio::Queue& q = m_active->queues[rx_queue(index)];
    // Linux drops data that arrives for a port no program has open, so keep it in the backend.
    if (!port.guest_open || port.broken) {
        watch_read(index, false);
        return;
    }
    for (;;) {
        if (!port.held_rx) port.held_rx = q.pop();
        if (!port.held_rx) {
            // No guest buffers: stop reading the backend until the guest posts more (its
            // kick of this queue calls us again).
            watch_read(index, false);
            break;
        }
        virtio::DescriptorChainWriter out(m_active->memory, *port.held_rx);
        bool drained = false;
        while (out.remaining() > 0) {
            Result<size_t> n = port.backend->read(out.peek());
            if (!n.ok()) {
                if (!would_block(n.error())) {
                    q.add_used(port.held_rx->head(), out.bytes_written());
                    q.notify_used();
                    return mark_broken(index, n.error());
                }
                drained = true;
                break;
            }
            if (*n == 0) {
                drained = true;
                break;
            }
            out.commit(*n);
        }
        if (out.bytes_written() == 0) {
            // Keep the buffer for when data arrives.
            watch_read(index, true);
            break;
        }
        q.add_used(port.held_rx->head(), out.bytes_written());
        port.held_rx.reset();
        if (drained) {
            watch_read(index, true);
            break;
        }
    }
    q.notify_used();
}

void ConsoleDevice::process_tx(size_t index) {
    Port& port = *m_ports[index];
    if (!m_active || !port.backend) return;
    virtio::Queue& q = m_active->queues[tx_queue(index)];
    watch_write(index, false);
    for (;;) {
        if (!port.pending_tx) {
            port.pending_tx = q.pop();
            port.pending_tx_done = 0;
            if (!port.pending_tx) break;
        }
        virtio::DescriptorChainReader in(m_active->memory, *port.pending_tx);
        in.consume(port.pending_tx_done);
        while (in.remaining() > 0) {
            if (port.broken) {
                m_discarded += in.remaining();
                in.consume(in.remaining());
                break;
            }
            Result<size_t> n = port.backend->write(in.peek());
            if (n.ok() && *n > 0) {
                in.consume(*n);
                continue;
            }
            if (!n.ok() && !would_block(n.error())) {
                mark_broken(index, n.error());
                continue;
            }
            // Backend full: hold this chain, take no more from the guest, and resume when the
            // backend says it has room.
            port.pending_tx_done = in.bytes_read();
            watch_write(index, true);
            q.notify_used();
            return;
        }
        q.add_used(port.pending_tx->head(), 0);
        port.pending_tx.reset();
    }
    q.notify_used();
}

}  // namespace msb::devices
