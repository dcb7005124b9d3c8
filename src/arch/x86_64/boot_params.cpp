// Zero page construction.
#include "arch/x86_64/boot_params.h"

#include <cstring>

namespace msb::arch::x86_64 {

Result<boot_params> build_boot_params(const BootParamsConfig& config) {
    boot_params params;
    std::memset(&params, 0, sizeof params);
    if (config.header) {
        params.hdr = *config.header;
    } else {
        params.hdr.boot_flag = kBootFlag;
        params.hdr.header = kHdrSMagic;
        params.hdr.version = 0x020f;
        params.hdr.kernel_alignment = 0x1000000;
    }
    params.hdr.type_of_loader = kLoaderTypeUndefined;
    params.hdr.loadflags |= LOADED_HIGH;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(config.cmdline_address);
    params.ext_cmd_line_ptr = static_cast<uint32_t>(config.cmdline_address >> 32);
    params.hdr.cmdline_size = config.cmdline_size;

    if (config.initrd_size) {
        if (config.initrd_address + config.initrd_size > kMmioHoleEnd)
            return Error("initramfs must lie below 4 GiB");
        params.hdr.ramdisk_image = static_cast<uint32_t>(config.initrd_address);
        params.hdr.ramdisk_size = static_cast<uint32_t>(config.initrd_size);
    }

    if (config.e820.size() > E820_MAX_ENTRIES_ZEROPAGE)
        return Error("e820 map too large for the zero page");
    for (size_t i = 0; i < config.e820.size(); ++i) {
        params.e820_table[i].addr = config.e820[i].address;
        params.e820_table[i].size = config.e820[i].size;
        params.e820_table[i].type = static_cast<uint32_t>(config.e820[i].type);
    }
    params.e820_entries = static_cast<uint8_t>(config.e820.size());
    return params;
}

Status write_boot_params(const kvm::GuestMemory& memory, const BootParamsConfig& config) {
    boot_params params = TRY(build_boot_params(config));
    return memory.write_obj(kZeroPageAddress, params);
}

}  // namespace msb::arch::x86_64
