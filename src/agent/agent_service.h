// AgentService: the guest end of the agent protocol (PROTOCOL.md). One event loop serves every
// session — exec and fs — keyed by correlation id, over any pair of file descriptors (the
// virtio-console port in the guest, a socketpair in host tests). It does not assume it is PID 1.
//
//   auto loop = TRY(EventLoop::create());
//   auto service = TRY(AgentService::create(loop, {.read_fd = port, .write_fd = port}));
//   TRY(service->start());   // sends core.ready
//   loop.run();              // until core.shutdown (on_shutdown) or stop()
//
// Flow control: the port's outgoing queue is bounded. Above kHighWater bytes the service stops
// reading process output pipes and fs read streams; below kLowWater it resumes. Data is never
// dropped; a flooding process simply blocks on its full pipe. Incoming stdin beyond a per-session
// bound pauses reading from the port until the process drains it.
//
// Children: the service blocks SIGCHLD, reaps every child through a signalfd with
// waitpid(-1, WNOHANG) (PID 1's duty includes orphans) and routes each status to its session;
// statuses of pids it does not own go to on_foreign_exit (the main command of the sandbox).
//
// Thread model: everything runs on the loop's thread. The service must outlive the loop's run().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/guest_config.h"
#include "agent/user.h"
#include "base/event_loop.h"
#include "base/result.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace msb::agent {

enum class PeerClosedPolicy {
    Stop,  // EOF on read_fd ends the service (host tests, sockets)
    Wait,  // keep polling: the host side of a virtio port may connect later
};

struct ServiceOptions {
    int read_fd = -1;   // non-blocking mode is set by the service
    int write_fd = -1;  // may equal read_fd
    // Directory receiving heartbeat.json; nullopt disables the heartbeat.
    std::optional<std::string> runtime_dir;
    // heartbeat.json is checked every second and rewritten when its content changed, or when
    // this long passed since the last write (MSB_HEARTBEAT_REFRESH; the protocol's 1 s default).
    std::chrono::seconds heartbeat_refresh{1};
    // Where /etc/passwd and /etc/group are read for `user` fields.
    std::string root = "/";
    // User for requests that name none (MSB_USER); nullopt = the agent's own credentials.
    std::optional<UserSpec> default_user;
    // Environment every exec starts from (request env overrides it).
    std::vector<std::string> base_env;
    // Directory prepended to PATH of every exec.
    std::string scripts_dir = "/.msb/scripts";
    // GLIBC_TUNABLES every exec gets ahead of its own (pin_glibc_tunables); empty for none.
    std::string pinned_glibc_tunables;
    // core.shutdown: time between SIGTERM and SIGKILL.
    std::chrono::milliseconds kill_grace{3000};
    PeerClosedPolicy peer_closed = PeerClosedPolicy::Stop;
    // Reported in core.ready.
    uint64_t boot_time_ns = 0;
    uint64_t init_time_ns = 0;
};

// Counters for tests and logs.
struct ServiceStats {
    uint64_t frames_in = 0;
    uint64_t frames_out = 0;
    uint64_t corrupt_frames = 0;
    uint64_t dropped_frames = 0;  // unknown session, malformed without session, ...
    uint64_t backpressure_pauses = 0;
};

class AgentService {
public:
    static constexpr size_t kHighWater = 2 * 1024 * 1024;
    static constexpr size_t kLowWater = 512 * 1024;
    static constexpr size_t kOutputReadSize = 64 * 1024;
    static constexpr size_t kStdinBacklogLimit = 4 * 1024 * 1024;

    // `loop` must outlive the service.
    static Result<std::unique_ptr<AgentService>> create(EventLoop& loop, ServiceOptions options);
    ~AgentService();
    AgentService(const AgentService&) = delete;
    AgentService& operator=(const AgentService&) = delete;

    // Registers the fds and queues core.ready.
    Status start();

    // Called after core.shutdown once every session's process is gone (or killed). The owner
    // powers off (guest) or stops the loop (tests). Default: loop.stop().
    void set_on_shutdown(std::function<void()> fn) { m_on_shutdown = std::move(fn); }
    // Called with (pid, wait status) for reaped children that no session owns.
    void set_on_foreign_exit(std::function<void(pid_t, int)> fn) {
        m_on_foreign_exit = std::move(fn);
    }
    // Called once when the peer closes with PeerClosedPolicy::Stop. Default: loop.stop().
    void set_on_peer_closed(std::function<void()> fn) { m_on_peer_closed = std::move(fn); }

    // Writes everything queued for the peer, blocking up to `timeout` (used before power-off).
    void flush(std::chrono::milliseconds timeout);

    size_t active_sessions() const {
        return m_exec.size() + m_fs_reads.size() + m_fs_writes.size();
    }
    const ServiceStats& stats() const { return m_stats; }
    size_t queued_bytes() const { return m_out_bytes; }

private:
    struct ExecSession;
    struct FsReadSession;
    struct FsWriteSession;

    AgentService(EventLoop& loop, ServiceOptions options);

    // Port I/O.
    void on_port_readable();
    void on_port_writable();
    void update_port_interest();
    void send(uint32_t id, Result<std::vector<uint8_t>> frame);
    template <typename P>
    void send_payload(uint32_t id, const P& payload) {
        send(id, protocol::encode_message(id, payload));
    }
    void handle_frame(protocol::RawFrame&& frame);
    // Called when the queue falls to kLowWater after having reached kHighWater.
    void resume_after_backpressure();
    bool output_paused() const { return m_output_paused; }
    void update_input_pause();

    // Exec.
    void start_exec(uint32_t id, const protocol::ExecRequest& request);
    void exec_stdin(uint32_t id, std::vector<uint8_t> data);
    void exec_resize(uint32_t id, const protocol::ExecResize& resize);
    void exec_signal(uint32_t id, int signal);
    void on_output(ExecSession& session, int fd);
    // Reads `fd` of `session` once (or until empty when draining); closes it on EOF.
    void read_output(ExecSession& session, int fd, bool drain);
    void flush_stdin(ExecSession& session);
    void set_output_interest(ExecSession& session);
    void maybe_finish(uint32_t id);
    void fail_exec(uint32_t id, int code, const std::string& message);
    std::vector<std::string> exec_env(const protocol::ExecRequest& request,
                                      const std::optional<ResolvedUser>& user) const;

    // Fs.
    void start_fs(uint32_t id, const protocol::FsRequest& request);
    void fs_data(uint32_t id, std::vector<uint8_t> data);
    void pump_fs_reads();

    // Children and time.
    void on_sigchld();
    void on_timer();
    // Rewrites heartbeat.json when its content changed (session count, last activity) or
    // options.heartbeat_refresh passed since the last write; `force` writes regardless.
    void write_heartbeat(bool force = false);
    void begin_shutdown();
    void finish_shutdown_if_done();

    EventLoop& m_loop;
    ServiceOptions m_options;
    protocol::FrameDecoder m_decoder;
    UniqueFd m_signal_fd;
    UniqueFd m_timer_fd;  // 1 s tick: heartbeat, shutdown grace, peer re-poll

    std::deque<std::vector<uint8_t>> m_out;
    size_t m_out_offset = 0;  // bytes of m_out.front() already written
    size_t m_out_bytes = 0;
    bool m_port_registered = false;
    bool m_read_registered = false;
    bool m_input_paused = false;
    bool m_output_paused = false;  // set at kHighWater, cleared at kLowWater
    bool m_peer_closed = false;
    bool m_shutting_down = false;
    std::optional<Clock::time_point> m_kill_at;
    bool m_shutdown_done = false;

    std::map<uint32_t, std::unique_ptr<ExecSession>> m_exec;
    std::map<pid_t, uint32_t> m_pid_to_session;
    std::map<uint32_t, std::unique_ptr<FsReadSession>> m_fs_reads;
    std::map<uint32_t, std::unique_ptr<FsWriteSession>> m_fs_writes;

    int64_t m_last_activity_ns = 0;  // unix time of the last frame from the host
    // What heartbeat.json says now, and when it was written (monotonic ns; 0: never).
    uint32_t m_heartbeat_sessions = 0;
    int64_t m_heartbeat_activity_ns = 0;
    uint64_t m_heartbeat_written_ns = 0;
    ServiceStats m_stats;

    std::function<void()> m_on_shutdown;
    std::function<void(pid_t, int)> m_on_foreign_exit;
    std::function<void()> m_on_peer_closed;
};

// 128+signal for a signalled process, the exit code otherwise (waitpid status → protocol code).
int exit_code_from_status(int status);

// The environment of an exec: `base`, then `overrides` (later wins), then PATH with
// `scripts_dir` in front, HOME/USER from `user` when the request does not set them.
std::vector<std::string> merge_env(const std::vector<std::string>& base,
                                   const std::vector<std::string>& overrides,
                                   const std::string& scripts_dir,
                                   const std::optional<ResolvedUser>& user, bool tty);

// Puts `pinned` in front of the environment's GLIBC_TUNABLES ("pinned:theirs", or just
// `pinned`). Used for the tunables the kernel command line gave the agent: on PVM hosts they
// keep glibc off AVX, whose state the guest kernel cannot save (docs/vmm.md). glibc reads the
// list left to right, so a process that sets the same tunable itself still has the last word.
void pin_glibc_tunables(std::vector<std::string>& env, std::string_view pinned);

}  // namespace msb::agent
