// The agent's protocol service; see agent_service.h for the contract.
#include "agent/agent_service.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "protocol/heartbeat.h"

#include "agent/agent_service_sessions.h"
#include "agent/fs_ops.h"
#include "agent/spawn.h"
#include "base/log.h"
#include "base/time.h"

namespace msb::agent {

namespace {

using protocol::MessageType;

constexpr size_t kFsReadChunk = 1024 * 1024;  // ≤ protocol::kFsChunkSize
constexpr auto kIdleTick = std::chrono::milliseconds(1000);
constexpr auto kShutdownTick = std::chrono::milliseconds(50);

log::RateLimit g_drop_limit;
log::RateLimit g_corrupt_limit;
log::RateLimit g_heartbeat_limit;

// The first `limit` bytes of a frame in hex, for the log line of a frame that does not decode.
std::string hex_prefix(const std::vector<uint8_t>& bytes, size_t limit) {
    std::string out;
    for (size_t i = 0; i < bytes.size() && i < limit; ++i) out += fmt::format("{:02x}", bytes[i]);
    if (bytes.size() > limit) out += "...";
    return out;
}

Status arm_timer(int fd, std::chrono::milliseconds period) {
    itimerspec spec{};
    spec.it_value.tv_sec = period.count() / 1000;
    spec.it_value.tv_nsec = (period.count() % 1000) * 1'000'000;
    spec.it_interval = spec.it_value;
    if (::timerfd_settime(fd, 0, &spec, nullptr) < 0) return Error::from_errno("timerfd_settime");
    return {};
}

}  // namespace

AgentService::AgentService(EventLoop& loop, ServiceOptions options)
    : m_loop(loop), m_options(std::move(options)) {}

AgentService::~AgentService() {
    for (auto& [id, s] : m_exec) {
        if (s->out_registered) m_loop.remove(s->out.get());
        if (s->err_registered) m_loop.remove(s->err.get());
        if (s->in_registered) m_loop.remove(s->in.get());
    }
    // remove() ignores fds that are not registered.
    m_loop.remove(m_options.read_fd);
    m_loop.remove(m_options.write_fd);
    if (m_signal_fd) m_loop.remove(m_signal_fd.get());
    if (m_timer_fd) m_loop.remove(m_timer_fd.get());
}

Result<std::unique_ptr<AgentService>> AgentService::create(EventLoop& loop,
                                                           ServiceOptions options) {
    if (options.read_fd < 0 || options.write_fd < 0) return Error("agent service: no port fds");
    TRY(set_nonblocking(options.read_fd));
    TRY(set_nonblocking(options.write_fd));
    std::unique_ptr<AgentService> service(new AgentService(loop, std::move(options)));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (::pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) return Error("block SIGCHLD");
    int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return Error::from_errno("signalfd SIGCHLD");
    service->m_signal_fd.reset(sfd);

    int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) return Error::from_errno("timerfd_create");
    service->m_timer_fd.reset(tfd);
    return service;
}

Status AgentService::start() {
    m_last_activity_ns = realtime_ns();
    TRY(m_loop.add(m_signal_fd.get(), EPOLLIN, [this](uint32_t) { on_sigchld(); }));
    TRY(m_loop.add(m_timer_fd.get(), EPOLLIN, [this](uint32_t) { on_timer(); }));
    TRY(arm_timer(m_timer_fd.get(), kIdleTick));

    protocol::Ready ready;
    ready.boot_time_ns = m_options.boot_time_ns;
    ready.init_time_ns = m_options.init_time_ns;
    ready.ready_time_ns = boottime_ns();
    send_payload(0, ready);
    update_port_interest();
    write_heartbeat(/*force=*/true);
    // Children may have exited before the signalfd existed.
    on_sigchld();
    return {};
}

// --- port I/O -----------------------------------------------------------------------------

void AgentService::update_port_interest() {
    bool want_read = !m_input_paused && !m_peer_closed;
    bool want_write = !m_out.empty() && !m_peer_closed;
    auto port_callback = [this](uint32_t events) {
        if (events & (EPOLLOUT | EPOLLERR)) on_port_writable();
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_port_readable();
    };
    if (m_options.read_fd == m_options.write_fd) {
        uint32_t events = (want_read ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u);
        if (events == 0) {
            if (m_port_registered) m_loop.remove(m_options.read_fd);
            m_port_registered = false;
        } else if (m_port_registered) {
            (void)m_loop.modify(m_options.read_fd, events);
        } else {
            m_port_registered = m_loop.add(m_options.read_fd, events, port_callback).ok();
        }
        return;
    }
    if (want_read != m_read_registered) {
        if (want_read)
            m_read_registered =
                m_loop.add(m_options.read_fd, EPOLLIN, [this](uint32_t) { on_port_readable(); })
                    .ok();
        else {
            m_loop.remove(m_options.read_fd);
            m_read_registered = false;
        }
    }
    if (want_write != m_port_registered) {
        if (want_write)
            m_port_registered =
                m_loop.add(m_options.write_fd, EPOLLOUT, [this](uint32_t) { on_port_writable(); })
                    .ok();
        else {
            m_loop.remove(m_options.write_fd);
            m_port_registered = false;
        }
    }
}

void AgentService::on_port_readable() {
    if (m_input_paused || m_peer_closed) return;
    uint8_t buf[64 * 1024];
    // A bounded number of reads per wake keeps sessions' output flowing under input load.
    for (int round = 0; round < 16 && !m_input_paused; ++round) {
        ssize_t n = ::read(m_options.read_fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return;
            log::warn("agent port read: {}", ::strerror(errno));
            n = 0;
        }
        if (n == 0) {
            m_peer_closed = true;
            update_port_interest();
            if (m_options.peer_closed == PeerClosedPolicy::Stop) {
                if (m_on_peer_closed)
                    m_on_peer_closed();
                else
                    m_loop.stop();
            }
            return;
        }
        Status st =
            m_decoder.feed(std::span<const uint8_t>(buf, static_cast<size_t>(n)),
                           [this](protocol::RawFrame&& frame) { handle_frame(std::move(frame)); });
        if (!st.ok()) {
            // PROTOCOL.md: the guest resynchronises by clearing its buffer.
            ++m_stats.corrupt_frames;
            if (g_corrupt_limit.allow())
                log::warn("agent port: {}; input buffer cleared ({} so far)", st.error().message(),
                          g_corrupt_limit.count());
            m_decoder.reset();
        }
    }
}

void AgentService::on_port_writable() {
    while (!m_out.empty()) {
        auto& front = m_out.front();
        ssize_t n =
            ::write(m_options.write_fd, front.data() + m_out_offset, front.size() - m_out_offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            if (m_options.peer_closed == PeerClosedPolicy::Wait) {
                // The host side is not connected: keep the queue and retry on the next tick.
                m_peer_closed = true;
                break;
            }
            log::warn("agent port write: {}; dropping {} queued bytes", ::strerror(errno),
                      m_out_bytes);
            m_out.clear();
            m_out_offset = 0;
            m_out_bytes = 0;
            break;
        }
        m_out_offset += static_cast<size_t>(n);
        m_out_bytes -= static_cast<size_t>(n);
        if (m_out_offset == front.size()) {
            m_out.pop_front();
            m_out_offset = 0;
            ++m_stats.frames_out;
        }
    }
    update_port_interest();
    if (m_output_paused && m_out_bytes <= kLowWater) {
        m_output_paused = false;
        resume_after_backpressure();
    }
}

void AgentService::flush(std::chrono::milliseconds timeout) {
    Deadline deadline = Deadline::after(timeout);
    while (!m_out.empty() && !deadline.expired()) {
        pollfd pfd{m_options.write_fd, POLLOUT, 0};
        int rc = ::poll(&pfd, 1, static_cast<int>(deadline.remaining().count()));
        if (rc < 0 && errno != EINTR) break;
        if (rc > 0) {
            if (pfd.revents & (POLLERR | POLLNVAL)) break;
            size_t before = m_out_bytes;
            on_port_writable();
            if (m_out_bytes == before && (pfd.revents & POLLHUP)) break;
        }
    }
}

void AgentService::send(uint32_t id, Result<std::vector<uint8_t>> frame) {
    if (!frame.ok()) {
        log::error("agent: cannot encode frame for session {}: {}", id, frame.error().message());
        return;
    }
    m_out_bytes += frame.value().size();
    m_out.push_back(std::move(frame).value());
    if (!m_output_paused && m_out_bytes >= kHighWater) {
        m_output_paused = true;
        ++m_stats.backpressure_pauses;
        for (auto& [sid, s] : m_exec) set_output_interest(*s);
    }
    update_port_interest();
}

void AgentService::resume_after_backpressure() {
    // Resume in id order; each step may erase sessions, so iterate over a snapshot of ids.
    std::vector<uint32_t> ids;
    for (auto& [id, s] : m_exec) ids.push_back(id);
    for (uint32_t id : ids) {
        auto it = m_exec.find(id);
        if (it == m_exec.end()) continue;
        ExecSession& s = *it->second;
        set_output_interest(s);
        if (s.exited) {
            if (s.out) read_output(s, s.out.get(), /*drain=*/true);
            if (s.err) read_output(s, s.err.get(), /*drain=*/true);
            maybe_finish(id);
        }
    }
    pump_fs_reads();
}

void AgentService::update_input_pause() {
    bool pause = false;
    for (auto& [id, s] : m_exec) pause = pause || s->stdin_bytes > kStdinBacklogLimit;
    if (pause != m_input_paused) {
        m_input_paused = pause;
        update_port_interest();
    }
}

void AgentService::handle_frame(protocol::RawFrame&& frame) {
    ++m_stats.frames_in;
    m_last_activity_ns = realtime_ns();
    uint32_t id = frame.header.id;
    auto message = protocol::decode_message(frame);
    if (!message.ok()) {
        ++m_stats.dropped_frames;
        if (g_drop_limit.allow())
            log::warn("agent: dropping frame for session {} ({} bytes, starting {}): {}", id,
                      frame.bytes.size(), hex_prefix(frame.bytes, 64), message.error().message());
        return;
    }
    auto& msg = message.value();
    auto drop = [&](const std::string& why) {
        ++m_stats.dropped_frames;
        if (g_drop_limit.allow())
            log::warn("agent: dropping {} for session {}: {}",
                      protocol::message_type_name(msg.type), id, why);
    };
    switch (msg.type) {
        case MessageType::ExecRequest: {
            auto request = protocol::decode_payload<protocol::ExecRequest>(msg.payload);
            if (!request.ok()) {
                if (m_exec.count(id)) return drop("session id in use");
                return fail_exec(id, 1,
                                 "malformed core.exec.request: " + request.error().message());
            }
            return start_exec(id, request.value());
        }
        case MessageType::ExecStdin: {
            auto stdin_data = protocol::decode_payload<protocol::ExecStdin>(msg.payload);
            if (!stdin_data.ok()) return drop(stdin_data.error().message());
            return exec_stdin(id, std::move(stdin_data.value().data));
        }
        case MessageType::ExecResize: {
            auto resize = protocol::decode_payload<protocol::ExecResize>(msg.payload);
            if (!resize.ok()) return drop(resize.error().message());
            return exec_resize(id, resize.value());
        }
        case MessageType::ExecSignal: {
            auto signal = protocol::decode_payload<protocol::ExecSignal>(msg.payload);
            if (!signal.ok()) return drop(signal.error().message());
            return exec_signal(id, signal.value().signal);
        }
        case MessageType::FsRequest: {
            auto request = protocol::decode_payload<protocol::FsRequest>(msg.payload);
            if (!request.ok()) {
                if (m_fs_reads.count(id) || m_fs_writes.count(id)) return drop("session id in use");
                return send_payload(
                    id, fs_error("malformed core.fs.request: " + request.error().message()));
            }
            return start_fs(id, request.value());
        }
        case MessageType::FsData: {
            auto data = protocol::decode_payload<protocol::FsData>(msg.payload);
            if (!data.ok()) {
                // A write stream with a garbled chunk cannot be completed correctly.
                auto it = m_fs_writes.find(id);
                if (it == m_fs_writes.end()) return drop(data.error().message());
                it->second->error = "malformed core.fs.data: " + data.error().message();
                return;
            }
            return fs_data(id, std::move(data.value().data));
        }
        case MessageType::Shutdown:
            return begin_shutdown();
        default:
            return drop("not a host-to-guest message");
    }
}

// --- fs -----------------------------------------------------------------------------------

void AgentService::start_fs(uint32_t id, const protocol::FsRequest& request) {
    if (m_fs_reads.count(id) || m_fs_writes.count(id)) {
        ++m_stats.dropped_frames;
        return;
    }
    const auto& op = request.op;
    if (op.kind == protocol::FsOpKind::Read) {
        auto fd = open_for_read(op.path);
        if (!fd.ok()) return send_payload(id, fs_error(fd.error().message()));
        m_fs_reads[id] =
            std::make_unique<FsReadSession>(FsReadSession{std::move(fd.value()), op.path});
        pump_fs_reads();
        return;
    }
    if (op.kind == protocol::FsOpKind::Write) {
        auto session = std::make_unique<FsWriteSession>();
        session->path = op.path;
        auto fd = open_for_write(op.path, op.mode);
        if (fd.ok())
            session->fd = std::move(fd.value());
        else
            session->error = fd.error().message();  // answered after the host's end of stream
        m_fs_writes[id] = std::move(session);
        return;
    }
    send_payload(id, run_fs_op(op));
}

void AgentService::fs_data(uint32_t id, std::vector<uint8_t> data) {
    auto it = m_fs_writes.find(id);
    if (it == m_fs_writes.end()) {
        ++m_stats.dropped_frames;
        return;
    }
    FsWriteSession& s = *it->second;
    if (!data.empty()) {
        if (!s.error && s.fd) {
            Status st = write_all(s.fd.get(), data.data(), data.size());
            if (!st.ok())
                s.error = Error::from_errno("write " + s.path, st.error().code()).message();
        }
        return;
    }
    if (!s.error && s.fd && ::close(s.fd.release()) < 0)
        s.error = Error::from_errno("write " + s.path).message();
    protocol::FsResponse response;
    if (s.error) {
        response = fs_error(*s.error);
    } else {
        response.ok = true;
    }
    m_fs_writes.erase(it);
    send_payload(id, response);
}

void AgentService::pump_fs_reads() {
    while (!output_paused() && !m_fs_reads.empty()) {
        auto it = m_fs_reads.begin();
        uint32_t id = it->first;
        FsReadSession& s = *it->second;
        std::vector<uint8_t> chunk(kFsReadChunk);
        ssize_t n;
        do {
            n = ::read(s.fd.get(), chunk.data(), chunk.size());
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            chunk.resize(static_cast<size_t>(n));
            send_payload(id, protocol::FsData{std::move(chunk)});
            // Round robin: move this stream behind the others by re-inserting it.
            auto node = m_fs_reads.extract(it);
            m_fs_reads.insert(std::move(node));
            continue;
        }
        protocol::FsResponse response;
        if (n < 0) {
            response = fs_error(Error::from_errno("read " + s.path).message());
        } else {
            // End of stream: an empty chunk, then the response (the terminal frame).
            send_payload(id, protocol::FsData{});
            response.ok = true;
        }
        m_fs_reads.erase(it);
        send_payload(id, response);
    }
}

// --- children, timer, shutdown --------------------------------------------------------------

void AgentService::on_sigchld() {
    signalfd_siginfo info;
    while (::read(m_signal_fd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    }
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        auto it = m_pid_to_session.find(pid);
        if (it == m_pid_to_session.end()) {
            if (m_on_foreign_exit) m_on_foreign_exit(pid, status);
            continue;
        }
        uint32_t id = it->second;
        m_pid_to_session.erase(it);
        auto sit = m_exec.find(id);
        if (sit == m_exec.end()) continue;
        ExecSession& s = *sit->second;
        s.exited = true;
        s.code = exit_code_from_status(status);
        if (s.out) read_output(s, s.out.get(), /*drain=*/true);
        if (s.err) read_output(s, s.err.get(), /*drain=*/true);
        maybe_finish(id);
    }
}

void AgentService::on_timer() {
    uint64_t expirations;
    (void)!::read(m_timer_fd.get(), &expirations, sizeof expirations);
    if (m_peer_closed && m_options.peer_closed == PeerClosedPolicy::Wait) {
        m_peer_closed = false;  // poll the port again: the host may have connected
        update_port_interest();
    }
    if (m_kill_at && Clock::now() >= *m_kill_at) {
        for (auto& [id, s] : m_exec) {
            if (!s->exited && s->pid > 0) {
                ::kill(-s->pid, SIGKILL);
                ::kill(s->pid, SIGKILL);
            }
        }
        m_kill_at.reset();
    }
    if (!m_shutting_down) write_heartbeat();
}

void AgentService::write_heartbeat(bool force) {
    if (!m_options.runtime_dir) return;
    const auto sessions = static_cast<uint32_t>(m_exec.size());
    const uint64_t now = monotonic_ns();
    // Due on the tick nearest to `refresh` after the last write: with a 1 s refresh on a 1 s
    // tick, a tick handled a little earlier than the previous one must still count, or every
    // other rewrite would slip to 2 s.
    const auto refresh_ns =
        static_cast<uint64_t>(std::chrono::nanoseconds(m_options.heartbeat_refresh).count());
    const auto half_tick_ns =
        static_cast<uint64_t>(std::chrono::nanoseconds(kIdleTick).count()) / 2;
    if (!force && m_heartbeat_written_ns != 0 && sessions == m_heartbeat_sessions &&
        m_last_activity_ns == m_heartbeat_activity_ns &&
        now - m_heartbeat_written_ns + half_tick_ns < refresh_ns)
        return;
    const std::string& dir = *m_options.runtime_dir;
    struct stat st {};
    if (::stat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) return;  // not mounted: skip
    protocol::Heartbeat heartbeat;
    heartbeat.timestamp_ns = realtime_ns();
    heartbeat.active_sessions = static_cast<uint32_t>(m_exec.size());
    heartbeat.last_activity_ns = m_last_activity_ns;
    std::string text = protocol::encode_heartbeat_json(heartbeat);
    std::string tmp = dir + "/.heartbeat.json.tmp";
    std::string final_path = dir + "/heartbeat.json";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (g_heartbeat_limit.allow()) log::warn("heartbeat: open {}: {}", tmp, ::strerror(errno));
        return;
    }
    Status st_write = write_all(fd, text.data(), text.size());
    ::close(fd);
    if (!st_write.ok() || ::rename(tmp.c_str(), final_path.c_str()) < 0) {
        if (g_heartbeat_limit.allow()) log::warn("heartbeat: cannot update {}", final_path);
        return;
    }
    m_heartbeat_sessions = sessions;
    m_heartbeat_activity_ns = m_last_activity_ns;
    m_heartbeat_written_ns = now;
}

void AgentService::begin_shutdown() {
    if (m_shutting_down) return;
    m_shutting_down = true;
    log::info("agent: shutdown requested; {} exec sessions to stop", m_exec.size());
    for (auto& [id, s] : m_exec) {
        if (!s->exited && s->pid > 0) {
            ::kill(-s->pid, SIGTERM);
            ::kill(s->pid, SIGTERM);
        }
    }
    m_fs_reads.clear();
    m_fs_writes.clear();
    m_kill_at = Clock::now() + m_options.kill_grace;
    (void)arm_timer(m_timer_fd.get(), kShutdownTick);
    finish_shutdown_if_done();
}

void AgentService::finish_shutdown_if_done() {
    if (!m_shutting_down || m_shutdown_done || !m_exec.empty()) return;
    m_shutdown_done = true;
    if (m_on_shutdown)
        m_on_shutdown();
    else
        m_loop.stop();
}

}  // namespace msb::agent
