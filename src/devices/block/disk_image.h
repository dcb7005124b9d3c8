// DiskImage: the host side of a virtio-blk disk — a byte-addressed image that the block device
// reads and writes on its event thread. RawDiskImage is a plain file or block device;
// qcow2/vmdk readers implement the same interface later.
//
//   auto disk = TRY(devices::RawDiskImage::open("/x/rootfs.img", devices::DiskAccess::ReadOnly));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

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
    // Makes completed writes durable (fdatasync for a raw file).
    virtual Status flush() = 0;
};

class RawDiskImage final : public DiskImage {
public:
    static Result<std::unique_ptr<RawDiskImage>> open(const std::string& path, DiskAccess access);

    uint64_t size() const override { return m_size; }
    DiskAccess access() const override { return m_access; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) override;
    Status write_at(uint64_t offset, std::span<const uint8_t> in) override;
    Status flush() override;

private:
    RawDiskImage(UniqueFd fd, std::string path, uint64_t size, DiskAccess access)
        : m_fd(std::move(fd)), m_path(std::move(path)), m_size(size), m_access(access) {}

    UniqueFd m_fd;
    std::string m_path;
    uint64_t m_size;
    DiskAccess m_access;
};

}  // namespace msb::devices
