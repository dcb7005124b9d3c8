// Heartbeat JSON; see heartbeat.h.
#include "protocol/heartbeat.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "base/time.h"

namespace msb::protocol {

namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

std::string format_rfc3339_ns(int64_t unix_ns) {
    const int64_t seconds = floor_div(unix_ns, kNanosPerSecond);
    const int64_t nanos = unix_ns - seconds * kNanosPerSecond;
    std::string text = format_rfc3339(seconds);  // "YYYY-MM-DDTHH:MM:SSZ"
    text.pop_back();
    if (nanos == 0) {
    } else if (nanos % 1'000'000 == 0) {
        text += fmt::format(".{:03}", nanos / 1'000'000);
    } else if (nanos % 1'000 == 0) {
        text += fmt::format(".{:06}", nanos / 1'000);
    } else {
        text += fmt::format(".{:09}", nanos);
    }
    text += 'Z';
    return text;
}

std::optional<int64_t> parse_rfc3339_ns(std::string_view text) {
    auto seconds = parse_rfc3339(text);  // validates the whole string, drops the fraction
    if (!seconds) return std::nullopt;
    int64_t nanos = 0;
    if (text.size() > 19 && text[19] == '.') {
        int64_t scale = kNanosPerSecond / 10;
        for (size_t i = 20; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
            nanos += (text[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (*seconds > INT64_MAX / kNanosPerSecond - 1 || *seconds < INT64_MIN / kNanosPerSecond + 1) {
        return std::nullopt;
    }
    return *seconds * kNanosPerSecond + nanos;
}

std::string encode_heartbeat_json(const Heartbeat& heartbeat) {
    nlohmann::ordered_json j;
    j["timestamp"] = format_rfc3339_ns(heartbeat.timestamp_ns);
    j["active_sessions"] = heartbeat.active_sessions;
    j["last_activity"] = format_rfc3339_ns(heartbeat.last_activity_ns);
    return j.dump(2);
}

Result<Heartbeat> parse_heartbeat_json(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Error("heartbeat: not a JSON object");
    Heartbeat heartbeat;
    auto timestamp = [&](const char* key, int64_t& out) -> Status {
        auto it = j.find(key);
        if (it == j.end() || !it->is_string()) {
            return Error(fmt::format("heartbeat: field '{}' must be an RFC 3339 string", key));
        }
        auto ns = parse_rfc3339_ns(it->get_ref<const std::string&>());
        if (!ns) return Error(fmt::format("heartbeat: field '{}' is not RFC 3339", key));
        out = *ns;
        return {};
    };
    TRY(timestamp("timestamp", heartbeat.timestamp_ns));
    TRY(timestamp("last_activity", heartbeat.last_activity_ns));
    auto sessions = j.find("active_sessions");
    if (sessions == j.end() || !sessions->is_number_unsigned() ||
        sessions->get<uint64_t>() > UINT32_MAX) {
        return Error("heartbeat: field 'active_sessions' must be a u32");
    }
    heartbeat.active_sessions = static_cast<uint32_t>(sessions->get<uint64_t>());
    return heartbeat;
}

}  // namespace msb::protocol
