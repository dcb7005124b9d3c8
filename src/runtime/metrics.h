// Metrics sampler: once a second, the sandbox process's CPU use, resident memory and disk I/O
// (from /proc/self) go into the `sandbox_metric` table.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace msb::runtime {

// Raw counters of one /proc sample.
struct ProcessCounters {
    uint64_t cpu_ticks = 0;  // utime + stime, in clock ticks
    uint64_t rss_bytes = 0;
    uint64_t read_bytes = 0;
    uint64_t write_bytes = 0;
};

// Parses /proc/<pid>/stat, statm and io texts (io may be empty when unreadable).
Result<ProcessCounters> parse_process_counters(std::string_view stat, std::string_view statm,
                                               std::string_view io, uint64_t page_size);
Result<ProcessCounters> read_process_counters(const std::string& proc_dir = "/proc/self");

// CPU percent of one core over an interval: 100 * Δticks / (ticks_per_second * Δseconds).
double cpu_percent(uint64_t delta_ticks, double delta_seconds, uint64_t ticks_per_second);

// Starts the detached sampler thread; it opens its own store connection.
void start_metrics_sampler(const std::string& db_path, int64_t sandbox_id);

}  // namespace msb::runtime
