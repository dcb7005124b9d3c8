// File and memory byte sources.
#include "loader/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace msb::loader {

Result<FileSource> FileSource::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("open " + path);
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) return Error::from_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) return Error(path + ": not a regular file");
    return FileSource(std::move(owned), static_cast<uint64_t>(st.st_size), path);
}

Status FileSource::read_at(uint64_t offset, std::span<uint8_t> out) const {
    if (offset > m_size || out.size() > m_size - offset)
        return Error(m_path + ": truncated (wanted " + std::to_string(out.size()) +
                     " bytes at offset " + std::to_string(offset) + ")");
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(m_fd.get(), out.data() + done, out.size() - done,
                            static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read " + m_path);
        }
        if (n == 0) return Error(m_path + ": file shrank while reading");
        done += static_cast<size_t>(n);
    }
    return {};
}

Status MemorySource::read_at(uint64_t offset, std::span<uint8_t> out) const {
    if (offset > m_bytes.size() || out.size() > m_bytes.size() - offset)
        return Error(m_name + ": truncated (wanted " + std::to_string(out.size()) +
                     " bytes at offset " + std::to_string(offset) + ")");
    if (!out.empty()) std::memcpy(out.data(), m_bytes.data() + offset, out.size());
    return {};
}

}  // namespace msb::loader
