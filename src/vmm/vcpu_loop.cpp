// The vCPU exit loop: one screen that turns every KVM exit into a bus access or an ending.
#include <signal.h>

#include <fmt/format.h>

#include <cstdio>
#include <mutex>

#include "base/log.h"
#include "base/time.h"
#include "vmm/machine.h"

namespace msb::vmm {

namespace {

thread_local kvm::Vcpu* t_vcpu = nullptr;

void on_kick(int) {
    // Async-signal-safe: a byte store into kvm_run. KVM_RUN then returns EINTR at once, also
    // when the signal arrived just before the thread entered it.
    if (t_vcpu) t_vcpu->set_immediate_exit(true);
}

std::string hex_bytes(const uint8_t* bytes, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) out += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
    return out;
}

// One line describing an internal error: suberror, RIP and the bytes at RIP (from KVM when it
// supplied them, else read through the guest's page tables).
std::string describe_internal_error(const Machine& machine, const kvm::Vcpu& vcpu,
                                    const kvm::VcpuExit& exit) {
    std::string line =
        fmt::format("vCPU {}: KVM internal error, suberror {}", vcpu.id(), exit.suberror);
    auto regs = vcpu.registers();
    if (regs.ok()) line += fmt::format(", rip {:#x}", regs->rip);
    if (exit.instruction_size) {
        line += ", instruction bytes " + hex_bytes(exit.instruction.data(), exit.instruction_size);
    } else if (regs.ok()) {
        auto gpa = vcpu.translate(regs->rip);
        uint8_t bytes[15];
        if (gpa.ok() && machine.memory.read(*gpa, bytes).ok())
            line += ", bytes at rip " + hex_bytes(bytes, sizeof bytes);
    }
    if (!exit.internal_data.empty()) {
        line += ", data";
        for (uint64_t d : exit.internal_data) line += fmt::format(" {:#x}", d);
    }
    return line;
}

void end_vm(Machine& machine, ExitReason reason, int code, std::string detail) {
    if (reason != ExitReason::GuestExit) log::warn("{}", detail);
    machine.exit_state->request({reason, code, std::move(detail)});
}

}  // namespace

int kick_signal() { return SIGRTMIN; }

void install_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_handler = on_kick;
        sigemptyset(&action.sa_mask);
        action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
        ::sigaction(kick_signal(), &action, nullptr);
    });
}

void run_vcpu(Machine& machine, kvm::Vcpu& vcpu) {
    t_vcpu = &vcpu;
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, kick_signal());
    ::pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);

    bool first = true;
    while (!machine.stopping.load(std::memory_order_acquire)) {
        if (first && vcpu.id() == 0 && machine.timing) {
            uint64_t now = monotonic_ns();
            (void)std::fprintf(
                stderr, "msb-timing: first-kvm-run monotonic_ns=%llu build_to_run_ms=%.3f\n",
                static_cast<unsigned long long>(now), double(now - machine.build_started_ns) / 1e6);
        }
        first = false;
        kvm::VcpuExit exit = vcpu.run();
        switch (exit.kind) {
            case kvm::VcpuExit::Kind::Io:
                for (uint32_t i = 0; i < exit.count && exit.size; ++i) {
                    auto chunk = exit.data.subspan(size_t{i} * exit.size, exit.size);
                    if (exit.direction == kvm::Direction::Out)
                        machine.io_bus.write(exit.port, chunk);
                    else
                        machine.io_bus.read(exit.port, chunk);
                }
                break;
            case kvm::VcpuExit::Kind::Mmio:
                if (exit.direction == kvm::Direction::Out)
                    machine.mmio_bus.write(exit.address, exit.data);
                else
                    machine.mmio_bus.read(exit.address, exit.data);
                break;
            case kvm::VcpuExit::Kind::Interrupted:
                vcpu.set_immediate_exit(false);
                break;
            case kvm::VcpuExit::Kind::Hlt:
                return end_vm(machine, ExitReason::Halted, kExitCodeHalted,
                              fmt::format("vCPU {}: halted", vcpu.id()));
            case kvm::VcpuExit::Kind::Shutdown:
                return end_vm(machine, ExitReason::TripleFault, kExitCodeTripleFault,
                              fmt::format("vCPU {}: triple fault (KVM_EXIT_SHUTDOWN)", vcpu.id()));
            case kvm::VcpuExit::Kind::SystemEvent:
                return end_vm(
                    machine, ExitReason::GuestReset, kExitCodeGuestReset,
                    fmt::format("vCPU {}: system event {}", vcpu.id(), exit.system_event_type));
            case kvm::VcpuExit::Kind::InternalError:
                return end_vm(machine, ExitReason::InternalError, kExitCodeInternalError,
                              describe_internal_error(machine, vcpu, exit));
            case kvm::VcpuExit::Kind::FailEntry:
                return end_vm(machine, ExitReason::VmmError, kExitCodeVmmError,
                              fmt::format("vCPU {}: entry failed, hardware reason {:#x}", vcpu.id(),
                                          exit.hardware_reason));
            case kvm::VcpuExit::Kind::RunFailed:
                return end_vm(machine, ExitReason::VmmError, kExitCodeVmmError,
                              fmt::format("vCPU {}: {}", vcpu.id(),
                                          Error::from_errno("KVM_RUN", exit.error).message()));
            case kvm::VcpuExit::Kind::Unknown:
                return end_vm(
                    machine, ExitReason::VmmError, kExitCodeVmmError,
                    fmt::format("vCPU {}: unhandled KVM exit {}", vcpu.id(), exit.raw_reason));
        }
    }
}

}  // namespace msb::vmm
