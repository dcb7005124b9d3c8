// CpioWriter: builds a newc ("070701") cpio archive in memory, the format the Linux initramfs
// unpacker reads (Documentation/driver-api/early-userspace/buffer-format.rst).
//
//   CpioWriter cpio;
//   TRY(cpio.add_directory("etc", 0755));
//   TRY(cpio.add_file("etc/msb.conf", bytes, 0644));
//   TRY(cpio.add_symlink("bin/sh", "busybox"));
//   std::vector<uint8_t> archive = cpio.finish();   // appends TRAILER!!!
//
// Written here rather than with libarchive because the sandbox builds one small archive per
// boot on its start-up path and needs nothing but these three entry kinds.
// Names are relative ("etc/x"; a leading "/" is stripped), without "..", NUL or empty parts.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace msb::loader {

struct CpioOwner {
    uint32_t uid = 0;
    uint32_t gid = 0;
};

class CpioWriter {
public:
    Status add_directory(std::string_view name, uint32_t mode, CpioOwner owner = {});
    Status add_file(std::string_view name, std::span<const uint8_t> data, uint32_t mode,
                    CpioOwner owner = {});
    Status add_file(std::string_view name, std::string_view text, uint32_t mode,
                    CpioOwner owner = {});
    Status add_symlink(std::string_view name, std::string_view target, CpioOwner owner = {});

    // Appends the trailer and returns the archive (the writer is left empty).
    std::vector<uint8_t> finish();

private:
    Status add(std::string_view name, uint32_t mode, std::span<const uint8_t> data,
               CpioOwner owner);

    std::vector<uint8_t> m_out;
    uint32_t m_next_inode = 1;
};

}  // namespace msb::loader
