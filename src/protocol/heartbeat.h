// The heartbeat file (PROTOCOL.md "Guest-side files"): the agent rewrites
// /.msb/heartbeat.json every second; the sandbox process reads it from the runtime directory to
// detect idleness. JSON as microsandbox 0.4.3 writes it (serde_json::to_string_pretty of
// `Heartbeat { timestamp, active_sessions, last_activity }` with chrono UTC timestamps):
//
//   {
//     "timestamp": "2026-11-29T04:31:36.123456789Z",
//     "active_sessions": 0,
//     "last_activity": "2026-11-29T04:31:30.5Z"
//   }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace msb::protocol {

struct Heartbeat {
    int64_t timestamp_ns = 0;      // unix time of this heartbeat, nanoseconds
    uint32_t active_sessions = 0;  // exec sessions currently running in the guest
    int64_t last_activity_ns = 0;  // unix time of the last frame received from the host
};

// RFC 3339 UTC as chrono prints it: no fraction when whole, else 3, 6 or 9 digits, "Z".
std::string format_rfc3339_ns(int64_t unix_ns);
// RFC 3339 with any offset and up to nanosecond precision (extra digits are truncated).
std::optional<int64_t> parse_rfc3339_ns(std::string_view text);

// Pretty-printed JSON (two-space indent, fields in the order above).
std::string encode_heartbeat_json(const Heartbeat& heartbeat);
// Error for anything that is not an object with the three fields of the right types
// (unknown fields are ignored). Never throws.
Result<Heartbeat> parse_heartbeat_json(std::string_view text);

}  // namespace msb::protocol
