// Exec sessions of the agent service: spawning, output streaming under flow control, stdin,
// resize, signals, and the environment of guest processes. See agent_service.h.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "agent/agent_service.h"
#include "agent/agent_service_sessions.h"
#include "agent/spawn.h"
#include "base/byte_copy.h"
#include "base/log.h"

namespace msb::agent {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

log::RateLimit g_exec_limit;

std::vector<uint8_t> to_bytes(std::string_view text) {
    return std::vector<uint8_t>(text.begin(), text.end());
}

constexpr std::string_view kGlibcTunables = "GLIBC_TUNABLES";

bool env_has(const std::vector<std::string>& env, std::string_view name) {
    return find_env(env, name).has_value();
}

void set_env(std::vector<std::string>& env, std::string_view name, const std::string& value) {
    std::string prefix = std::string(name) + "=";
    for (auto& entry : env) {
        if (entry.compare(0, prefix.size(), prefix) == 0) {
            entry = prefix + value;
            return;
        }
    }
    env.push_back(prefix + value);
}

}  // namespace

int exit_code_from_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

std::vector<std::string> merge_env(const std::vector<std::string>& base,
                                   const std::vector<std::string>& overrides,
                                   const std::string& scripts_dir,
                                   const std::optional<ResolvedUser>& user, bool tty) {
    std::vector<std::string> env;
    auto put = [&env](const std::string& entry) {
        size_t eq = entry.find('=');
        if (eq == std::string::npos || eq == 0) return;  // not K=V: ignored
        set_env(env, std::string_view(entry).substr(0, eq), entry.substr(eq + 1));
    };
    for (const auto& e : base) put(e);
    for (const auto& e : overrides) put(e);

    std::string path = find_env(env, "PATH").value_or(kDefaultPath);
    if (!scripts_dir.empty() && path != scripts_dir && path.rfind(scripts_dir + ":", 0) != 0)
        path = path.empty() ? scripts_dir : scripts_dir + ":" + path;
    set_env(env, "PATH", path);
    if (!env_has(env, "HOME")) set_env(env, "HOME", user ? user->home : "/root");
    if (user && !user->name.empty() && !env_has(env, "USER")) set_env(env, "USER", user->name);
    if (tty && !env_has(env, "TERM")) set_env(env, "TERM", "xterm-256color");
    return env;
}

void pin_glibc_tunables(std::vector<std::string>& env, std::string_view pinned) {
    if (pinned.empty()) return;
    const std::string value(pinned);
    std::string theirs = find_env(env, kGlibcTunables).value_or("");
    if (theirs == value || theirs.rfind(value + ":", 0) == 0) return;  // already in front
    set_env(env, kGlibcTunables, theirs.empty() ? value : value + ":" + theirs);
}

// --- exec ---------------------------------------------------------------------------------

std::vector<std::string> AgentService::exec_env(const protocol::ExecRequest& request,
                                                const std::optional<ResolvedUser>& user) const {
    auto env = merge_env(m_options.base_env, request.env, m_options.scripts_dir, user, request.tty);
    pin_glibc_tunables(env, m_options.pinned_glibc_tunables);
    return env;
}

void AgentService::fail_exec(uint32_t id, int code, const std::string& message) {
    protocol::ExecStderr err;
    err.data = to_bytes(message + "\n");
    send_payload(id, err);
    send_payload(id, protocol::ExecExited{.code = code});
}

void AgentService::start_exec(uint32_t id, const protocol::ExecRequest& request) {
    if (m_exec.count(id)) {
        ++m_stats.dropped_frames;
        if (g_exec_limit.allow()) log::warn("agent: exec request reuses live session id {}", id);
        return;
    }
    if (m_shutting_down) return fail_exec(id, 1, "msb: the sandbox is shutting down");

    SpawnOptions options;
    options.program = request.cmd;
    options.argv.push_back(request.cmd);
    options.argv.insert(options.argv.end(), request.args.begin(), request.args.end());
    options.cwd = request.cwd;

    std::optional<UserSpec> user_spec = m_options.default_user;
    if (request.user && !request.user->empty()) {
        auto parsed = parse_user_spec(*request.user);
        if (!parsed.ok()) return fail_exec(id, 126, "msb: user: " + parsed.error().message());
        user_spec = parsed.value();
    }
    if (user_spec) {
        auto resolved = resolve_user_in_root(*user_spec, m_options.root);
        if (!resolved.ok()) return fail_exec(id, 126, "msb: " + resolved.error().message());
        options.user = resolved.value();
    }
    for (const auto& r : request.rlimits) {
        auto spec = parse_rlimit(r.resource, r.soft, r.hard);
        if (!spec.ok()) return fail_exec(id, 1, "msb: rlimits: " + spec.error().message());
        options.rlimits.push_back(spec.value());
    }
    options.env = exec_env(request, options.user);
    options.session = SessionMode::NewSession;

    auto session = std::make_unique<ExecSession>();
    session->id = id;
    session->tty = request.tty;
    Result<SpawnResult> spawned = Error("unreachable");
    if (request.tty) {
        auto pty = Pty::open(request.rows ? request.rows : 24, request.cols ? request.cols : 80);
        if (!pty.ok()) return fail_exec(id, 126, "msb: " + pty.error().message());
        options.stdin_fd = options.stdout_fd = options.stderr_fd = pty->slave.get();
        options.controlling_tty = pty->slave.get();
        spawned = spawn(options);
        session->out = std::move(pty->master);
    } else {
        auto in = Pipe::create();
        auto out = Pipe::create();
        auto err = Pipe::create();
        if (!in.ok() || !out.ok() || !err.ok())
            return fail_exec(id, 126, "msb: cannot create pipes");
        options.stdin_fd = in->read.get();
        options.stdout_fd = out->write.get();
        options.stderr_fd = err->write.get();
        spawned = spawn(options);
        session->in = std::move(in->write);
        session->out = std::move(out->read);
        session->err = std::move(err->read);
        (void)set_nonblocking(session->in.get());
        (void)set_nonblocking(session->out.get());
        (void)set_nonblocking(session->err.get());
    }
    if (!spawned.ok()) return fail_exec(id, 126, "msb: " + spawned.error().message());
    if (spawned->failure)
        return fail_exec(id, spawned->failure->exit_code, spawned->failure->message);

    session->pid = spawned->pid;
    m_pid_to_session[session->pid] = id;
    send_payload(id, protocol::ExecStarted{.pid = static_cast<uint32_t>(session->pid)});
    ExecSession& s = *session;
    m_exec[id] = std::move(session);
    set_output_interest(s);
}

void AgentService::set_output_interest(ExecSession& s) {
    uint32_t id = s.id;
    bool want_read = !output_paused();
    bool pending_stdin = !s.stdin_queue.empty() || (s.stdin_close_requested && !s.stdin_closed);
    if (s.out) {
        bool want_write = s.tty && pending_stdin;
        uint32_t events = (want_read ? EPOLLIN : 0u) | (want_write ? EPOLLOUT : 0u);
        if (events == 0) {
            // Not even registered for HUP: a paused, hung-up pipe must not spin the loop.
            if (s.out_registered) m_loop.remove(s.out.get());
            s.out_registered = false;
        } else if (s.out_registered) {
            (void)m_loop.modify(s.out.get(), events);
        } else {
            int fd = s.out.get();
            s.out_registered = m_loop
                                   .add(fd, events,
                                        [this, id, fd](uint32_t ev) {
                                            auto it = m_exec.find(id);
                                            if (it == m_exec.end()) return;
                                            if (ev & EPOLLOUT) flush_stdin(*it->second);
                                            it = m_exec.find(id);
                                            if (it == m_exec.end()) return;
                                            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
                                                on_output(*it->second, fd);
                                        })
                                   .ok();
        }
    }
    if (s.err) {
        if (want_read && !s.err_registered) {
            int fd = s.err.get();
            s.err_registered = m_loop
                                   .add(fd, EPOLLIN,
                                        [this, id, fd](uint32_t) {
                                            auto it = m_exec.find(id);
                                            if (it != m_exec.end()) on_output(*it->second, fd);
                                        })
                                   .ok();
        } else if (!want_read && s.err_registered) {
            m_loop.remove(s.err.get());
            s.err_registered = false;
        }
    }
    if (!s.tty && s.in) {
        if (pending_stdin && !s.in_registered) {
            s.in_registered = m_loop
                                  .add(s.in.get(), EPOLLOUT,
                                       [this, id](uint32_t) {
                                           auto it = m_exec.find(id);
                                           if (it != m_exec.end()) flush_stdin(*it->second);
                                       })
                                  .ok();
        } else if (!pending_stdin && s.in_registered) {
            m_loop.remove(s.in.get());
            s.in_registered = false;
        }
    }
}

void AgentService::on_output(ExecSession& s, int fd) {
    uint32_t id = s.id;
    read_output(s, fd, /*drain=*/s.exited);
    maybe_finish(id);
}

void AgentService::read_output(ExecSession& s, int fd, bool drain) {
    bool is_out = s.out && fd == s.out.get();
    std::vector<uint8_t> buf(kOutputReadSize);
    for (;;) {
        if (output_paused()) return;
        ssize_t n = ::read(fd, buf.data(), buf.size());
        bool closed = false;
        if (n > 0) {
            std::vector<uint8_t> data = copy_to_vector({buf.data(), static_cast<size_t>(n)});
            if (is_out)
                send_payload(s.id, protocol::ExecStdout{std::move(data)});
            else
                send_payload(s.id, protocol::ExecStderr{std::move(data)});
            if (!drain) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            // Once the process has exited, an empty pipe is its end of output even if a
            // background child still holds the write end.
            if (!s.exited) return;
            closed = true;
        } else {
            closed = true;  // EOF, or EIO from a pty whose slave side is gone
        }
        if (closed) {
            if (is_out) {
                if (s.out_registered) m_loop.remove(s.out.get());
                s.out_registered = false;
                s.out.reset();
            } else {
                if (s.err_registered) m_loop.remove(s.err.get());
                s.err_registered = false;
                s.err.reset();
            }
            return;
        }
    }
}

void AgentService::maybe_finish(uint32_t id) {
    auto it = m_exec.find(id);
    if (it == m_exec.end()) return;
    ExecSession& s = *it->second;
    if (!s.exited || s.out || s.err) return;
    if (s.in_registered) m_loop.remove(s.in.get());
    send_payload(id, protocol::ExecExited{.code = s.code});
    m_exec.erase(it);
    update_input_pause();
    finish_shutdown_if_done();
}

void AgentService::exec_stdin(uint32_t id, std::vector<uint8_t> data) {
    auto it = m_exec.find(id);
    if (it == m_exec.end()) {
        ++m_stats.dropped_frames;
        return;
    }
    ExecSession& s = *it->second;
    if (s.stdin_closed) return;
    if (data.empty()) {
        s.stdin_close_requested = true;
    } else if (!s.stdin_close_requested) {
        s.stdin_bytes += data.size();
        s.stdin_queue.push_back(std::move(data));
    }
    flush_stdin(s);
}

void AgentService::flush_stdin(ExecSession& s) {
    int fd = s.stdin_fd();
    while (fd >= 0 && !s.stdin_queue.empty()) {
        auto& front = s.stdin_queue.front();
        ssize_t n = ::write(fd, front.data() + s.stdin_offset, front.size() - s.stdin_offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            // EPIPE: the process closed its stdin; what it did not read is discarded.
            s.stdin_queue.clear();
            s.stdin_bytes = 0;
            s.stdin_offset = 0;
            s.stdin_close_requested = true;
            break;
        }
        s.stdin_offset += static_cast<size_t>(n);
        s.stdin_bytes -= static_cast<size_t>(n);
        if (s.stdin_offset == front.size()) {
            s.stdin_queue.pop_front();
            s.stdin_offset = 0;
        }
    }
    if (s.stdin_queue.empty() && s.stdin_close_requested && !s.stdin_closed) {
        if (s.tty) {
            // A terminal has no half-close: send the EOF character (VEOF, ^D) instead.
            char eof = 0x04;
            if (fd >= 0 && ::write(fd, &eof, 1) < 0 && errno == EAGAIN) {
                set_output_interest(s);
                update_input_pause();
                return;
            }
        } else {
            if (s.in_registered) m_loop.remove(s.in.get());
            s.in_registered = false;
            s.in.reset();
        }
        s.stdin_closed = true;
    }
    set_output_interest(s);
    update_input_pause();
}

void AgentService::exec_resize(uint32_t id, const protocol::ExecResize& resize) {
    auto it = m_exec.find(id);
    if (it == m_exec.end() || !it->second->tty || !it->second->out) return;
    (void)set_window_size(it->second->out.get(), resize.rows, resize.cols);
}

void AgentService::exec_signal(uint32_t id, int signal) {
    auto it = m_exec.find(id);
    if (it == m_exec.end() || it->second->exited || it->second->pid <= 0) return;
    if (signal < 0 || signal >= NSIG) {
        if (g_exec_limit.allow()) log::warn("agent: session {}: invalid signal {}", id, signal);
        return;
    }
    pid_t pid = it->second->pid;
    // The process leads its own group (setsid): signal the group, then the process itself in
    // case it moved to another group.
    ::kill(-pid, signal);
    ::kill(pid, signal);
}

}  // namespace msb::agent
