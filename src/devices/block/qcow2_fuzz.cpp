// libFuzzer target: qcow2 metadata parsing and the table walks, refcount updates and
// decompression that follow it. The input after a 16-byte prefix is the image file (on a memfd);
// the prefix picks read-write or read-only and four operations (read, write, write-zeroes,
// discard) at offsets and lengths inside the virtual disk. A backing file is never opened: the
// image is opened as if it were already at the bottom of a maximal chain.
//
// Checked: no crash, no sanitizer report, no unbounded allocation. Not checked: that a write
// reads back. A crafted image can point a data cluster at its own L2 table or refcount block
// (metadata overlap checks beyond the header and the two top tables are not done yet), and then
// a write legitimately changes what a later read finds (found by this target, 2 Dec 2026).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "base/log.h"
#include "devices/block/qcow2_image.h"

namespace {

using msb::devices::DiskAccess;
using msb::devices::Qcow2DiskImage;

constexpr size_t kPrefix = 16;

uint32_t le32(const uint8_t* p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    msb::log::set_level(msb::log::Level::Off);
    if (size < kPrefix) return 0;
    msb::UniqueFd fd(::memfd_create("qcow2-fuzz", MFD_CLOEXEC));
    if (!fd) return 0;
    const uint8_t* image = data + kPrefix;
    for (size_t done = 0; done < size - kPrefix;) {
        ssize_t n = ::write(fd.get(), image + done, size - kPrefix - done);
        if (n <= 0) return 0;
        done += static_cast<size_t>(n);
    }
    const DiskAccess access = data[0] & 1 ? DiskAccess::ReadWrite : DiskAccess::ReadOnly;
    auto opened = Qcow2DiskImage::open_fd(std::move(fd), "/fuzz/image.qcow2", access,
                                          Qcow2DiskImage::kMaxBackingDepth);
    if (!opened.ok()) return 0;
    auto& disk = **opened;
    if (disk.size() == 0) return 0;

    std::vector<uint8_t> buffer, back;
    for (int op = 0; op < 3; op++) {
        const uint8_t* p = data + 1 + op * 5;
        const uint64_t offset = (uint64_t{le32(p)} * 512) % disk.size();
        const uint64_t length =
            std::min<uint64_t>(1 + ((p[4] * 997u) % 70000), disk.size() - offset);
        buffer.assign(length, static_cast<uint8_t>(p[4] | 1));
        back.resize(length);
        switch ((data[0] >> (1 + 2 * op)) & 3) {
            case 0:
                (void)disk.read_at(offset, back);
                break;
            case 1:
                if (disk.write_at(offset, buffer).ok()) (void)disk.read_at(offset, back);
                break;
            case 2:
            case 3: {
                const bool discard = ((data[0] >> (1 + 2 * op)) & 3) == 3;
                auto s = discard ? disk.discard(offset, length) : disk.write_zeroes(offset, length);
                if (s.ok()) (void)disk.read_at(offset, back);
                break;
            }
        }
    }
    (void)disk.flush();
    return 0;
}
