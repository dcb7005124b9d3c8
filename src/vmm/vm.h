// Vm: a built microVM, ready to run. Made by VmBuilder (vm_builder.h).
//
//   Vm vm = TRY(builder.build());
//   ExitHandle handle = vm.exit_handle();   // give to watchers before entering
//   vm.enter();                             // never returns: observers run, then _exit(code)
//
// Threads while running: one per vCPU (each in the exit loop of vcpu_loop.cpp), one device
// event thread running the EventLoop every MmioDevice was started on, and the caller's thread,
// which waits for the exit request and then stops the others.
//
// Stopping: a vCPU thread is kicked out of KVM_RUN with a signal (kKickSignal) whose handler sets
// kvm_run.immediate_exit, so a kick that lands just before KVM_RUN is not lost. A vCPU that
// does not come back (the PVM host never returns from a VMCALL) is abandoned after a grace
// period: run() still returns, and the VM's resources are deliberately leaked because that
// thread may still touch them.
#pragma once

#include <functional>
#include <memory>

#include "base/result.h"
#include "vmm/exit_status.h"

namespace msb::vmm {

struct Machine;

class Vm {
public:
    Vm(Vm&&) noexcept;
    Vm& operator=(Vm&&) noexcept;
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;
    ~Vm();

    ExitHandle exit_handle() const;

    // Runs the guest until it exits or an exit is triggered; returns how it ended. Does not run
    // the observers. REQUIRES: called once.
    ExitStatus run();

    // run(), then every on_exit observer once (in registration order) with the exit code, then
    // _exit(code).
    [[noreturn]] void enter();

private:
    friend class VmBuilder;
    explicit Vm(std::unique_ptr<Machine> machine);

    std::unique_ptr<Machine> m_machine;
};

}  // namespace msb::vmm
