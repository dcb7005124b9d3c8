// Relay implementation: one epoll loop over the listening socket, the clients, the guest ring's
// wake fds and a ready timer.
#include "runtime/relay.h"

#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <deque>
#include <set>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace msb::runtime {

namespace {

using protocol::FrameDecoder;
using protocol::RawFrame;

constexpr size_t kReadChunk = 64 << 10;

// Bytes waiting to be written, front first, with the offset already written of the front.
struct OutQueue {
    std::deque<std::vector<uint8_t>> chunks;
    size_t offset = 0;
    size_t bytes = 0;

    void push(std::vector<uint8_t> chunk) {
        bytes += chunk.size();
        chunks.push_back(std::move(chunk));
    }
    bool empty() const { return chunks.empty(); }
    std::span<const uint8_t> front() const {
        return std::span<const uint8_t>(chunks.front()).subspan(offset);
    }
    void advance(size_t n) {
        offset += n;
        bytes -= n;
        if (offset == chunks.front().size()) {
            chunks.pop_front();
            offset = 0;
        }
    }
};

void put_be32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

}  // namespace

struct Relay::Impl {
    struct Client {
        UniqueFd fd;
        int slot = -1;
        FrameDecoder decoder;
        OutQueue out;
        std::set<uint32_t> sessions;  // open session ids (SESSION_START seen, no TERMINAL yet)
        bool reading = true;          // EPOLLIN enabled
        Clock::time_point full_since{};
    };

    RelayOptions options;
    ByteRing& to_guest;
    ByteRing& from_guest;
    UniqueFd listener;
    UniqueFd ready_timer;
    EventLoop loop;
    Relay* owner = nullptr;

    std::vector<uint8_t> ready_frame;  // cached core.ready, empty until it arrives
    FrameDecoder guest_decoder;
    bool guest_paused = false;  // not reading from_guest because a client queue is full
    OutQueue to_guest_queue;
    std::array<std::unique_ptr<Client>, kMaxClients> clients{};
    RelayStats stats;
    log::RateLimit unroutable_limit;
    log::RateLimit corrupt_limit;

    Impl(RelayOptions o, ByteRing& tg, ByteRing& fg, UniqueFd l, UniqueFd t, EventLoop lp)
        : options(std::move(o)),
          to_guest(tg),
          from_guest(fg),
          listener(std::move(l)),
          ready_timer(std::move(t)),
          loop(std::move(lp)) {}

    // --- guest → clients -------------------------------------------------------------------

    void on_guest_readable() {
        from_guest.ack_readable();
        pump_from_guest();
    }

    void pump_from_guest() {
        std::vector<uint8_t> buf(kReadChunk);
        while (!guest_paused) {
            size_t n = from_guest.read(buf);
            if (n == 0) {
                if (from_guest.arm_readable()) return;  // sleep until the device writes
                continue;
            }
            Status st = guest_decoder.feed({buf.data(), n},
                                           [&](RawFrame&& f) { on_guest_frame(std::move(f)); });
            if (!st.ok()) {
                // The guest side resynchronises by clearing its buffer; we do the same.
                ++stats.corrupt_guest_streams;
                if (corrupt_limit.allow())
                    log::warn("relay: corrupt stream from guest: {}", st.error().message());
                guest_decoder.reset();
            }
        }
    }

    void on_guest_frame(RawFrame&& frame) {
        ++stats.frames_from_guest;
        if (ready_frame.empty()) {
            auto message = protocol::decode_message(frame);
            if (!message.ok() || message->type != protocol::MessageType::Ready) {
                if (unroutable_limit.allow())
                    log::warn("relay: guest frame before core.ready dropped");
                return;
            }
            ready_frame = std::move(frame.bytes);
            loop.remove(ready_timer.get());
            ready_timer.reset();
            log::info("relay: guest is ready; accepting clients on {}", options.socket_path);
            Status st = loop.add(listener.get(), EPOLLIN, [this](uint32_t) { accept_clients(); });
            if (!st.ok()) log::error("relay: {}", st.error().message());
            if (owner->on_ready) owner->on_ready();
            return;
        }
        uint32_t id = frame.header.id;
        int slot = static_cast<int>(id / kIdStep);
        Client* client = slot < kMaxClients ? clients[static_cast<size_t>(slot)].get() : nullptr;
        if (!client) {
            ++stats.unroutable_guest_frames;
            if (unroutable_limit.allow()) log::debug("relay: no client for guest frame id {}", id);
            return;
        }
        if (frame.header.flags & protocol::kFlagTerminal) client->sessions.erase(id);
        queue_to_client(*client, std::move(frame.bytes));
    }

    void queue_to_client(Client& client, std::vector<uint8_t> bytes) {
        bool was_empty = client.out.empty();
        client.out.push(std::move(bytes));
        if (was_empty) flush_client(client);
        if (client.out.bytes >= options.client_queue_limit && !guest_paused) {
            guest_paused = true;
            client.full_since = Clock::now();
        }
    }

    void update_guest_pause() {
        if (!guest_paused) return;
        auto now = Clock::now();
        bool still_full = false;
        for (auto& c : clients) {
            if (!c || c->out.bytes < options.client_queue_limit / 2) continue;
            if (now - c->full_since > options.slow_client_grace) {
                log::warn(
                    "relay: client in slot {} has not read for {} s; disconnecting it", c->slot,
                    std::chrono::duration_cast<std::chrono::seconds>(options.slow_client_grace)
                        .count());
                drop_client(c->slot);
                continue;
            }
            still_full = true;
        }
        if (!still_full) {
            guest_paused = false;
            pump_from_guest();
        }
    }

    // --- clients ---------------------------------------------------------------------------

    void accept_clients() {
        for (;;) {
            int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                    log::warn("relay: accept: {}", std::strerror(errno));
                return;
            }
            UniqueFd conn(fd);
            int slot = -1;
            for (int i = 0; i < kMaxClients; ++i)
                if (!clients[static_cast<size_t>(i)]) {
                    slot = i;
                    break;
                }
            if (slot < 0) {
                ++stats.clients_refused;
                log::warn("relay: refusing a client: all {} slots are in use", kMaxClients);
                continue;  // closing tells the client; it never got a handshake
            }
            auto client = std::make_unique<Client>();
            client->fd = std::move(conn);
            client->slot = slot;
            std::vector<uint8_t> handshake(4);
            put_be32(handshake.data(), static_cast<uint32_t>(slot) * kIdStep);
            handshake.insert(handshake.end(), ready_frame.begin(), ready_frame.end());
            Client& c = *client;
            clients[static_cast<size_t>(slot)] = std::move(client);
            Status st = loop.add(c.fd.get(), EPOLLIN,
                                 [this, slot](uint32_t ev) { on_client_event(slot, ev); });
            if (!st.ok()) {
                log::error("relay: {}", st.error().message());
                clients[static_cast<size_t>(slot)].reset();
                continue;
            }
            ++stats.clients_accepted;
            log::debug("relay: client accepted in slot {}", slot);
            queue_to_client(c, std::move(handshake));
        }
    }

    void on_client_event(int slot, uint32_t events) {
        Client* c = clients[static_cast<size_t>(slot)].get();
        if (!c) return;
        if (events & EPOLLOUT) {
            flush_client(*c);
            if (!clients[static_cast<size_t>(slot)]) return;
            update_guest_pause();
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_client(slot);
    }

    void read_client(int slot) {
        std::vector<uint8_t> buf(kReadChunk);
        for (;;) {
            Client* c = clients[static_cast<size_t>(slot)].get();
            if (!c || !c->reading) return;
            ssize_t n = ::read(c->fd.get(), buf.data(), buf.size());
            if (n == 0) {
                drop_client(slot);
                return;
            }
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN) drop_client(slot);
                return;
            }
            bool bad = false;
            Status st = c->decoder.feed({buf.data(), static_cast<size_t>(n)}, [&](RawFrame&& f) {
                if (!bad && !on_client_frame(*c, std::move(f))) bad = true;
            });
            if (!st.ok() || bad) {
                ++stats.clients_dropped_for_bad_frames;
                log::warn(
                    "relay: closing client in slot {}: {}", slot,
                    st.ok() ? std::string("frame id outside its range") : st.error().message());
                drop_client(slot);
                return;
            }
            pump_to_guest();
        }
    }

    // Returns false when the frame is not acceptable from this client.
    bool on_client_frame(Client& c, RawFrame&& frame) {
        uint32_t id = frame.header.id;
        uint8_t flags = frame.header.flags;
        bool shutdown = flags & protocol::kFlagShutdown;
        uint32_t lo = static_cast<uint32_t>(c.slot) * kIdStep;
        if (!shutdown && (id < lo || id - lo >= kIdStep)) return false;
        if (flags & protocol::kFlagSessionStart) c.sessions.insert(id);
        to_guest_queue.push(std::move(frame.bytes));
        ++stats.frames_to_guest;
        if (shutdown && owner->on_shutdown) owner->on_shutdown();
        return true;
    }

    void flush_client(Client& c) {
        while (!c.out.empty()) {
            auto data = c.out.front();
            ssize_t n = ::send(c.fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) break;
                drop_client(c.slot);
                return;
            }
            c.out.advance(static_cast<size_t>(n));
        }
        uint32_t events =
            (c.reading ? uint32_t{EPOLLIN} : 0u) | (c.out.empty() ? 0u : uint32_t{EPOLLOUT});
        (void)loop.modify(c.fd.get(), events);
    }

    void drop_client(int slot) {
        auto& c = clients[static_cast<size_t>(slot)];
        if (!c) return;
        for (uint32_t id : c->sessions) {
            auto frame = protocol::encode_frame(protocol::make_message(
                protocol::MessageType::ExecSignal, id,
                protocol::encode_payload(protocol::ExecSignal{.signal = 9})));
            if (frame.ok()) {
                to_guest_queue.push(std::move(frame).value());
                ++stats.sessions_killed;
            }
        }
        log::debug("relay: client in slot {} gone ({} sessions killed)", slot, c->sessions.size());
        loop.remove(c->fd.get());
        c.reset();
        pump_to_guest();
    }

    // --- clients → guest -------------------------------------------------------------------

    void pump_to_guest() {
        while (!to_guest_queue.empty()) {
            size_t n = to_guest.write(to_guest_queue.front());
            if (n == 0) {
                if (to_guest.arm_writable()) break;
                continue;
            }
            to_guest_queue.advance(n);
        }
        set_clients_reading(to_guest_queue.bytes < options.to_guest_queue_limit);
    }

    void on_guest_writable() {
        to_guest.ack_writable();
        pump_to_guest();
    }

    void set_clients_reading(bool reading) {
        for (auto& c : clients) {
            if (!c || c->reading == reading) continue;
            c->reading = reading;
            uint32_t events =
                (reading ? uint32_t{EPOLLIN} : 0u) | (c->out.empty() ? 0u : uint32_t{EPOLLOUT});
            (void)loop.modify(c->fd.get(), events);
            if (reading) {
                int slot = c->slot;
                loop.post([this, slot] { read_client(slot); });
            }
        }
    }
};

Result<std::unique_ptr<Relay>> Relay::create(RelayOptions options, ByteRing& to_guest,
                                             ByteRing& from_guest) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options.socket_path.empty() || options.socket_path.size() >= sizeof addr.sun_path)
        return Error("agent socket path '" + options.socket_path + "' must be 1.." +
                     std::to_string(sizeof addr.sun_path - 1) + " bytes long");
    std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::from_errno("create agent socket");
    UniqueFd listener(fd);
    ::unlink(options.socket_path.c_str());  // a stale socket from a crashed run
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return Error::from_errno("bind agent socket " + options.socket_path);
    if (::listen(listener.get(), 64) < 0)
        return Error::from_errno("listen on " + options.socket_path);

    int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) return Error::from_errno("timerfd_create");
    UniqueFd timer(tfd);
    itimerspec spec{};
    auto ms = options.ready_timeout.count();
    spec.it_value.tv_sec = ms / 1000;
    spec.it_value.tv_nsec = (ms % 1000) * 1'000'000 + 1;
    if (::timerfd_settime(timer.get(), 0, &spec, nullptr) < 0)
        return Error::from_errno("timerfd_settime");

    auto loop = TRY(EventLoop::create());
    auto impl = std::make_unique<Impl>(std::move(options), to_guest, from_guest,
                                       std::move(listener), std::move(timer), std::move(loop));
    std::unique_ptr<Relay> relay(new Relay(std::move(impl)));
    Impl* p = relay->m_impl.get();
    p->owner = relay.get();
    TRY(p->loop.add(from_guest.readable_fd(), EPOLLIN, [p](uint32_t) { p->on_guest_readable(); }));
    TRY(p->loop.add(to_guest.writable_fd(), EPOLLIN, [p](uint32_t) { p->on_guest_writable(); }));
    int timer_fd = p->ready_timer.get();
    TRY(p->loop.add(timer_fd, EPOLLIN, [p, timer_fd](uint32_t) {
        p->loop.remove(timer_fd);
        if (!p->ready_frame.empty()) return;
        std::string reason = "guest agent did not send core.ready within " +
                             std::to_string(p->options.ready_timeout.count() / 1000) + " s";
        log::error("relay: {}", reason);
        if (p->owner->on_ready_timeout) p->owner->on_ready_timeout(reason);
    }));
    return relay;
}

Relay::Relay(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Relay::~Relay() {
    if (m_impl) ::unlink(m_impl->options.socket_path.c_str());
}

Status Relay::run() {
    m_impl->pump_from_guest();  // anything written before the loop started
    while (!m_impl->loop.stopped()) {
        TRY(m_impl->loop.run_once(std::chrono::milliseconds(500)));
        // A client that never reads gets no EPOLLOUT; check its grace period here too.
        m_impl->update_guest_pause();
    }
    return {};
}

void Relay::stop() { m_impl->loop.stop(); }

void Relay::send_to_guest(std::vector<uint8_t> frame) {
    Impl* p = m_impl.get();
    p->loop.post([p, frame = std::move(frame)]() mutable {
        p->to_guest_queue.push(std::move(frame));
        p->pump_to_guest();
    });
}

RelayStats Relay::stats() const { return m_impl->stats; }

}  // namespace msb::runtime
