// Size-rotated log file; see rotating_log.h.
#include "runtime/rotating_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

namespace msb::runtime {

namespace {

Result<UniqueFd> open_append(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Error::from_errno("open log " + path);
    return UniqueFd(fd);
}

std::string numbered(const std::string& path, unsigned n) { return path + "." + std::to_string(n); }

}  // namespace

Result<RotatingLog> RotatingLog::open(const std::string& dir, std::string_view prefix,
                                      uint64_t max_bytes, unsigned keep) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Error::from_errno("create log directory " + dir, ec.value());
    std::string path = dir + "/" + std::string(prefix) + ".log";
    UniqueFd fd = TRY(open_append(path));
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno("stat log " + path);
    return RotatingLog(std::move(path), std::move(fd), static_cast<uint64_t>(st.st_size),
                       max_bytes == 0 ? 1 : max_bytes, keep == 0 ? 1 : keep);
}

Status RotatingLog::write(std::span<const uint8_t> data) {
    if (data.empty()) return {};
    if (m_size > 0 && m_size + data.size() > m_max_bytes) TRY(rotate());
    auto st = write_all(m_fd.get(), data.data(), data.size());
    if (!st) return st.error().with_context("write log " + m_path);
    m_size += data.size();
    return {};
}

Status RotatingLog::write(std::string_view text) {
    return write(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Status RotatingLog::rotate() {
    // Drop the oldest, shift the rest up by one, then move the live file to .1.
    if (::unlink(numbered(m_path, m_keep).c_str()) < 0 && errno != ENOENT) {
        return Error::from_errno("remove old log " + numbered(m_path, m_keep));
    }
    for (unsigned n = m_keep; n > 1; --n) {
        const std::string from = numbered(m_path, n - 1);
        if (::rename(from.c_str(), numbered(m_path, n).c_str()) < 0 && errno != ENOENT) {
            return Error::from_errno("rotate log " + from);
        }
    }
    if (::rename(m_path.c_str(), numbered(m_path, 1).c_str()) < 0 && errno != ENOENT) {
        return Error::from_errno("rotate log " + m_path);
    }
    m_fd = TRY(open_append(m_path));
    m_size = 0;
    return {};
}

}  // namespace msb::runtime
