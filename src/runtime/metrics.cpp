// /proc parsing and the sampler loop.
#include "runtime/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <thread>

#include "base/log.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "store/database.h"
#include "store/records.h"

namespace msb::runtime {

namespace {

std::string read_small_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::string out(8192, '\0');
    ssize_t n = ::read(fd.get(), out.data(), out.size());
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p == text.data()) return std::nullopt;
    return v;
}

// The value on the line "key: N" of /proc/<pid>/io.
std::optional<uint64_t> io_field(std::string_view io, std::string_view key) {
    size_t pos = 0;
    while (pos < io.size()) {
        size_t end = io.find('\n', pos);
        std::string_view line = io.substr(pos, end == std::string_view::npos ? io.npos : end - pos);
        if (line.size() > key.size() + 1 && line.substr(0, key.size()) == key &&
            line[key.size()] == ':') {
            std::string_view v = line.substr(key.size() + 1);
            while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
            return parse_u64(v);
        }
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    return std::nullopt;
}

}  // namespace

Result<ProcessCounters> parse_process_counters(std::string_view stat, std::string_view statm,
                                               std::string_view io, uint64_t page_size) {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    size_t close = stat.rfind(')');
    if (close == std::string_view::npos) return Error("malformed /proc stat");
    std::string_view rest = stat.substr(close + 1);
    // After ')': field 3 (state) is index 0; utime is field 14 → index 11, stime index 12.
    uint64_t utime = 0, stime = 0;
    int index = -1;
    size_t pos = 0;
    while (pos < rest.size() && index < 12) {
        while (pos < rest.size() && rest[pos] == ' ') ++pos;
        size_t end = rest.find(' ', pos);
        std::string_view field =
            rest.substr(pos, end == std::string_view::npos ? rest.npos : end - pos);
        ++index;
        if (index == 11 || index == 12) {
            auto v = parse_u64(field);
            if (!v) return Error("malformed /proc stat time field");
            (index == 11 ? utime : stime) = *v;
        }
        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    if (index < 12) return Error("short /proc stat");
    // statm: size resident shared ...
    size_t space = statm.find(' ');
    if (space == std::string_view::npos) return Error("malformed /proc statm");
    std::string_view after = statm.substr(space + 1);
    auto resident = parse_u64(after.substr(0, after.find(' ')));
    if (!resident) return Error("malformed /proc statm");
    ProcessCounters c;
    c.cpu_ticks = utime + stime;
    c.rss_bytes = *resident * page_size;
    c.read_bytes = io_field(io, "read_bytes").value_or(0);
    c.write_bytes = io_field(io, "write_bytes").value_or(0);
    return c;
}

Result<ProcessCounters> read_process_counters(const std::string& proc_dir) {
    return parse_process_counters(
        read_small_file(proc_dir + "/stat"), read_small_file(proc_dir + "/statm"),
        read_small_file(proc_dir + "/io"), static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
}

double cpu_percent(uint64_t delta_ticks, double delta_seconds, uint64_t ticks_per_second) {
    if (delta_seconds <= 0 || ticks_per_second == 0) return 0;
    return 100.0 * static_cast<double>(delta_ticks) /
           (static_cast<double>(ticks_per_second) * delta_seconds);
}

void start_metrics_sampler(const std::string& db_path, int64_t sandbox_id) {
    std::thread([db_path, sandbox_id] {
        auto db = store::Database::open(db_path);
        if (!db.ok()) {
            log::error("metrics: {}", db.error().message());
            return;
        }
        auto ticks = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
        auto previous = read_process_counters();
        uint64_t previous_ns = monotonic_ns();
        log::RateLimit failures;
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            auto now = read_process_counters();
            uint64_t now_ns = monotonic_ns();
            if (!now.ok() || !previous.ok()) {
                previous = std::move(now);
                continue;
            }
            store::MetricSample sample;
            sample.cpu_percent =
                cpu_percent(now->cpu_ticks - previous->cpu_ticks,
                            static_cast<double>(now_ns - previous_ns) / 1e9, ticks);
            sample.memory_bytes = static_cast<int64_t>(now->rss_bytes);
            sample.disk_read_bytes = static_cast<int64_t>(now->read_bytes);
            sample.disk_write_bytes = static_cast<int64_t>(now->write_bytes);
            if (auto st = store::insert_metric(*db, sandbox_id, sample);
                !st.ok() && failures.allow())
                log::warn("metrics: {}", st.error().message());
            previous = std::move(now);
            previous_ns = now_ns;
        }
    }).detach();
}

}  // namespace msb::runtime
