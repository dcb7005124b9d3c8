// VmBuilder: the boot recipe.
#include "vmm/vm_builder.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cstdlib>

#include "arch/x86_64/boot_params.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/msrs.h"
#include "arch/x86_64/page_tables.h"
#include "base/log.h"
#include "base/time.h"
#include "loader/cmdline.h"
#include "loader/kernel.h"
#include "vmm/machine.h"

namespace msb::vmm {

namespace x86 = arch::x86_64;

namespace {

constexpr uint64_t kWindowAlign = 0x1000;

struct DevicePlacement {
    std::shared_ptr<virtio::MmioDevice> device;
    uint64_t base;
    uint64_t size;
    uint32_t irq;
};

struct BootEntry {
    uint64_t rip;
    uint64_t rsi;
};

// Sets the boot MSRs, skipping any the host refuses (KVM stops at the first refusal).
Status set_boot_msrs(kvm::Vcpu& vcpu, uint32_t index) {
    std::vector<kvm::MsrEntry> msrs = x86::boot_msrs();
    std::span<const kvm::MsrEntry> rest(msrs);
    while (!rest.empty()) {
        size_t set = TRY(vcpu.set_msrs(rest));
        if (set == rest.size()) break;
        if (index == 0)
            log::debug("host refused boot MSR {:#x}; left at its reset value", rest[set].index);
        rest = rest.subspan(set + 1);
    }
    return {};
}

}  // namespace

std::string default_cmdline(bool pvm_host) {
    // panic=-1: reboot at once on panic (the i8042 reset ends the VM). reboot=k: reboot through
    // the keyboard controller, which we implement (reboot=t would hit int3 on PVM).
    std::string line = "console=ttyS0 panic=-1 reboot=k quiet";
    // PVM: XSAVE, cx16 (141), popcnt (151) and smap (308) cannot be emulated in kernel mode and
    // KVM_SET_CPUID2 cannot hide them; rodata=off saves 2.4 s of emulated page-table work.
    // Clearing ERMS (297) and FSRM (580) moves the kernel's copies and clears from `rep movsb`
    // / `rep stosb` to their quadword forms: the emulator pays per repetition, so bulk copies
    // (pipes, page zeroing, virtio buffers) run about twice as fast (docs/vmm.md).
    if (pvm_host) line += " noxsave clearcpuid=141,151,308,297,580 rodata=off";
    // PVM: a kernel that finds one CPU rewrites every `lock` prefix in its text, one
    // text_poke() (a temporary mm, a TLB flush) per site. noreplace-smp keeps the prefixes:
    // 4% fewer emulated instructions from start to agent ready (37.7M -> 36.2M, docs/vmm.md).
    if (pvm_host) line += " noreplace-smp";
    // PVM: with `noxsave` the guest kernel saves only x87/SSE state per task, yet user code runs
    // on the host CPU under the host's XCR0 and is told AVX is enabled; the upper halves of the
    // YMM registers then leak between processes. The kernel passes this variable to init, and
    // the agent to every process it starts: glibc (2.34+; the older names are listed too) then
    // treats every XSAVE-managed feature — AVX, AVX2, AVX-512 — as unusable. See docs/vmm.md.
    if (pvm_host) line += " GLIBC_TUNABLES=" + std::string(kPvmGlibcTunables);
    return line;
}

VmBuilder& VmBuilder::machine(uint32_t vcpus, uint32_t memory_mib) {
    m_vcpus = vcpus;
    m_memory_mib = memory_mib;
    return *this;
}

VmBuilder& VmBuilder::kernel(std::string path, std::vector<loader::InitrdImage> initrds,
                             std::string cmdline) {
    m_kernel_path = std::move(path);
    m_initrds = std::move(initrds);
    m_cmdline_extra = std::move(cmdline);
    return *this;
}

VmBuilder& VmBuilder::base_cmdline(std::string cmdline) {
    m_base_cmdline = std::move(cmdline);
    return *this;
}

VmBuilder& VmBuilder::flat_binary(std::vector<uint8_t> code, uint64_t load_address) {
    m_flat_code = std::move(code);
    m_flat_address = load_address;
    return *this;
}

VmBuilder& VmBuilder::console(ConsoleOptions options) {
    m_console = std::move(options);
    return *this;
}

VmBuilder& VmBuilder::mmio_device(std::shared_ptr<virtio::MmioDevice> device) {
    m_devices.push_back(std::move(device));
    return *this;
}

VmBuilder& VmBuilder::on_exit(std::function<void(int)> observer) {
    m_observers.push_back(std::move(observer));
    return *this;
}

VmBuilder& VmBuilder::boot_timing(bool on) {
    m_timing = on;
    return *this;
}

Result<Vm> VmBuilder::build() {
    uint64_t started = monotonic_ns();
    // Where the host's time to the first guest instruction goes (printed with MSB_BOOT_TIMING).
    std::vector<std::pair<const char*, uint64_t>> phases;
    auto phase = [&phases, last = started](const char* name) mutable {
        uint64_t now = monotonic_ns();
        phases.emplace_back(name, now - last);
        last = now;
    };
    if (m_vcpus < kMinVcpus || m_vcpus > kMaxVcpus)
        return Error(
            fmt::format("vCPU count {} is out of range ({}–{})", m_vcpus, kMinVcpus, kMaxVcpus));
    if (m_memory_mib < kMinMemoryMib || m_memory_mib > kMaxMemoryMib)
        return Error(fmt::format("memory {} MiB is out of range ({}–{} MiB)", m_memory_mib,
                                 kMinMemoryMib, kMaxMemoryMib));
    if (m_kernel_path.empty() == m_flat_code.empty())
        return Error("VM needs exactly one of a kernel or a flat binary");
    // Round up to 2 MiB (one large page).
    uint64_t memory_bytes =
        (uint64_t{m_memory_mib} * x86::kMiB + 2 * x86::kMiB - 1) & ~(2 * x86::kMiB - 1);
    x86::MemoryLayout layout = TRY(x86::MemoryLayout::create(memory_bytes));
    x86::HostKind host = x86::detect_host_kind();

    // Parse the kernel before touching KVM so a wrong path fails fast and clearly.
    std::optional<loader::FileSource> kernel_source;
    std::optional<loader::KernelImage> kernel_image;
    if (!m_kernel_path.empty()) {
        auto source = loader::FileSource::open(m_kernel_path);
        if (!source.ok()) return source.error().with_context("kernel");
        kernel_source.emplace(std::move(source).value());
        kernel_image = TRY(loader::parse_kernel(*kernel_source));
    }

    // Device windows, IRQs and the command line are decided up front, so that every error a
    // user can cause is reported before KVM is touched.
    std::vector<DevicePlacement> placements;
    loader::CommandLine cmdline;
    TRY(cmdline.append(m_base_cmdline ? *m_base_cmdline
                                      : default_cmdline(host == x86::HostKind::Pvm)));
    uint64_t window = x86::kDeviceWindowsStart;
    uint32_t irq = kFirstDeviceIrq;
    for (auto& device : m_devices) {
        if (irq > kLastDeviceIrq)
            return Error(fmt::format("too many virtio devices (at most {})",
                                     kLastDeviceIrq - kFirstDeviceIrq + 1));
        uint64_t size = device->window_size();
        uint64_t span = (size + kWindowAlign - 1) & ~(kWindowAlign - 1);
        if (size == 0 || window + span > x86::kDeviceWindowsEnd)
            return Error("virtio device windows do not fit in the MMIO hole");
        placements.push_back({device, window, size, irq});
        TRY(cmdline.append(fmt::format("virtio_mmio.device={:#x}@{:#x}:{}", size, window, irq)));
        window += span;
        ++irq;
    }
    TRY(cmdline.append(m_cmdline_extra));
    if (kernel_image)
        TRY(cmdline.check_limit(
            std::min<uint32_t>(kernel_image->cmdline_limit, x86::kCmdlineMaxSize - 1)));
    phase("check");

    // 1. The VM and guest RAM around the MMIO hole. RAM is registered before the interrupt
    //    controller exists: afterwards each KVM_SET_USER_MEMORY_REGION waits for the in-kernel
    //    irqchip's readers (measured here: 5–9 ms instead of 0.2 ms; bench/boot.sh).
    auto system = TRY(kvm::System::open());
    auto vm = TRY(kvm::Vm::create(system));
    auto memory = TRY(kvm::GuestMemory::create(layout.ram_regions()));
    TRY(vm.add_memory(memory));
    phase("memory");

    // 2. The in-kernel interrupt controllers and timer.
    TRY(vm.set_tss_address(x86::kTssAddress));
    TRY(vm.set_identity_map_address(x86::kIdentityMapAddress));
    TRY(vm.create_irqchip());
    TRY(vm.create_pit2());
    phase("irqchip");

    auto m = std::make_unique<Machine>(std::move(system), std::move(vm), std::move(memory),
                                       TRY(EventLoop::create()));
    m->observers = m_observers;
    m->timing = m_timing || (std::getenv("MSB_BOOT_TIMING") &&
                             std::string(std::getenv("MSB_BOOT_TIMING")) == "1");
    m->build_started_ns = started;
    Machine& machine = *m;

    // 3. Legacy devices: serial console, i8042 reset line, exit port.
    std::vector<int> sinks;
    if (!m_console.output_path.empty()) {
        int fd =
            ::open(m_console.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) return Error::from_errno("open console output " + m_console.output_path);
        machine.console_file.reset(fd);
        sinks.push_back(fd);
    }
    if (m_console.echo == ConsoleEcho::Stdout) sinks.push_back(STDOUT_FILENO);
    machine.serial = std::make_unique<Serial>(
        [&machine](bool high) {
            Status s = machine.vm.set_irq_line(Serial::kCom1Irq,
                                               high ? kvm::IrqLevel::High : kvm::IrqLevel::Low);
            if (!s.ok()) {
                static log::RateLimit limit;
                if (limit.allow()) log::warn("serial interrupt: {}", s.error().message());
            }
        },
        std::move(sinks), m_console.writer);
    std::shared_ptr<ExitState> exit_state = machine.exit_state;
    machine.i8042 = std::make_unique<I8042>([exit_state] {
        exit_state->request(
            {ExitReason::GuestReset, kExitCodeGuestReset, "guest reset through the i8042"});
    });
    machine.exit_port = std::make_unique<ExitPort>([exit_state](uint32_t status) {
        exit_state->request({ExitReason::GuestExit, exit_code_from_wait_status(status),
                             fmt::format("init wait status {:#x}", status)});
    });
    TRY(machine.io_bus.add(Serial::kCom1Base, Serial::kSize, machine.serial.get()));
    TRY(machine.io_bus.add(I8042::kDataPort, 5, machine.i8042.get()));
    TRY(machine.io_bus.add(ExitPort::kPort, 4, machine.exit_port.get()));

    // 4. virtio-mmio devices: windows, notifications as ioeventfds, interrupts as irqfds.
    for (const auto& placed : placements) {
        TRY(machine.mmio_bus.add(placed.base, placed.size, placed.device));
        for (const auto& event : placed.device->notify_events()) {
            if (event.offset >= placed.size)
                return Error("virtio device notify offset outside its window");
            TRY(machine.vm.register_ioeventfd(event.fd, kvm::AddressSpace::Mmio,
                                              placed.base + event.offset, 4, event.datamatch));
        }
        TRY(machine.vm.register_irqfd(placed.device->irq_fd(), placed.irq));
        placed.device->attach_memory(machine.memory);  // start() follows in Vm::run
        machine.devices.push_back(placed.device);
    }

    phase("devices");

    // 5. What the vCPU starts on: a kernel with its zero page, or a flat test binary.
    BootEntry entry{};
    if (kernel_image) {
        TRY(loader::load_kernel(machine.memory, *kernel_source, *kernel_image));
        auto initrd =
            TRY(loader::load_initrds(machine.memory, m_initrds, kernel_image->end,
                                     layout.low_ram_end(), kernel_image->initrd_address_max));
        TRY(cmdline.write(
            machine.memory, x86::kCmdlineAddress,
            std::min<uint32_t>(kernel_image->cmdline_limit, x86::kCmdlineMaxSize - 1)));
        x86::BootParamsConfig params;
        params.header = kernel_image->header;
        params.cmdline_size = static_cast<uint32_t>(cmdline.size());
        params.initrd_address = initrd.address;
        params.initrd_size = initrd.size;
        params.e820 = layout.e820();
        TRY(x86::write_boot_params(machine.memory, params));
        entry = {kernel_image->entry, x86::kZeroPageAddress};
        log::debug("kernel {} entry {:#x}, initramfs {:#x}+{}, command line: {}", m_kernel_path,
                   entry.rip, initrd.address, initrd.size, cmdline.str());
    } else {
        if (m_flat_address < x86::kHighMemoryStart)
            return Error("flat binary must load at or above 1 MiB");
        TRY(machine.memory.write(m_flat_address, m_flat_code));
        entry = {m_flat_address, 0};
    }

    phase("load");

    // 6. Identity page tables over all RAM and the MMIO hole, the boot GDT, the MP table.
    uint64_t cr3 = TRY(x86::write_identity_page_tables(
        machine.memory, std::max(layout.ram_top(), x86::kMmioHoleEnd)));
    TRY(x86::write_gdt(machine.memory));
    TRY(x86::write_mp_table(machine.memory, m_vcpus));

    // 7. vCPUs: CPUID per vCPU; the bootstrap processor starts at the entry in long mode, the
    //    others wait for INIT/SIPI in the in-kernel local APIC.
    phase("tables");
    auto supported = TRY(machine.system.supported_cpuid());
    for (uint32_t i = 0; i < m_vcpus; ++i) {
        auto vcpu = TRY(machine.vm.create_vcpu(i));
        TRY(vcpu.set_cpuid(x86::cpuid_for_vcpu(supported, host, i, m_vcpus)));
        TRY(set_boot_msrs(vcpu, i));
        if (i == 0) {
            TRY(vcpu.set_special_registers(x86::long_mode_registers(cr3)));
            kvm::Registers regs;
            regs.rip = entry.rip;
            regs.rsi = entry.rsi;
            regs.rsp = x86::kBootStackTop;
            regs.rflags = 2;  // bit 1 is reserved and must be set
            TRY(vcpu.set_registers(regs));
        }
        machine.vcpus.push_back(std::move(vcpu));
    }
    phase("vcpus");
    if (machine.timing) {
        std::string detail;
        for (const auto& [name, ns] : phases)
            detail += fmt::format(" {}_ms={:.3f}", name, ns / 1e6);
        (void)std::fprintf(stderr, "msb-timing: build_ms=%.3f started_monotonic_ns=%llu%s\n",
                           double(monotonic_ns() - started) / 1e6,
                           static_cast<unsigned long long>(started), detail.c_str());
    }
    return Vm(std::move(m));
}

}  // namespace msb::vmm
