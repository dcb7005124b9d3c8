// Records of the msb store: sandboxes, their runs (one per sandbox process) and metric samples,
// with the semantics of microsandbox 0.4.3 (ARCHITECTURE.md "Store").
//
//   int64_t id = TRY(create_sandbox(db, "web", config_json));      // status Running
//   int64_t run = TRY(insert_run(db, id, getpid()));
//   ...
//   TRY(finalize_run(db, run, {.exit_code = 0, .reason = TerminationReason::Completed}));
//   TRY(update_sandbox_status(db, id, SandboxStatus::Stopped));
//
// Enum values are stored as their exact names ("Running", "MaxDurationExceeded", ...);
// timestamps as TEXT "YYYY-MM-DD HH:MM:SS" UTC (sql_timestamp_now()).
// All functions take the caller's Database (one per thread/process) and bind every value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/database.h"

namespace msb::store {

enum class SandboxStatus { Running, Draining, Paused, Stopped, Crashed };
enum class RunStatus { Running, Terminated };
enum class TerminationReason {
    Completed,
    Failed,
    MaxDurationExceeded,
    IdleTimeout,
    DrainRequested,
    Signal,
    InternalError,
};

std::string_view to_string(SandboxStatus status);
std::string_view to_string(RunStatus status);
std::string_view to_string(TerminationReason reason);
// Exact (case-sensitive) names; nullopt for anything else.
std::optional<SandboxStatus> parse_sandbox_status(std::string_view text);
std::optional<RunStatus> parse_run_status(std::string_view text);
std::optional<TerminationReason> parse_termination_reason(std::string_view text);

struct SandboxRecord {
    int64_t id = 0;
    std::string name{};
    std::string config{};  // JSON
    SandboxStatus status = SandboxStatus::Running;
    std::optional<std::string> created_at{};
    std::optional<std::string> updated_at{};
};

struct RunRecord {
    int64_t id = 0;
    int64_t sandbox_id = 0;
    std::optional<int64_t> pid{};
    RunStatus status = RunStatus::Running;
    std::optional<int32_t> exit_code{};
    std::optional<int32_t> exit_signal{};
    std::optional<TerminationReason> termination_reason{};
    std::optional<std::string> termination_detail{};
    std::optional<std::string> signals_sent{};
    std::optional<std::string> started_at{};
    std::optional<std::string> terminated_at{};
};

// How a run ended (written by finalize_run).
struct RunOutcome {
    std::optional<int32_t> exit_code{};
    std::optional<int32_t> exit_signal{};
    TerminationReason reason = TerminationReason::Completed;
    std::optional<std::string> detail{};
};

struct MetricSample {
    std::optional<double> cpu_percent{};
    std::optional<int64_t> memory_bytes{};
    std::optional<int64_t> disk_read_bytes{};
    std::optional<int64_t> disk_write_bytes{};
    std::optional<int64_t> net_rx_bytes{};
    std::optional<int64_t> net_tx_bytes{};
    std::optional<std::string> sampled_at{};  // default: now
};

struct MetricRecord {
    int64_t id = 0;
    int64_t sandbox_id = 0;
    MetricSample sample{};
    std::optional<std::string> created_at{};
};

enum class SandboxFilter { All, RunningOnly };

// --- sandbox ------------------------------------------------------------------------------------

// Inserts a sandbox (created_at = updated_at = now) and returns its id.
// Error "sandbox 'x' already exists" when the name is taken.
Result<int64_t> create_sandbox(Database& db, std::string_view name, std::string_view config_json,
                               SandboxStatus status = SandboxStatus::Running);
// nullopt when there is no such sandbox.
Result<std::optional<SandboxRecord>> find_sandbox(Database& db, std::string_view name);
Result<std::optional<SandboxRecord>> find_sandbox_by_id(Database& db, int64_t id);
// Like find_*, but absence is an error "sandbox 'x' not found" / "sandbox #N not found".
Result<SandboxRecord> get_sandbox(Database& db, std::string_view name);
Result<SandboxRecord> get_sandbox_by_id(Database& db, int64_t id);
// Ordered by name.
Result<std::vector<SandboxRecord>> list_sandboxes(Database& db,
                                                  SandboxFilter filter = SandboxFilter::All);
// Sets status and updated_at; error if the sandbox does not exist.
Status update_sandbox_status(Database& db, int64_t id, SandboxStatus status);
Status update_sandbox_config(Database& db, int64_t id, std::string_view config_json);
// Deletes the sandbox and (ON DELETE CASCADE) its runs and metrics; error if absent.
Status delete_sandbox(Database& db, int64_t id);

// For a sandbox whose process died without running its exit observer (e.g. kill -9), found by
// the next CLI/SDK call: in one transaction, every Running run of it becomes Terminated with
// reason InternalError and `detail`, and the sandbox becomes Crashed.
Status mark_sandbox_crashed(Database& db, int64_t sandbox_id, std::string_view detail);

// --- run ----------------------------------------------------------------------------------------

// Inserts a Running run with `pid` and started_at = now; returns its id.
Result<int64_t> insert_run(Database& db, int64_t sandbox_id, int64_t pid);
// Sets status Terminated, the outcome and terminated_at = now; error if the run is absent.
Status finalize_run(Database& db, int64_t run_id, const RunOutcome& outcome);
// Records the signals sent to the sandbox process (free text, e.g. "SIGTERM,SIGKILL").
Status set_run_signals_sent(Database& db, int64_t run_id, std::string_view signals);
Result<std::optional<RunRecord>> find_run(Database& db, int64_t run_id);
// Oldest first.
Result<std::vector<RunRecord>> list_runs(Database& db, int64_t sandbox_id);
// The most recently inserted run, if any.
Result<std::optional<RunRecord>> latest_run(Database& db, int64_t sandbox_id);

// --- sandbox_metric
// -------------------------------------------------------------------------------

Result<int64_t> insert_metric(Database& db, int64_t sandbox_id, const MetricSample& sample);
// The newest `limit` samples, newest first.
Result<std::vector<MetricRecord>> list_metrics(Database& db, int64_t sandbox_id, size_t limit);

}  // namespace msb::store
