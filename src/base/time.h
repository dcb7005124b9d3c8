// Clocks and time formatting used across msb.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace msb {

using Clock = std::chrono::steady_clock;

// CLOCK_MONOTONIC / CLOCK_BOOTTIME / CLOCK_REALTIME in nanoseconds.
uint64_t monotonic_ns();
uint64_t boottime_ns();
int64_t realtime_ns();

// A point in time after which a blocking operation gives up.
class Deadline {
public:
    static Deadline after(std::chrono::milliseconds d) { return Deadline(Clock::now() + d); }
    static Deadline never() { return Deadline(Clock::time_point::max()); }

    bool expired() const { return Clock::now() >= m_at; }
    // Time left, clamped to [0, max_wait]; useful as a poll/epoll timeout.
    std::chrono::milliseconds remaining(
        std::chrono::milliseconds max_wait = std::chrono::hours(24)) const;

private:
    explicit Deadline(Clock::time_point at) : m_at(at) {}
    Clock::time_point m_at;
};

// RFC 3339 UTC with second precision, e.g. "2026-11-29T04:31:36Z".
std::string format_rfc3339(int64_t unix_seconds);
// Parses RFC 3339 ("YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)"), returning unix seconds (the
// fraction is dropped). nullopt for anything malformed.
std::optional<int64_t> parse_rfc3339(std::string_view text);

// Current UTC time as "YYYY-MM-DD HH:MM:SS" (the store's timestamp format).
std::string sql_timestamp_now();

// "1.234s", "56ms", "789us" for log lines.
std::string format_duration_ns(uint64_t ns);

}  // namespace msb
