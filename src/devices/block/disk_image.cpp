// Raw disk images.
#include "devices/block/disk_image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace msb::devices {

Result<std::unique_ptr<RawDiskImage>> RawDiskImage::open(const std::string& path,
                                                         DiskAccess access) {
    int flags = (access == DiskAccess::ReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) return Error::from_errno("open disk image " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno("stat disk image " + path);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd.get(), BLKGETSIZE64, &size) < 0)
        return Error::from_errno("size of block device " + path);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return Error("disk image " + path + " is not a file or block device");
    return std::unique_ptr<RawDiskImage>(new RawDiskImage(std::move(fd), path, size, access));
}

Status RawDiskImage::read_at(uint64_t offset, std::span<uint8_t> out) {
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(m_fd.get(), out.data() + done, out.size() - done,
                            static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("read disk image " + m_path);
        if (n == 0) return Error("read disk image " + m_path + ": unexpected end of file", EIO);
        done += static_cast<size_t>(n);
    }
    return {};
}

Status RawDiskImage::write_at(uint64_t offset, std::span<const uint8_t> in) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("write disk image " + m_path + ": read-only", EROFS);
    size_t done = 0;
    while (done < in.size()) {
        ssize_t n = ::pwrite(m_fd.get(), in.data() + done, in.size() - done,
                             static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Error::from_errno("write disk image " + m_path, n < 0 ? errno : EIO);
        done += static_cast<size_t>(n);
    }
    return {};
}

Status RawDiskImage::flush() {
    if (m_access == DiskAccess::ReadOnly) return {};
    if (::fdatasync(m_fd.get()) < 0) return Error::from_errno("fdatasync disk image " + m_path);
    return {};
}

}  // namespace msb::devices
