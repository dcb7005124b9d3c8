// libFuzzer target for the VMDK descriptor parser, which reads untrusted text: it must not
// crash, hang or over-allocate, and what it accepts must stay inside the documented bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "devices/block/vmdk_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto descriptor = msb::devices::parse_vmdk_descriptor(input, "fuzz.vmdk");
    if (!descriptor.ok()) return 0;
    const auto& extents = descriptor->extents;
    if (extents.empty() || extents.size() > msb::devices::kMaxExtents) std::abort();
    uint64_t sectors = 0;
    for (const auto& extent : extents) {
        if (extent.sectors == 0 || extent.sectors > (uint64_t{1} << 54) - sectors) std::abort();
        sectors += extent.sectors;
        if (extent.kind == msb::devices::VmdkExtent::Kind::Flat &&
            (extent.file.empty() || extent.offset_sectors > (uint64_t{1} << 54) - extent.sectors))
            std::abort();
    }
    return 0;
}
