// Initramfs placement.
#include "loader/initrd.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "loader/byte_source.h"

namespace msb::loader {

namespace {
constexpr uint64_t kPage = 4096;
uint64_t align_up4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }
}  // namespace

Result<InitrdPlacement> load_initrds(kvm::GuestMemory& memory,
                                     const std::vector<InitrdImage>& images, uint64_t kernel_end,
                                     uint64_t low_ram_end, uint64_t address_max) {
    if (images.empty()) return InitrdPlacement{};
    std::vector<std::optional<FileSource>> files;
    std::vector<uint64_t> sizes;
    uint64_t total = 0;
    for (const auto& image : images) {
        if (!image.path.empty()) {
            files.push_back(TRY(FileSource::open(image.path)));
            sizes.push_back(files.back()->size());
        } else {
            files.emplace_back();
            sizes.push_back(image.bytes.size());
        }
        total = align_up4(total) + sizes.back();
        if (total > low_ram_end) return Error("initramfs images are larger than guest RAM");
    }

    uint64_t ceiling = std::min(low_ram_end, address_max + 1);
    if (total > ceiling)
        return Error(
            fmt::format("initramfs ({} MiB) does not fit below {:#x}", total >> 20, ceiling));
    uint64_t address = (ceiling - total) & ~(kPage - 1);
    if (address < kernel_end)
        return Error(
            fmt::format("initramfs ({} MiB) does not fit in guest RAM above the kernel; add memory",
                        total >> 20));

    uint64_t offset = 0;
    for (size_t i = 0; i < images.size(); ++i) {
        uint64_t aligned = align_up4(offset);
        // Zero the alignment padding so the kernel sees NULs between archives (allowed by the
        // format).
        uint8_t* pad = memory.host_address(address + offset, aligned - offset);
        if (!pad) return Error("initramfs placement outside guest RAM");
        std::memset(pad, 0, aligned - offset);
        offset = aligned;
        // A file at a page boundary (always the first) is mapped rather than copied.
        if (files[i]) {
            TRY(files[i]->load_into(memory, address + offset, 0, sizes[i]));
        } else {
            TRY(memory.write(address + offset, images[i].bytes));
        }
        offset += sizes[i];
    }
    return InitrdPlacement{address, total};
}

}  // namespace msb::loader
