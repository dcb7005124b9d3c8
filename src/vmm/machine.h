// Machine: everything a running VM owns, in one heap object whose address stays put while
// vCPU and device threads refer to it. Internal to src/vmm.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "kvm/guest_memory.h"
#include "kvm/system.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "virtio/mmio_device.h"
#include "vmm/bus.h"
#include "vmm/exit_status.h"
#include "vmm/legacy_devices.h"
#include "vmm/serial.h"

namespace msb::vmm {

struct Machine {
    Machine(kvm::System s, kvm::Vm v, kvm::GuestMemory mem, EventLoop l)
        : system(std::move(s)), memory(std::move(mem)), vm(std::move(v)), loop(std::move(l)) {}

    kvm::System system;
    kvm::GuestMemory memory;  // declared before vm: the VM's memory slots go away first
    kvm::Vm vm;
    std::vector<kvm::Vcpu> vcpus;

    UniqueFd console_file;
    std::unique_ptr<Serial> serial;
    std::unique_ptr<I8042> i8042;
    std::unique_ptr<ExitPort> exit_port;
    IoBus io_bus;
    MmioBus mmio_bus;
    std::vector<std::shared_ptr<virtio::MmioDevice>> devices;
    EventLoop loop;

    std::shared_ptr<ExitState> exit_state = std::make_shared<ExitState>();
    std::vector<std::function<void(int)>> observers;
    bool timing = false;
    uint64_t build_started_ns = 0;

    // Run state.
    std::atomic<bool> stopping{false};
    std::unique_ptr<std::atomic<bool>[]> vcpu_done;
    std::vector<std::thread> vcpu_threads;
    std::thread device_thread;
    bool ran = false;
};

// The exit loop of one vCPU thread (vcpu_loop.cpp). Returns when the VM is stopping or this
// vCPU ended it.
void run_vcpu(Machine& machine, kvm::Vcpu& vcpu);

// Installs the kick signal handler (idempotent).
void install_kick_handler();
// The signal used to kick a vCPU thread out of KVM_RUN.
int kick_signal();

}  // namespace msb::vmm
