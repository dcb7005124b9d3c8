// File and memory byte sources.
#include "loader/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace msb::loader {

namespace {
constexpr uint64_t kPage = 4096;
}

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

Status ByteSource::load_into(kvm::GuestMemory& memory, uint64_t gpa, uint64_t offset,
                             uint64_t len) const {
    uint8_t* host = memory.host_address(gpa, len);
    if (!host) return Error(fmt::format("{}: {:#x}+{:#x} is outside guest RAM", name(), gpa, len));
    // Safe: host_address() checked the whole [gpa, gpa + len) range.
    return read_at(offset, {host, len});
}

Status FileSource::load_into(kvm::GuestMemory& memory, uint64_t gpa, uint64_t offset,
                             uint64_t len) const {
    if (offset > m_size || len > m_size - offset)
        return Error(fmt::format("{}: truncated (wanted {} bytes at offset {})", m_path, len, offset));
    if (!memory.contains(gpa, len))
        return Error(fmt::format("{}: {:#x}+{:#x} is outside guest RAM", m_path, gpa, len));
    // Whole pages inside [gpa, gpa + len): mapped when the file lines up with them.
    uint64_t first = (gpa + kPage - 1) & ~(kPage - 1);
    uint64_t last = (gpa + len) & ~(kPage - 1);
    if ((gpa - offset) % kPage != 0 || first >= last)
        return ByteSource::load_into(memory, gpa, offset, len);
    TRY(ByteSource::load_into(memory, gpa, offset, first - gpa));
    TRY(memory.map_file(first, last - first, m_fd.get(), offset + (first - gpa)));
    return ByteSource::load_into(memory, last, offset + (last - gpa), gpa + len - last);
}

Status MemorySource::read_at(uint64_t offset, std::span<uint8_t> out) const {
    if (offset > m_bytes.size() || out.size() > m_bytes.size() - offset)
        return Error(m_name + ": truncated (wanted " + std::to_string(out.size()) +
                     " bytes at offset " + std::to_string(offset) + ")");
    if (!out.empty()) std::memcpy(out.data(), m_bytes.data() + offset, out.size());
    return {};
}

}  // namespace msb::loader
