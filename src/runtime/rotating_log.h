// RotatingLog: append-only log file that rotates by size, for the sandbox process's host.log
// (stderr pump) and similar (ARCHITECTURE.md "Files on disk": host.log + .1 .2 .3 at 10 MiB).
//
//   RotatingLog log = TRY(RotatingLog::open(log_dir, "host"));
//   TRY(log.write(bytes));
//
// Files: <dir>/<prefix>.log is the live file; on rotation .log.2 → .log.3, .log.1 → .log.2,
// .log → .log.1 (the oldest, .log.<keep>, is dropped), so at most `keep` old files exist.
// Reopening appends to the existing live file and counts its current size.
//
// Rotation rule: a write that would take a non-empty live file past max_bytes rotates first.
// A single write larger than max_bytes is still written whole (into a fresh file), never
// split or truncated: log records stay intact, and the file exceeds the limit only by that one
// record. (microsandbox 0.4.3 behaves the same, except that it also rotates an empty file and
// shifts .3 to a fourth file .4; we keep exactly `keep` old files.)
//
// Not thread-safe: one writer (the log pump thread).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::runtime {

class RotatingLog {
public:
    static constexpr uint64_t kDefaultMaxBytes = 10 * 1024 * 1024;
    static constexpr unsigned kDefaultKeep = 3;

    // Creates `dir` if needed and opens <dir>/<prefix>.log for appending.
    // REQUIRES: keep >= 1, max_bytes >= 1.
    static Result<RotatingLog> open(const std::string& dir, std::string_view prefix,
                                    uint64_t max_bytes = kDefaultMaxBytes,
                                    unsigned keep = kDefaultKeep);

    // Appends `data` whole, rotating first if needed (see the rotation rule above).
    Status write(std::span<const uint8_t> data);
    Status write(std::string_view text);

    // Path of the live file and its size as counted by this writer.
    const std::string& path() const { return m_path; }
    uint64_t size() const { return m_size; }

private:
    RotatingLog(std::string path, UniqueFd fd, uint64_t size, uint64_t max_bytes, unsigned keep)
        : m_path(std::move(path)),
          m_fd(std::move(fd)),
          m_size(size),
          m_max_bytes(max_bytes),
          m_keep(keep) {}
    Status rotate();

    std::string m_path;
    UniqueFd m_fd;
    uint64_t m_size;
    uint64_t m_max_bytes;
    unsigned m_keep;
};

}  // namespace msb::runtime
