// Vm: running and stopping the threads of a built machine.
#include "vmm/vm.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include "base/log.h"
#include "vmm/machine.h"

namespace msb::vmm {

namespace {
constexpr auto kKickInterval = std::chrono::milliseconds(20);
constexpr auto kStopGrace = std::chrono::seconds(2);
}  // namespace

Vm::Vm(std::unique_ptr<Machine> machine) : m_machine(std::move(machine)) {}
Vm::Vm(Vm&&) noexcept = default;
Vm& Vm::operator=(Vm&&) noexcept = default;
Vm::~Vm() = default;

ExitHandle Vm::exit_handle() const { return ExitHandle(m_machine->exit_state); }

ExitStatus Vm::run() {
    Machine& m = *m_machine;
    if (m.ran) return {ExitReason::VmmError, kExitCodeVmmError, "Vm::run called twice"};
    m.ran = true;

    for (auto& device : m.devices) {
        Status started = device->start(m.loop);
        if (!started.ok()) {
            log::error("start device: {}", started.error().message());
            return {ExitReason::VmmError, kExitCodeVmmError,
                    "start device: " + started.error().message()};
        }
    }
    m.device_thread = std::thread([&m] {
        Status s = m.loop.run();
        if (!s.ok()) {
            log::error("device event loop: {}", s.error().message());
            m.exit_state->request({ExitReason::VmmError, kExitCodeVmmError,
                                   "device event loop: " + s.error().message()});
        }
    });

    install_kick_handler();
    // vCPU threads inherit this mask: the kick signal stays blocked everywhere except inside
    // run_vcpu, which unblocks it for its own thread.
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, kick_signal());
    ::pthread_sigmask(SIG_BLOCK, &block, &previous);
    m.vcpu_done = std::make_unique<std::atomic<bool>[]>(m.vcpus.size());
    for (size_t i = 0; i < m.vcpus.size(); ++i) {
        m.vcpu_threads.emplace_back([&m, i] {
            run_vcpu(m, m.vcpus[i]);
            m.vcpu_done[i].store(true, std::memory_order_release);
        });
    }
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);

    ExitStatus status = m.exit_state->wait();

    // Stop: raise the flag, then kick every vCPU until it leaves its loop or the grace ends.
    m.stopping.store(true, std::memory_order_release);
    auto deadline = std::chrono::steady_clock::now() + kStopGrace;
    for (;;) {
        bool all_done = true;
        for (size_t i = 0; i < m.vcpu_threads.size(); ++i) {
            if (m.vcpu_done[i].load(std::memory_order_acquire)) continue;
            all_done = false;
            ::pthread_kill(m.vcpu_threads[i].native_handle(), kick_signal());
        }
        if (all_done || std::chrono::steady_clock::now() >= deadline) break;
        std::this_thread::sleep_for(kKickInterval);
    }
    bool abandoned = false;
    for (size_t i = 0; i < m.vcpu_threads.size(); ++i) {
        if (m.vcpu_done[i].load(std::memory_order_acquire)) {
            m.vcpu_threads[i].join();
        } else {
            log::warn("vCPU {} did not leave KVM_RUN within {} s; abandoning it", i,
                      std::chrono::duration_cast<std::chrono::seconds>(kStopGrace).count());
            m.vcpu_threads[i].detach();
            abandoned = true;
        }
    }
    m.loop.stop();
    m.device_thread.join();
    if (m.serial) m.serial->flush();
    if (abandoned) {
        // A thread may still be inside KVM_RUN on this machine's vCPU and memory: never free them.
        [[maybe_unused]] Machine* leaked = m_machine.release();
        m_machine = nullptr;
    }
    return status;
}

void Vm::enter() {
    std::vector<std::function<void(int)>> observers = m_machine->observers;
    ExitStatus status = run();
    log::info("VM exit: {} (code {}){}{}", to_string(status.reason), status.code,
              status.detail.empty() ? "" : ": ", status.detail);
    for (auto& observer : observers) observer(status.code);
    ::_exit(status.code);
}

}  // namespace msb::vmm
