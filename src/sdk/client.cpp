#include "sdk/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/time.h"
#include "protocol/messages.h"

namespace msb::sdk {
namespace {

// The relay hands out 16 ranges of this size (runtime::Relay::kIdStep).
constexpr uint32_t kIdStep = 0xFFFFFFFFu / 16;

// Reads exactly n bytes before the deadline; polls keep_waiting every 50 ms.
Status read_exact(int fd, uint8_t* p, size_t n, const Deadline& deadline,
                  const std::function<bool()>& keep_waiting) {
    while (n > 0) {
        if (deadline.expired()) return Error("timed out waiting for the sandbox agent");
        pollfd pfd{fd, POLLIN, 0};
        int r = ::poll(&pfd, 1, 50);
        if (r < 0 && errno != EINTR) return Error::from_errno("poll agent socket");
        if (r <= 0) {
            if (keep_waiting && !keep_waiting()) return Error("sandbox process exited");
            continue;
        }
        ssize_t got = ::read(fd, p, n);
        if (got == 0) return Error("the sandbox closed the connection");
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return Error::from_errno("read agent socket");
        }
        p += got;
        n -= static_cast<size_t>(got);
    }
    return {};
}

uint32_t be32(const uint8_t* b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

}  // namespace

Result<protocol::Message> Channel::pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    auto ready = [&] { return !messages.empty() || disconnected; };
    if (timeout.count() > 0) {
        if (!cv.wait_for(lock, timeout, ready)) return Error("timed out", ETIMEDOUT);
    } else {
        cv.wait(lock, ready);
    }
    if (messages.empty()) return Error("connection to the sandbox lost", ECONNRESET);
    protocol::Message m = std::move(messages.front());
    messages.pop_front();
    return m;
}

Result<std::shared_ptr<AgentClient>> AgentClient::connect(const std::string& socket_path,
                                                          std::chrono::milliseconds timeout) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path)
        return Error("socket path too long: " + socket_path);
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        return Error::from_errno("connect to " + socket_path);
    return from_fd(std::move(fd), timeout);
}

Result<std::shared_ptr<AgentClient>> AgentClient::from_fd(
    UniqueFd fd, std::chrono::milliseconds timeout, const std::function<bool()>& keep_waiting) {
    auto deadline = Deadline::after(timeout);
    uint8_t head[4];
    TRY(read_exact(fd.get(), head, 4, deadline, keep_waiting));
    uint32_t offset = be32(head);
    uint8_t prefix[4];
    TRY(read_exact(fd.get(), prefix, 4, deadline, keep_waiting));
    uint32_t len = be32(prefix);
    TRY(protocol::check_frame_length(len));
    std::vector<uint8_t> ready(4 + len);
    std::memcpy(ready.data(), prefix, 4);
    TRY(read_exact(fd.get(), ready.data() + 4, len, deadline, keep_waiting));
    auto message = TRY(protocol::decode_frame(ready));
    if (message.type != protocol::MessageType::Ready)
        return Error("unexpected first frame from the sandbox: " +
                     std::string(protocol::message_type_name(message.type)));
    if (offset % kIdStep != 0 || offset / kIdStep >= 16)
        return Error("invalid id offset " + std::to_string(offset) + " from the sandbox");

    std::shared_ptr<AgentClient> client(new AgentClient(std::move(fd)));
    client->m_id_offset = offset;
    client->m_ready_frame = std::move(ready);
    auto pipe = TRY(Pipe::create());
    client->m_stop_read = std::move(pipe.read);
    client->m_stop_write = std::move(pipe.write);
    client->m_reader = std::thread([c = client.get()] { c->reader_loop(); });
    return client;
}

AgentClient::~AgentClient() {
    if (m_stop_write) (void)write_all(m_stop_write.get(), "x", 1);
    if (m_reader.joinable()) m_reader.join();
}

Result<uint32_t> AgentClient::allocate_id() {
    std::lock_guard lock(m_mutex);
    for (uint32_t tries = 0; tries < kIdStep; tries++) {
        uint32_t id = m_id_offset + m_next;
        m_next = (m_next + 1) % kIdStep;
        if (id == 0 || m_channels.count(id)) continue;
        return id;
    }
    return Error("no free correlation id");
}

Result<std::shared_ptr<Channel>> AgentClient::open_channel() {
    if (m_closed) return Error("connection to the sandbox lost", ECONNRESET);
    uint32_t id = TRY(allocate_id());
    auto channel = std::make_shared<Channel>();
    channel->id = id;
    std::lock_guard lock(m_mutex);
    m_channels[id] = channel;
    return channel;
}

void AgentClient::close_channel(uint32_t id) {
    std::lock_guard lock(m_mutex);
    m_channels.erase(id);
}

Status AgentClient::send(const std::vector<uint8_t>& frame) {
    if (m_closed) return Error("connection to the sandbox lost", ECONNRESET);
    std::lock_guard lock(m_send_mutex);
    size_t off = 0;
    while (off < frame.size()) {
        ssize_t n = ::send(m_fd.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                pollfd p{m_fd.get(), POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            return Error::from_errno("send to sandbox");
        }
        off += static_cast<size_t>(n);
    }
    return {};
}

ClientStats AgentClient::stats() const {
    std::lock_guard lock(m_mutex);
    return m_stats;
}

void AgentClient::route(protocol::RawFrame&& raw) {
    auto message = protocol::decode_message(raw);
    std::shared_ptr<Channel> channel;
    {
        std::lock_guard lock(m_mutex);
        auto it = m_channels.find(raw.header.id);
        if (!message.ok() || it == m_channels.end()) {
            m_stats.frames_unroutable++;
            return;
        }
        m_stats.frames_routed++;
        channel = it->second;
        if (raw.header.flags & protocol::kFlagTerminal) m_channels.erase(it);
    }
    std::lock_guard lock(channel->mutex);
    if (raw.header.flags & protocol::kFlagTerminal) channel->terminal = true;
    channel->messages.push_back(std::move(message).value());
    channel->cv.notify_all();
}

void AgentClient::reader_loop() {
    protocol::FrameDecoder decoder;
    std::vector<uint8_t> buf(64 * 1024);
    while (true) {
        pollfd fds[2] = {{m_fd.get(), POLLIN, 0}, {m_stop_read.get(), POLLIN, 0}};
        int r = ::poll(fds, 2, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 || fds[1].revents) break;
        ssize_t n = ::read(m_fd.get(), buf.data(), buf.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        auto st = decoder.feed({buf.data(), static_cast<size_t>(n)},
                               [&](protocol::RawFrame&& f) { route(std::move(f)); });
        if (!st.ok()) break;
    }
    m_closed = true;
    std::map<uint32_t, std::shared_ptr<Channel>> channels;
    {
        std::lock_guard lock(m_mutex);
        channels.swap(m_channels);
    }
    for (auto& [id, channel] : channels) {
        std::lock_guard lock(channel->mutex);
        channel->disconnected = true;
        channel->cv.notify_all();
    }
    ::shutdown(m_fd.get(), SHUT_RDWR);
}

}  // namespace msb::sdk
