// Clock reads and RFC 3339 formatting/parsing without locale or TZ dependence.
#include "base/time.h"

#include <time.h>

#include <cstdio>

namespace msb {

namespace {
uint64_t read_clock(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool parse_digits(std::string_view s, size_t pos, size_t count, int& out) {
    if (pos + count > s.size()) return false;
    out = 0;
    for (size_t i = 0; i < count; ++i) {
        char c = s[pos + i];
        if (c < '0' || c > '9') return false;
        out = out * 10 + (c - '0');
    }
    return true;
}
}  // namespace

uint64_t monotonic_ns() { return read_clock(CLOCK_MONOTONIC); }
uint64_t boottime_ns() { return read_clock(CLOCK_BOOTTIME); }
int64_t realtime_ns() { return static_cast<int64_t>(read_clock(CLOCK_REALTIME)); }

std::chrono::milliseconds Deadline::remaining(std::chrono::milliseconds max_wait) const {
    auto now = Clock::now();
    if (now >= m_at) return std::chrono::milliseconds(0);
    auto left = m_at - now;
    if (left > max_wait) return max_wait;
    // Round up so a waiter never wakes just before the deadline and spins.
    return std::chrono::ceil<std::chrono::milliseconds>(left);
}

std::string format_rfc3339(int64_t unix_seconds) {
    time_t t = static_cast<time_t>(unix_seconds);
    tm utc{};
    ::gmtime_r(&t, &utc);
    char buf[64];
    (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", utc.tm_year + 1900,
                        utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
    return buf;
}

std::optional<int64_t> parse_rfc3339(std::string_view s) {
    int year, month, day, hour, minute, second;
    if (!parse_digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' ||
        !parse_digits(s, 5, 2, month) || s[7] != '-' || !parse_digits(s, 8, 2, day) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !parse_digits(s, 11, 2, hour) ||
        s[13] != ':' || !parse_digits(s, 14, 2, minute) || s[16] != ':' ||
        !parse_digits(s, 17, 2, second))
        return std::nullopt;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    size_t pos = 19;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos, ++digits;
        if (digits == 0) return std::nullopt;
    }
    if (pos >= s.size()) return std::nullopt;
    int64_t offset = 0;
    if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
        int oh, om;
        if (!parse_digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !parse_digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
            return std::nullopt;
        offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

std::string sql_timestamp_now() {
    int64_t secs = realtime_ns() / 1'000'000'000;
    std::string s = format_rfc3339(secs);  // YYYY-MM-DDTHH:MM:SSZ
    s[10] = ' ';
    s.pop_back();
    return s;
}

std::string format_duration_ns(uint64_t ns) {
    char buf[32];
    if (ns >= 1'000'000'000ULL)
        (void)std::snprintf(buf, sizeof buf, "%.3fs", static_cast<double>(ns) / 1e9);
    else if (ns >= 1'000'000ULL)
        (void)std::snprintf(buf, sizeof buf, "%.1fms", static_cast<double>(ns) / 1e6);
    else
        (void)std::snprintf(buf, sizeof buf, "%.1fus", static_cast<double>(ns) / 1e3);
    return buf;
}

}  // namespace msb
