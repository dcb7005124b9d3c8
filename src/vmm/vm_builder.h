// VmBuilder: assembles a microVM. build() reads top to bottom as the boot recipe:
// KVM VM → guest RAM → legacy devices → virtio-mmio devices → kernel, initramfs, command line,
// zero page → page tables, GDT, MP table → vCPUs.
//
//   auto vm = TRY(VmBuilder()
//                     .machine(2, 512)
//                     .kernel(vmlinux, {InitrdImage::file(initrd)}, "msb.debug=1")
//                     .console({.output_path = log_path, .echo = ConsoleEcho::Stdout})
//                     .mmio_device(console_device)
//                     .on_exit([](int code) { ... })
//                     .build());
//
// Devices get consecutive 4 KiB-aligned windows from kDeviceWindowsStart (0xd000_0000) and
// IRQs from 5 upward, declared to the guest as virtio_mmio.device=<size>@<addr>:<irq>.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "loader/initrd.h"
#include "virtio/mmio_device.h"
#include "vmm/serial.h"
#include "vmm/vm.h"

namespace msb::vmm {

inline constexpr uint32_t kMinVcpus = 1;
inline constexpr uint32_t kMaxVcpus = 32;
inline constexpr uint32_t kMinMemoryMib = 128;
inline constexpr uint32_t kMaxMemoryMib = 64 * 1024;
inline constexpr uint32_t kFirstDeviceIrq = 5;
inline constexpr uint32_t kLastDeviceIrq = 23;  // IOAPIC pins 0–23

// The command line every boot starts with. On the PVM host it also turns off what that host
// cannot emulate (see docs/vmm.md and ENVIRONMENT.md).
std::string default_cmdline(bool pvm_host);

// What default_cmdline() sets GLIBC_TUNABLES to on a PVM host: glibc off AVX (the guest kernel
// cannot save it there).
inline constexpr std::string_view kPvmGlibcTunables =
    "glibc.cpu.hwcaps=-XSAVE,-XSAVEC,-AVX_Usable,-AVX2_Usable,-AVX512F_Usable";

enum class ConsoleEcho { None, Stdout };

struct ConsoleOptions {
    std::string output_path{};  // empty: no file
    ConsoleEcho echo = ConsoleEcho::None;
    // Also receives the serial output, a line at a time on a vCPU thread (e.g. a rotating log;
    // must not block for long).
    Serial::Writer writer{};
};

class VmBuilder {
public:
    VmBuilder& machine(uint32_t vcpus, uint32_t memory_mib);
    // An ELF vmlinux or bzImage; `initrds` are concatenated in order; `cmdline` is appended to
    // the default command line and the device declarations.
    VmBuilder& kernel(std::string path, std::vector<loader::InitrdImage> initrds = {},
                      std::string cmdline = {});
    // Replaces the default command line (still followed by device declarations and additions).
    VmBuilder& base_cmdline(std::string cmdline);
    // Instead of a kernel: raw 64-bit code copied to `load_address` and entered there in long
    // mode with the same page tables and GDT a kernel gets (used by the tiny test guests).
    VmBuilder& flat_binary(std::vector<uint8_t> code, uint64_t load_address = 0x100000);
    VmBuilder& console(ConsoleOptions options);
    VmBuilder& mmio_device(std::shared_ptr<virtio::MmioDevice> device);
    // Runs once, on the thread that called Vm::enter(), before _exit(code).
    VmBuilder& on_exit(std::function<void(int)> observer);
    // Prints "msb-timing: ..." lines to stderr (also enabled by MSB_BOOT_TIMING=1).
    VmBuilder& boot_timing(bool on);

    // Validates everything and builds the VM. Errors name what is wrong: vCPU count or memory
    // out of range, kernel missing or not a kernel, command line too long, /dev/kvm problems.
    Result<Vm> build();

private:
    uint32_t m_vcpus = 1;
    uint32_t m_memory_mib = 128;
    std::string m_kernel_path;
    std::vector<loader::InitrdImage> m_initrds;
    std::string m_cmdline_extra;
    std::optional<std::string> m_base_cmdline;
    std::vector<uint8_t> m_flat_code;
    uint64_t m_flat_address = 0;
    ConsoleOptions m_console;
    std::vector<std::shared_ptr<virtio::MmioDevice>> m_devices;
    std::vector<std::function<void(int)>> m_observers;
    bool m_timing = false;
};

}  // namespace msb::vmm
