// Initramfs placement: one or more cpio images concatenated in guest memory (the kernel
// unpacks them in order, later entries overriding earlier ones), each starting 4-byte aligned
// as the newc format requires (Documentation/driver-api/early-userspace/buffer-format.rst),
// placed page-aligned as high as possible below the end of low RAM and the kernel's limit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::loader {

// An image given by file path, or by bytes built in memory (e.g. the per-boot config cpio).
struct InitrdImage {
    std::string path;            // used when non-empty
    std::vector<uint8_t> bytes;  // used when path is empty

    static InitrdImage file(std::string p) { return {std::move(p), {}}; }
    static InitrdImage memory(std::vector<uint8_t> b) { return {{}, std::move(b)}; }
};

struct InitrdPlacement {
    uint64_t address = 0;
    uint64_t size = 0;  // bytes the kernel should read (may include padding between images)
};

// Loads `images` into `memory` below min(`low_ram_end`, `address_max` + 1) and above
// `kernel_end`. An empty list places nothing and returns {0, 0}.
Result<InitrdPlacement> load_initrds(kvm::GuestMemory& memory,
                                     const std::vector<InitrdImage>& images, uint64_t kernel_end,
                                     uint64_t low_ram_end, uint64_t address_max);

}  // namespace msb::loader
