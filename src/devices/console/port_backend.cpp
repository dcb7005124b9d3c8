// File sink for console port 0.
#include "devices/console/port_backend.h"

#include <fcntl.h>

#include "base/log.h"

namespace msb::devices {

Result<std::shared_ptr<FileOutputSink>> FileOutputSink::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Error::from_errno("open console log " + path);
    return std::shared_ptr<FileOutputSink>(new FileOutputSink(UniqueFd(fd), path));
}

void FileOutputSink::write(std::span<const uint8_t> bytes) {
    static log::RateLimit limit;
    if (Status s = write_all(m_fd.get(), bytes.data(), bytes.size()); !s.ok() && limit.allow())
        log::warn("write console log {}: {}", m_path, s.error().message());
}

}  // namespace msb::devices
