// VmdkDiskImage: a read-only VMDK disk described by a text descriptor whose extents are FLAT
// files (subformats monolithicFlat and twoGbMaxExtentFlat, as `qemu-img create -f vmdk -o
// subformat=...` writes them) or ZERO. Sparse extents (monolithicSparse, streamOptimized, ...)
// and a descriptor embedded in a sparse file are refused with an error that says how to convert.
//
// The descriptor (VMware "Virtual Disk Format 1.1", §"The Descriptor File") is text: comments,
// `key = "value"` lines (createType, parentCID, ddb.*) and one line per extent, in disk order:
//
//   # Disk DescriptorFile
//   version=1
//   createType="twoGbMaxExtentFlat"
//   RW 4194304 FLAT "disk-f001.vmdk" 0      <- access, size in 512-byte sectors, type,
//   RDONLY 2048 FLAT "/abs/disk.bin" 128       file (relative to the descriptor's folder),
//   RW 2048 ZERO                               offset into the file in sectors
//
// The guest disk is the extents back to back. The descriptor is untrusted: it is bounded to
// kMaxDescriptorBytes and kMaxExtents, every number is checked for overflow, and every extent
// file must be a regular file or block device long enough for its extent. Note that a
// descriptor may name any file the process can read (absolute paths are allowed, as VMware
// allows them), so only attach descriptors from a trusted source or in a confined process.
//
//   auto disk = TRY(devices::VmdkDiskImage::open("/x/disk.vmdk"));
//   TRY(disk->read_at(0, std::span(buffer)));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/block/disk_image.h"

namespace msb::devices {

inline constexpr size_t kMaxDescriptorBytes = 64 * 1024;
inline constexpr size_t kMaxExtents = 1024;

// One extent line of a descriptor, as written there.
struct VmdkExtent {
    enum class Kind { Flat, Zero };
    Kind kind;
    uint64_t sectors;         // > 0
    std::string file;         // Flat only: the name between the quotes, never empty
    uint64_t offset_sectors;  // Flat only: where the extent starts in `file`
};

struct VmdkDescriptor {
    std::string create_type;
    std::vector<VmdkExtent> extents;  // non-empty, at most kMaxExtents, total bytes < 2^63
};

// Parses descriptor text (the bytes of a descriptor file; trailing NUL padding, which qemu and
// VMware write, is allowed). Pure: touches no files. `path` only names the image in errors.
Result<VmdkDescriptor> parse_vmdk_descriptor(std::string_view text, const std::string& path);

class VmdkDiskImage final : public DiskImage {
public:
    // Reads the descriptor at `path` and opens every extent file read-only.
    static Result<std::unique_ptr<VmdkDiskImage>> open(const std::string& path);

    VmdkDiskImage(const VmdkDiskImage&) = delete;
    VmdkDiskImage& operator=(const VmdkDiskImage&) = delete;

    uint64_t size() const override { return m_size; }
    DiskAccess access() const override { return DiskAccess::ReadOnly; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) override;
    // Always EROFS.
    Status write_at(uint64_t offset, std::span<const uint8_t> in) override;
    Status flush() override { return {}; }
    // discard and write_zeroes keep their defaults, which end in write_at: EROFS.

private:
    struct File {
        std::string path;
        UniqueFd fd;
    };
    struct Extent {
        uint64_t start;  // byte offset in the guest disk
        uint64_t bytes;
        int file;  // index into m_files, -1 for a ZERO extent
        uint64_t file_offset;
    };

    VmdkDiskImage(std::string path, std::vector<File> files, std::vector<Extent> extents,
                  uint64_t size)
        : m_path(std::move(path)),
          m_files(std::move(files)),
          m_extents(std::move(extents)),
          m_size(size) {}

    std::string m_path;
    std::vector<File> m_files;      // each extent file opened once, however many extents use it
    std::vector<Extent> m_extents;  // sorted by start, contiguous, covering [0, m_size)
    uint64_t m_size;
};

}  // namespace msb::devices
