// HeartbeatReader: the host side of idle detection. The guest agent rewrites
// /.msb/heartbeat.json every second (protocol/heartbeat.h); the sandbox process sees it as
// <runtime_dir>/heartbeat.json and asks is_idle() once a second when an idle timeout is set.
//
//   HeartbeatReader reader(runtime_dir);
//   if (reader.is_idle(idle_timeout_secs)) exit_handle.trigger(ExitTrigger::IdleTimeout);
//
// Semantics (microsandbox 0.4.3 crates/runtime/lib/heartbeat.rs):
//   - a missing, unreadable or unparsable file is "not idle" (the agent may still be booting);
//   - elapsed = now − last_activity in whole seconds, truncated toward zero (chrono's
//     num_seconds); idle when elapsed ≥ 0 and elapsed ≥ idle_secs.
// Deliberate difference: we are idle only when active_sessions == 0 as well. 0.4.3 ignores
// active_sessions, so a long-running command that receives no input from the host (its
// last_activity is the last host frame) would be killed as idle mid-run.
//
// The file lives in a directory the guest can write, so it is untrusted: it is opened with
// O_NOFOLLOW | O_NONBLOCK, must be a regular file, and at most 64 KiB of it is read.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "protocol/heartbeat.h"

namespace msb::runtime {

class HeartbeatReader {
public:
    static constexpr size_t kMaxFileSize = 64 * 1024;

    explicit HeartbeatReader(const std::string& runtime_dir);

    // The parsed heartbeat, or nullopt when the file is missing or malformed.
    std::optional<protocol::Heartbeat> read() const;

    bool is_idle(uint64_t idle_secs, std::chrono::system_clock::time_point now) const;
    bool is_idle(uint64_t idle_secs) const {
        return is_idle(idle_secs, std::chrono::system_clock::now());
    }

    // The watcher's check, immune to a guest clock that is off from the host's (common on the
    // PVM host, where a slow boot leaves the guest's wall clock seconds behind): how long the
    // guest has been idle is timestamp − last_activity, both on the guest's clock, plus the
    // host time since this heartbeat was first seen (host monotonic ns). Idle when no session
    // runs and that reaches idle_secs. Polled once a second, it fires at most about a second
    // late, never early.
    bool observe_idle(uint64_t idle_secs, uint64_t host_monotonic_ns);

    const std::string& path() const { return m_path; }

private:
    std::string m_path;
    bool m_seen = false;
    int64_t m_seen_timestamp_ns = 0;  // the heartbeat observe_idle() saw last …
    uint64_t m_seen_at_ns = 0;        // … and when it first saw it (host monotonic)
};

// The decision alone, for a heartbeat already read (exposed for tests and callers that
// read the file themselves).
bool heartbeat_is_idle(const protocol::Heartbeat& heartbeat, uint64_t idle_secs,
                       int64_t now_unix_ns);

}  // namespace msb::runtime
