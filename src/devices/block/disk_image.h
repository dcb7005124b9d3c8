// DiskImage: the host side of a virtio-blk disk — a byte-addressed image that the block device
// reads and writes on its event thread. Backends: RawDiskImage (a plain file or block device),
// Qcow2DiskImage (qcow2 versions 2 and 3, read-write) and VmdkDiskImage (descriptor files with
// flat extents, read-only). open_disk_image() picks one by format name.
//
//   auto disk = TRY(devices::open_disk_image("/x/data.qcow2", "qcow2",
//   devices::DiskAccess::ReadWrite));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::devices {

enum class DiskAccess { ReadOnly, ReadWrite };

class DiskImage {
public:
    virtual ~DiskImage() = default;

    // Guest-visible size in bytes.
    virtual uint64_t size() const = 0;
    virtual DiskAccess access() const = 0;
    // Whole-range I/O: succeeds only when every byte was transferred.
    // REQUIRES: offset + length <= size() (the device checks before calling).
    virtual Status read_at(uint64_t offset, std::span<uint8_t> out) = 0;
    // REQUIRES: access() == DiskAccess::ReadWrite, and the range inside size().
    virtual Status write_at(uint64_t offset, std::span<const uint8_t> in) = 0;
    // Makes completed writes durable (fdatasync for a raw file). Read-only images do nothing.
    virtual Status flush() = 0;

    // Whether discard() may give space back to the host (offered to the guest as
    // VIRTIO_BLK_F_DISCARD when true).
    virtual bool supports_discard() const { return false; }
    // The unit in which discard() gives space back (a hint for the guest).
    virtual uint64_t discard_granularity() const { return 4096; }
    // The guest no longer needs the range: afterwards it reads as zeroes (our backends all
    // guarantee that, although virtio does not ask for it). Default: write_zeroes.
    // REQUIRES: access() == DiskAccess::ReadWrite, and the range inside size().
    virtual Status discard(uint64_t offset, uint64_t length) {
        return write_zeroes(offset, length);
    }
    // The range reads as zeroes afterwards. Default: writes zero-filled buffers.
    // REQUIRES: access() == DiskAccess::ReadWrite, and the range inside size().
    virtual Status write_zeroes(uint64_t offset, uint64_t length);
};

class RawDiskImage final : public DiskImage {
public:
    static Result<std::unique_ptr<RawDiskImage>> open(const std::string& path, DiskAccess access);

    uint64_t size() const override { return m_size; }
    DiskAccess access() const override { return m_access; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) override;
    Status write_at(uint64_t offset, std::span<const uint8_t> in) override;
    Status flush() override;
    // Regular files: holes punched (fallocate), zeroes written where the file system cannot.
    bool supports_discard() const override { return m_regular; }
    Status discard(uint64_t offset, uint64_t length) override;
    Status write_zeroes(uint64_t offset, uint64_t length) override;

private:
    RawDiskImage(UniqueFd fd, std::string path, uint64_t size, DiskAccess access, bool regular)
        : m_fd(std::move(fd)),
          m_path(std::move(path)),
          m_size(size),
          m_access(access),
          m_regular(regular) {}

    UniqueFd m_fd;
    std::string m_path;
    uint64_t m_size;
    DiskAccess m_access;
    bool m_regular;
};

// pread(2) until `out` is full or the file ends, retrying EINTR: the number of bytes read (fewer
// than out.size() only at the end of the file). Errors are "<what>: <strerror>".
Result<size_t> pread_up_to(int fd, uint64_t offset, std::span<uint8_t> out, std::string_view what);
// pwrite(2) of all of `in`, retrying EINTR and short writes. Errors are "<what>: <strerror>".
Status pwrite_exact(int fd, uint64_t offset, std::span<const uint8_t> in, std::string_view what);

// Opens `path` as `format`: "raw", "qcow2" or "vmdk"; anything else is the error
// "unknown disk image format: <format>" (EINVAL). vmdk images are read-only: asking for
// ReadWrite is an error that says so. Every error names the file and what to do.
Result<std::unique_ptr<DiskImage>> open_disk_image(const std::string& path, std::string_view format,
                                                   DiskAccess access);

}  // namespace msb::devices
