// How a VM ends, and the process exit code each ending maps to (documented in docs/vmm.md).
//
// ExitHandle is the one way for any thread to end a running VM:
//   ExitHandle handle = vm.exit_handle();    // copyable, thread-safe
//   handle.trigger(kExitCodeIdleTimeout);    // the first request wins; later ones are ignored
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace msb::vmm {

enum class ExitReason {
    GuestExit,      // the guest kernel wrote init's wait status to the exit port (0x4f0)
    GuestReset,     // i8042 reset (0xfe to port 0x64) or a KVM reset event, without a status
    TripleFault,    // KVM_EXIT_SHUTDOWN
    InternalError,  // KVM_EXIT_INTERNAL_ERROR (e.g. an instruction the host cannot emulate)
    Halted,         // every vCPU stopped with HLT and nothing can wake it (no in-kernel irqchip)
    VmmError,       // KVM_RUN failed, entry failed or an exit we do not understand
    Triggered,      // ExitHandle::trigger() from the host side
};

std::string to_string(ExitReason reason);

// Exit codes for endings that carry no status of the guest's own. A guest's init can exit with
// any 0–255 value, so these are chosen high and rare, not unique; ExitStatus.reason is exact.
inline constexpr int kExitCodeGuestReset = 240;
inline constexpr int kExitCodeTripleFault = 241;
inline constexpr int kExitCodeInternalError = 242;
inline constexpr int kExitCodeHalted = 243;
inline constexpr int kExitCodeVmmError = 244;

struct ExitStatus {
    ExitReason reason;
    int code;
    std::string detail;  // one line for logs: the status word, the faulting RIP and bytes…
};

// Init's raw wait status (as the kernel writes it to the exit port) → shell-style exit code:
// exited with N → N; killed by signal S → 128 + S.
int exit_code_from_wait_status(uint32_t status);

// Shared by the Vm and every ExitHandle copy.
class ExitState {
public:
    // Records `status` if nothing was recorded yet; returns whether it was recorded.
    bool request(ExitStatus status);
    bool requested() const;
    // Blocks until a status is recorded.
    ExitStatus wait();

private:
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::optional<ExitStatus> m_status;  // GUARDED_BY(m_mutex)
};

class ExitHandle {
public:
    explicit ExitHandle(std::shared_ptr<ExitState> state) : m_state(std::move(state)) {}
    // Ends the VM with `code` (reason Triggered). Thread-safe; not async-signal-safe.
    void trigger(int code) const {
        m_state->request({ExitReason::Triggered, code, "triggered by the host"});
    }

private:
    std::shared_ptr<ExitState> m_state;
};

}  // namespace msb::vmm
