// Idle detection from the guest's heartbeat file; see heartbeat_reader.h.
#include "runtime/heartbeat_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"
#include "protocol/messages.h"

namespace msb::runtime {

HeartbeatReader::HeartbeatReader(const std::string& runtime_dir)
    : m_path(runtime_dir + "/" + std::string(protocol::kHeartbeatFileName)) {}

std::optional<protocol::Heartbeat> HeartbeatReader::read() const {
    UniqueFd fd(::open(m_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) return std::nullopt;
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    std::string text(kMaxFileSize, '\0');
    size_t used = 0;
    while (used < text.size()) {
        ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        used += static_cast<size_t>(n);
    }
    text.resize(used);
    auto heartbeat = protocol::parse_heartbeat_json(text);
    if (!heartbeat.ok()) return std::nullopt;
    return heartbeat.value();
}

bool heartbeat_is_idle(const protocol::Heartbeat& heartbeat, uint64_t idle_secs,
                       int64_t now_unix_ns) {
    if (heartbeat.active_sessions != 0) return false;
    // The timestamp comes from the guest: an extreme value must not overflow the subtraction.
    int64_t elapsed_ns = 0;
    if (__builtin_sub_overflow(now_unix_ns, heartbeat.last_activity_ns, &elapsed_ns)) {
        return now_unix_ns > heartbeat.last_activity_ns;
    }
    // Truncation toward zero, as chrono's num_seconds().
    const int64_t elapsed_secs = elapsed_ns / 1'000'000'000;
    return elapsed_secs >= 0 && static_cast<uint64_t>(elapsed_secs) >= idle_secs;
}

bool HeartbeatReader::is_idle(uint64_t idle_secs, std::chrono::system_clock::time_point now) const {
    auto heartbeat = read();
    if (!heartbeat) return false;
    const int64_t now_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    return heartbeat_is_idle(*heartbeat, idle_secs, now_ns);
}

bool HeartbeatReader::observe_idle(uint64_t idle_secs, uint64_t host_monotonic_ns) {
    auto heartbeat = read();
    if (!heartbeat) return false;
    if (!m_seen || heartbeat->timestamp_ns != m_seen_timestamp_ns) {
        m_seen = true;
        m_seen_timestamp_ns = heartbeat->timestamp_ns;
        m_seen_at_ns = host_monotonic_ns;
    }
    if (heartbeat->active_sessions != 0) return false;
    // Guest-supplied: bound both terms before adding so nothing overflows.
    int64_t guest_idle_ns = 0;
    if (__builtin_sub_overflow(heartbeat->timestamp_ns, heartbeat->last_activity_ns,
                               &guest_idle_ns) ||
        guest_idle_ns < 0)
        guest_idle_ns = 0;
    uint64_t since_seen = host_monotonic_ns - m_seen_at_ns;
    uint64_t idle_ns = static_cast<uint64_t>(guest_idle_ns);
    if (idle_ns > UINT64_MAX - since_seen) return true;
    return (idle_ns + since_seen) / 1'000'000'000ULL >= idle_secs;
}

}  // namespace msb::runtime
