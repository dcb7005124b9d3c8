// Raw disk images, the zero-writing fallback and the format switch.
#include "devices/block/disk_image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "devices/block/qcow2_image.h"
#include "devices/block/vmdk_image.h"

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
    return std::unique_ptr<RawDiskImage>(
        new RawDiskImage(std::move(fd), path, size, access, S_ISREG(st.st_mode)));
}

Result<size_t> pread_up_to(int fd, uint64_t offset, std::span<uint8_t> out, std::string_view what) {
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n =
            ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(what);
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    return done;
}

Status pwrite_exact(int fd, uint64_t offset, std::span<const uint8_t> in, std::string_view what) {
    size_t done = 0;
    while (done < in.size()) {
        ssize_t n =
            ::pwrite(fd, in.data() + done, in.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return Error::from_errno(what, n < 0 ? errno : EIO);
        done += static_cast<size_t>(n);
    }
    return {};
}

Status RawDiskImage::read_at(uint64_t offset, std::span<uint8_t> out) {
    const size_t n = TRY(pread_up_to(m_fd.get(), offset, out, "read disk image " + m_path));
    if (n < out.size()) return Error("read disk image " + m_path + ": unexpected end of file", EIO);
    return {};
}

Status RawDiskImage::write_at(uint64_t offset, std::span<const uint8_t> in) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("write disk image " + m_path + ": read-only", EROFS);
    return pwrite_exact(m_fd.get(), offset, in, "write disk image " + m_path);
}

Status RawDiskImage::flush() {
    if (m_access == DiskAccess::ReadOnly) return {};
    if (::fdatasync(m_fd.get()) < 0) return Error::from_errno("fdatasync disk image " + m_path);
    return {};
}

Status DiskImage::write_zeroes(uint64_t offset, uint64_t length) {
    static const std::vector<uint8_t> zeroes(256 * 1024);
    while (length > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(length, zeroes.size()));
        TRY(write_at(offset, std::span<const uint8_t>(zeroes).first(n)));
        offset += n;
        length -= n;
    }
    return {};
}

Status RawDiskImage::discard(uint64_t offset, uint64_t length) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("discard on disk image " + m_path + ": read-only", EROFS);
    if (m_regular && ::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                 static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return {};
    return DiskImage::write_zeroes(offset, length);
}

Status RawDiskImage::write_zeroes(uint64_t offset, uint64_t length) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("write zeroes on disk image " + m_path + ": read-only", EROFS);
    // ZERO_RANGE keeps the blocks allocated (a later write does not fail for lack of space);
    // file systems without it get explicit zeroes.
    if (m_regular && ::fallocate(m_fd.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                 static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return {};
    return DiskImage::write_zeroes(offset, length);
}

Result<std::unique_ptr<DiskImage>> open_disk_image(const std::string& path, std::string_view format,
                                                   DiskAccess access) {
    if (format == "raw") return std::unique_ptr<DiskImage>(TRY(RawDiskImage::open(path, access)));
    if (format == "qcow2")
        return std::unique_ptr<DiskImage>(TRY(Qcow2DiskImage::open(path, access)));
    if (format == "vmdk") {
        if (access == DiskAccess::ReadWrite)
            return Error("disk image " + path +
                             ": vmdk images are read-only here; attach it with :ro, or convert it "
                             "with `qemu-img convert -O qcow2 " +
                             path + " disk.qcow2`",
                         EROFS);
        return std::unique_ptr<DiskImage>(TRY(VmdkDiskImage::open(path)));
    }
    return Error("unknown disk image format: " + std::string(format), EINVAL);
}

}  // namespace msb::devices
