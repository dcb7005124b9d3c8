// spdlog set-up behind msb::log.
#include "base/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <mutex>

namespace msb::log {

namespace {

// A sink that writes whole lines to a raw fd (stderr may be a pipe to the rotating log).
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit FdSink(int fd) : m_fd(fd) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t buf;
        formatter_->format(msg, buf);
        const char* p = buf.data();
        size_t left = buf.size();
        while (left > 0) {
            ssize_t n = ::write(m_fd, p, left);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                return;  // nowhere left to report a logging failure
            }
            p += n;
            left -= static_cast<size_t>(n);
        }
    }
    void flush_() override {}

private:
    int m_fd;
};

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::shared_ptr<spdlog::logger> g_logger;
std::mutex g_init_mutex;

spdlog::level::level_enum to_spdlog(Level level) {
    switch (level) {
        case Level::Trace:
            return spdlog::level::trace;
        case Level::Debug:
            return spdlog::level::debug;
        case Level::Info:
            return spdlog::level::info;
        case Level::Warn:
            return spdlog::level::warn;
        case Level::Error:
            return spdlog::level::err;
        case Level::Off:
            return spdlog::level::off;
    }
    return spdlog::level::info;
}

std::shared_ptr<spdlog::logger> logger() {
    std::lock_guard lock(g_init_mutex);
    if (!g_logger) {
        g_logger = std::make_shared<spdlog::logger>("msb", std::make_shared<FdSink>(2));
        g_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
        g_logger->set_level(spdlog::level::trace);
    }
    return g_logger;
}

}  // namespace

void init(const Options& options) {
    auto l = std::make_shared<spdlog::logger>(options.name, std::make_shared<FdSink>(options.fd));
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n: %v");
    l->set_level(spdlog::level::trace);
    {
        std::lock_guard lock(g_init_mutex);
        g_logger = std::move(l);
    }
    set_level(options.level);
}

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) {
    return level != Level::Off &&
           static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::optional<Level> parse_level(std::string_view text) {
    if (text == "trace") return Level::Trace;
    if (text == "debug") return Level::Debug;
    if (text == "info") return Level::Info;
    if (text == "warn" || text == "warning") return Level::Warn;
    if (text == "error") return Level::Error;
    if (text == "off") return Level::Off;
    return std::nullopt;
}

void write(Level level, std::string_view message) { logger()->log(to_spdlog(level), message); }

}  // namespace msb::log
