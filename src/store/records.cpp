// Sandbox / run / metric records; see records.h.
#include "store/records.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <array>
#include <utility>

#include "base/time.h"

namespace msb::store {

namespace {

template <typename E, size_t N>
std::optional<E> parse_enum(const std::array<std::string_view, N>& names, std::string_view text) {
    for (size_t i = 0; i < N; ++i) {
        if (names[i] == text) return static_cast<E>(i);
    }
    return std::nullopt;
}

constexpr std::array<std::string_view, 5> kSandboxStatusNames = {"Running", "Draining", "Paused",
                                                                 "Stopped", "Crashed"};
constexpr std::array<std::string_view, 2> kRunStatusNames = {"Running", "Terminated"};
constexpr std::array<std::string_view, 7> kTerminationReasonNames = {
    "Completed",      "Failed", "MaxDurationExceeded", "IdleTimeout",
    "DrainRequested", "Signal", "InternalError"};

constexpr std::string_view kSandboxColumns = "id, name, config, status, created_at, updated_at";
constexpr std::string_view kRunColumns =
    "id, sandbox_id, pid, status, exit_code, exit_signal, termination_reason, "
    "termination_detail, signals_sent, started_at, terminated_at";
constexpr std::string_view kMetricColumns =
    "id, sandbox_id, cpu_percent, memory_bytes, disk_read_bytes, disk_write_bytes, net_rx_bytes, "
    "net_tx_bytes, sampled_at, created_at";

std::optional<int32_t> optional_i32(const std::optional<int64_t>& value) {
    if (!value) return std::nullopt;
    return static_cast<int32_t>(*value);
}

Result<SandboxRecord> read_sandbox(const Statement& st) {
    SandboxRecord record;
    record.id = st.column_int64(0);
    record.name = st.column_text(1);
    record.config = st.column_text(2);
    std::string status = st.column_text(3);
    auto parsed = parse_sandbox_status(status);
    if (!parsed) {
        return Error(fmt::format("sandbox '{}' has an unknown status '{}'", record.name, status));
    }
    record.status = *parsed;
    record.created_at = st.column_optional_text(4);
    record.updated_at = st.column_optional_text(5);
    return record;
}

Result<RunRecord> read_run(const Statement& st) {
    RunRecord record;
    record.id = st.column_int64(0);
    record.sandbox_id = st.column_int64(1);
    record.pid = st.column_optional_int64(2);
    std::string status = st.column_text(3);
    auto parsed = parse_run_status(status);
    if (!parsed) return Error(fmt::format("run #{} has an unknown status '{}'", record.id, status));
    record.status = *parsed;
    record.exit_code = optional_i32(st.column_optional_int64(4));
    record.exit_signal = optional_i32(st.column_optional_int64(5));
    if (auto reason = st.column_optional_text(6)) {
        auto parsed_reason = parse_termination_reason(*reason);
        if (!parsed_reason) {
            return Error(
                fmt::format("run #{} has an unknown termination reason '{}'", record.id, *reason));
        }
        record.termination_reason = *parsed_reason;
    }
    record.termination_detail = st.column_optional_text(7);
    record.signals_sent = st.column_optional_text(8);
    record.started_at = st.column_optional_text(9);
    record.terminated_at = st.column_optional_text(10);
    return record;
}

MetricRecord read_metric(const Statement& st) {
    MetricRecord record;
    record.id = st.column_int64(0);
    record.sandbox_id = st.column_int64(1);
    record.sample.cpu_percent = st.column_optional_double(2);
    record.sample.memory_bytes = st.column_optional_int64(3);
    record.sample.disk_read_bytes = st.column_optional_int64(4);
    record.sample.disk_write_bytes = st.column_optional_int64(5);
    record.sample.net_rx_bytes = st.column_optional_int64(6);
    record.sample.net_tx_bytes = st.column_optional_int64(7);
    record.sample.sampled_at = st.column_optional_text(8);
    record.created_at = st.column_optional_text(9);
    return record;
}

// Runs a prepared query and collects every row through `read`.
template <typename Read>
auto collect(Statement& st, Read read)
    -> Result<std::vector<std::decay_t<decltype(read(st).value())>>> {
    std::vector<std::decay_t<decltype(read(st).value())>> rows;
    while (TRY(st.step()) == Step::Row) rows.push_back(TRY(read(st)));
    return rows;
}

// Like collect() for queries returning at most one row.
template <typename Read>
auto first(Statement& st, Read read)
    -> Result<std::optional<std::decay_t<decltype(read(st).value())>>> {
    using Row = std::decay_t<decltype(read(st).value())>;
    if (TRY(st.step()) == Step::Done) return std::optional<Row>();
    return std::optional<Row>(TRY(read(st)));
}

}  // namespace

std::string_view to_string(SandboxStatus status) {
    return kSandboxStatusNames[static_cast<size_t>(status)];
}
std::string_view to_string(RunStatus status) {
    return kRunStatusNames[static_cast<size_t>(status)];
}
std::string_view to_string(TerminationReason reason) {
    return kTerminationReasonNames[static_cast<size_t>(reason)];
}
std::optional<SandboxStatus> parse_sandbox_status(std::string_view text) {
    return parse_enum<SandboxStatus>(kSandboxStatusNames, text);
}
std::optional<RunStatus> parse_run_status(std::string_view text) {
    return parse_enum<RunStatus>(kRunStatusNames, text);
}
std::optional<TerminationReason> parse_termination_reason(std::string_view text) {
    return parse_enum<TerminationReason>(kTerminationReasonNames, text);
}

// --- sandbox ------------------------------------------------------------------------------------

Result<int64_t> create_sandbox(Database& db, std::string_view name, std::string_view config_json,
                               SandboxStatus status) {
    Statement st =
        TRY(db.prepare("INSERT INTO sandbox (name, config, status, created_at, updated_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?4)"));
    TRY(st.bind(1, name));
    TRY(st.bind(2, config_json));
    TRY(st.bind(3, to_string(status)));
    TRY(st.bind(4, sql_timestamp_now()));
    auto done = st.step();
    if (!done.ok()) {
        if (sqlite3_extended_errcode(db.handle()) == SQLITE_CONSTRAINT_UNIQUE) {
            return Error(fmt::format("sandbox '{}' already exists", name), EEXIST);
        }
        return done.error().with_context(fmt::format("create sandbox '{}'", name));
    }
    return db.last_insert_rowid();
}

Result<std::optional<SandboxRecord>> find_sandbox(Database& db, std::string_view name) {
    Statement st =
        TRY(db.prepare(fmt::format("SELECT {} FROM sandbox WHERE name = ?1", kSandboxColumns)));
    TRY(st.bind(1, name));
    return first(st, read_sandbox);
}

Result<std::optional<SandboxRecord>> find_sandbox_by_id(Database& db, int64_t id) {
    Statement st =
        TRY(db.prepare(fmt::format("SELECT {} FROM sandbox WHERE id = ?1", kSandboxColumns)));
    TRY(st.bind(1, id));
    return first(st, read_sandbox);
}

Result<SandboxRecord> get_sandbox(Database& db, std::string_view name) {
    auto record = TRY(find_sandbox(db, name));
    if (!record) return Error(fmt::format("sandbox '{}' not found", name), ENOENT);
    return std::move(*record);
}

Result<SandboxRecord> get_sandbox_by_id(Database& db, int64_t id) {
    auto record = TRY(find_sandbox_by_id(db, id));
    if (!record) return Error(fmt::format("sandbox #{} not found", id), ENOENT);
    return std::move(*record);
}

Result<std::vector<SandboxRecord>> list_sandboxes(Database& db, SandboxFilter filter) {
    Statement st = TRY(db.prepare(
        filter == SandboxFilter::RunningOnly
            ? fmt::format("SELECT {} FROM sandbox WHERE status = ?1 ORDER BY name", kSandboxColumns)
            : fmt::format("SELECT {} FROM sandbox ORDER BY name", kSandboxColumns)));
    if (filter == SandboxFilter::RunningOnly) TRY(st.bind(1, to_string(SandboxStatus::Running)));
    return collect(st, read_sandbox);
}

namespace {

// Runs an UPDATE/DELETE on one sandbox row and reports a missing row.
Status change_sandbox(Database& db, Statement& st, int64_t id, std::string_view what) {
    auto done = st.run();
    if (!done) return done.error().with_context(fmt::format("{} sandbox #{}", what, id));
    if (db.changes() == 0) return Error(fmt::format("sandbox #{} not found", id), ENOENT);
    return {};
}

}  // namespace

Status update_sandbox_status(Database& db, int64_t id, SandboxStatus status) {
    Statement st = TRY(db.prepare("UPDATE sandbox SET status = ?1, updated_at = ?2 WHERE id = ?3"));
    TRY(st.bind(1, to_string(status)));
    TRY(st.bind(2, sql_timestamp_now()));
    TRY(st.bind(3, id));
    return change_sandbox(db, st, id, "update status of");
}

Status update_sandbox_config(Database& db, int64_t id, std::string_view config_json) {
    Statement st = TRY(db.prepare("UPDATE sandbox SET config = ?1, updated_at = ?2 WHERE id = ?3"));
    TRY(st.bind(1, config_json));
    TRY(st.bind(2, sql_timestamp_now()));
    TRY(st.bind(3, id));
    return change_sandbox(db, st, id, "update config of");
}

Status delete_sandbox(Database& db, int64_t id) {
    Statement st = TRY(db.prepare("DELETE FROM sandbox WHERE id = ?1"));
    TRY(st.bind(1, id));
    return change_sandbox(db, st, id, "delete");
}

Status mark_sandbox_crashed(Database& db, int64_t sandbox_id, std::string_view detail) {
    return db.transaction(TransactionKind::Immediate, [&]() -> Status {
        const std::string now = sql_timestamp_now();
        Statement runs = TRY(db.prepare(
            "UPDATE run SET status = ?1, termination_reason = ?2, termination_detail = ?3, "
            "terminated_at = ?4 WHERE sandbox_id = ?5 AND status = ?6"));
        TRY(runs.bind(1, to_string(RunStatus::Terminated)));
        TRY(runs.bind(2, to_string(TerminationReason::InternalError)));
        TRY(runs.bind(3, detail));
        TRY(runs.bind(4, now));
        TRY(runs.bind(5, sandbox_id));
        TRY(runs.bind(6, to_string(RunStatus::Running)));
        TRY(runs.run());
        Statement sandbox =
            TRY(db.prepare("UPDATE sandbox SET status = ?1, updated_at = ?2 WHERE id = ?3"));
        TRY(sandbox.bind(1, to_string(SandboxStatus::Crashed)));
        TRY(sandbox.bind(2, now));
        TRY(sandbox.bind(3, sandbox_id));
        return change_sandbox(db, sandbox, sandbox_id, "mark crashed");
    });
}

// --- run ----------------------------------------------------------------------------------------

Result<int64_t> insert_run(Database& db, int64_t sandbox_id, int64_t pid) {
    Statement st = TRY(db.prepare(
        "INSERT INTO run (sandbox_id, pid, status, started_at) VALUES (?1, ?2, ?3, ?4)"));
    TRY(st.bind(1, sandbox_id));
    TRY(st.bind(2, pid));
    TRY(st.bind(3, to_string(RunStatus::Running)));
    TRY(st.bind(4, sql_timestamp_now()));
    auto done = st.run();
    if (!done)
        return done.error().with_context(fmt::format("insert run of sandbox #{}", sandbox_id));
    return db.last_insert_rowid();
}

Status finalize_run(Database& db, int64_t run_id, const RunOutcome& outcome) {
    Statement st = TRY(db.prepare(
        "UPDATE run SET status = ?1, exit_code = ?2, exit_signal = ?3, termination_reason = ?4, "
        "termination_detail = ?5, terminated_at = ?6 WHERE id = ?7"));
    TRY(st.bind(1, to_string(RunStatus::Terminated)));
    TRY(st.bind(2, outcome.exit_code));
    TRY(st.bind(3, outcome.exit_signal));
    TRY(st.bind(4, to_string(outcome.reason)));
    TRY(st.bind(5, outcome.detail));
    TRY(st.bind(6, sql_timestamp_now()));
    TRY(st.bind(7, run_id));
    auto done = st.run();
    if (!done) return done.error().with_context(fmt::format("finalise run #{}", run_id));
    if (db.changes() == 0) return Error(fmt::format("run #{} not found", run_id), ENOENT);
    return {};
}

Status set_run_signals_sent(Database& db, int64_t run_id, std::string_view signals) {
    Statement st = TRY(db.prepare("UPDATE run SET signals_sent = ?1 WHERE id = ?2"));
    TRY(st.bind(1, signals));
    TRY(st.bind(2, run_id));
    TRY(st.run());
    if (db.changes() == 0) return Error(fmt::format("run #{} not found", run_id), ENOENT);
    return {};
}

Result<std::optional<RunRecord>> find_run(Database& db, int64_t run_id) {
    Statement st = TRY(db.prepare(fmt::format("SELECT {} FROM run WHERE id = ?1", kRunColumns)));
    TRY(st.bind(1, run_id));
    return first(st, read_run);
}

Result<std::vector<RunRecord>> list_runs(Database& db, int64_t sandbox_id) {
    Statement st = TRY(db.prepare(
        fmt::format("SELECT {} FROM run WHERE sandbox_id = ?1 ORDER BY id", kRunColumns)));
    TRY(st.bind(1, sandbox_id));
    return collect(st, read_run);
}

Result<std::optional<RunRecord>> latest_run(Database& db, int64_t sandbox_id) {
    Statement st = TRY(db.prepare(fmt::format(
        "SELECT {} FROM run WHERE sandbox_id = ?1 ORDER BY id DESC LIMIT 1", kRunColumns)));
    TRY(st.bind(1, sandbox_id));
    return first(st, read_run);
}

// --- sandbox_metric
// -------------------------------------------------------------------------------

Result<int64_t> insert_metric(Database& db, int64_t sandbox_id, const MetricSample& sample) {
    Statement st = TRY(db.prepare(
        "INSERT INTO sandbox_metric (sandbox_id, cpu_percent, memory_bytes, disk_read_bytes, "
        "disk_write_bytes, net_rx_bytes, net_tx_bytes, sampled_at, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
    const std::string now = sql_timestamp_now();
    TRY(st.bind(1, sandbox_id));
    TRY(st.bind(2, sample.cpu_percent));
    TRY(st.bind(3, sample.memory_bytes));
    TRY(st.bind(4, sample.disk_read_bytes));
    TRY(st.bind(5, sample.disk_write_bytes));
    TRY(st.bind(6, sample.net_rx_bytes));
    TRY(st.bind(7, sample.net_tx_bytes));
    TRY(st.bind(8, sample.sampled_at ? *sample.sampled_at : now));
    TRY(st.bind(9, now));
    auto done = st.run();
    if (!done) {
        return done.error().with_context(fmt::format("insert metric of sandbox #{}", sandbox_id));
    }
    return db.last_insert_rowid();
}

Result<std::vector<MetricRecord>> list_metrics(Database& db, int64_t sandbox_id, size_t limit) {
    Statement st = TRY(db.prepare(
        fmt::format("SELECT {} FROM sandbox_metric WHERE sandbox_id = ?1 ORDER BY id DESC LIMIT ?2",
                    kMetricColumns)));
    TRY(st.bind(1, sandbox_id));
    TRY(st.bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX))));
    return collect(st, [](const Statement& s) -> Result<MetricRecord> { return read_metric(s); });
}

}  // namespace msb::store
