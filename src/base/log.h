// Logging: thin front over spdlog so that only log.cpp pays for spdlog's headers.
//
//   log::init({.level = log::Level::Info});
//   log::info("booted in {}", format_duration_ns(ns));
//   static log::RateLimit limit;            // for anything a guest can trigger repeatedly
//   if (limit.allow()) log::warn("bad descriptor {} ({} so far)", idx, limit.count());
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace msb::log {

enum class Level { Trace, Debug, Info, Warn, Error, Off };

struct Options {
    Level level = Level::Info;
    // Where lines go: a file descriptor (default stderr). The fd must outlive logging.
    int fd = 2;
    // A name shown in every line (e.g. "sandbox", "agent").
    std::string name = "msb";
};

void init(const Options& options);
void set_level(Level level);
bool enabled(Level level);
// Parses "trace|debug|info|warn|error|off".
std::optional<Level> parse_level(std::string_view text);

void write(Level level, std::string_view message);

template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::Trace)) write(Level::Trace, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::Debug)) write(Level::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::Info)) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::Warn)) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::Error)) write(Level::Error, fmt::format(f, std::forward<Args>(args)...));
}

// Counts events and allows logging the first `burst` of them, then one per `every`.
// Thread-safe.
class RateLimit {
public:
    explicit RateLimit(uint64_t burst = 10, uint64_t every = 1000)
        : m_burst(burst), m_every(every) {}
    bool allow() {
        uint64_t n = m_count.fetch_add(1, std::memory_order_relaxed) + 1;
        return n <= m_burst || n % m_every == 0;
    }
    uint64_t count() const { return m_count.load(std::memory_order_relaxed); }

private:
    uint64_t m_burst;
    uint64_t m_every;
    std::atomic<uint64_t> m_count{0};
};

}  // namespace msb::log
