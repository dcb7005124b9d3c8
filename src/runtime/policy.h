// Sandbox lifecycle policy and the small pure decisions the sandbox process makes around it.
//
// - SandboxPolicy: microsandbox 0.4.3's crates/runtime/lib/policy.rs — the optional hard cap on
//   lifetime and the optional idle timeout, serialised as JSON
//   {"max_duration_secs": u64|null, "idle_timeout_secs": u64|null}.
// - termination_reason_for(): the exit observer's mapping of (guest exit code, what triggered
//   the exit) to the run's TerminationReason (seed vm.rs, the on_exit closure).
// - ExitTriggerSlot: where watchers record what triggered the exit before triggering it.
// - validate_disk_format / append_block_root_env / prepend_scripts_path: seed vm.rs helpers.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/records.h"

namespace msb::runtime {

struct SandboxPolicy {
    std::optional<uint64_t> max_duration_secs{};  // nullopt: run forever
    std::optional<uint64_t> idle_timeout_secs{};  // nullopt: no idle detection
};

// {"max_duration_secs":3600,"idle_timeout_secs":null} (fields in this order).
std::string policy_to_json(const SandboxPolicy& policy);
// Absent or null fields are nullopt; unknown fields are ignored; a negative, fractional or
// non-numeric value is an error. Never throws.
Result<SandboxPolicy> parse_policy_json(std::string_view json);

// What made the VM exit. None: the guest powered off by itself.
enum class ExitTrigger : uint8_t {
    None,
    IdleTimeout,
    MaxDuration,
    Signal,         // SIGTERM/SIGINT to the sandbox process, or a network secret violation
    Drain,          // a client asked for shutdown (core.shutdown)
    InternalError,  // the sandbox process itself failed (device thread, relay, ...)
};

// IdleTimeout → IdleTimeout, MaxDuration → MaxDurationExceeded, Signal → Signal, as the seed;
// otherwise exit code 0 → Completed, anything else → Failed. Extensions over the seed (which
// has only the first three tags and records a client shutdown as Completed/Failed):
// Drain → DrainRequested, InternalError → InternalError.
store::TerminationReason termination_reason_for(int exit_code, ExitTrigger trigger);

// The shared "exit reason" cell. Watchers call record() just before triggering the exit; the
// exit observer reads trigger(). The first trigger recorded wins (the seed's AtomicU8 lets a
// later store overwrite an earlier one; the first is what actually ended the VM).
// Thread-safe.
class ExitTriggerSlot {
public:
    // Returns true if this call set the trigger.
    bool record(ExitTrigger trigger);
    ExitTrigger trigger() const;

private:
    std::atomic<uint8_t> m_value{static_cast<uint8_t>(ExitTrigger::None)};
};

enum class DiskFormat { Raw, Qcow2, Vmdk };

// nullopt → Raw; "raw" | "qcow2" | "vmdk"; anything else → Error
// "unknown disk image format: <text>" (EINVAL).
Result<DiskFormat> validate_disk_format(std::optional<std::string_view> format);
std::string_view disk_format_name(DiskFormat format);

// Adds MSB_BLOCK_ROOT=/dev/vda unless some entry already sets MSB_BLOCK_ROOT.
void append_block_root_env(std::vector<std::string>& env);

// Puts /.msb/scripts first on the guest PATH: an existing PATH= entry gets it prepended unless
// one of its segments already is /.msb/scripts; without a PATH entry, appends
// PATH=/.msb/scripts:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
void prepend_scripts_path(std::vector<std::string>& env);

}  // namespace msb::runtime
