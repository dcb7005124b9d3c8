// Schema migrations; see schema.h.
#include "store/schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

#include "store/database.h"

namespace msb::store {

namespace {

// Migration N (1-based) is kMigrations[N - 1]. Never edit a released entry; append a new one.
constexpr std::array<std::string_view, 1> kMigrations = {
    // 1: sandbox, run, sandbox_metric.
    R"sql(
CREATE TABLE IF NOT EXISTS sandbox (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    config      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    created_at  TEXT,
    updated_at  TEXT
);
CREATE TABLE IF NOT EXISTS run (
    id                  INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    sandbox_id          INTEGER NOT NULL REFERENCES sandbox (id) ON DELETE CASCADE,
    pid                 INTEGER,
    status              TEXT    NOT NULL,
    exit_code           INTEGER,
    exit_signal         INTEGER,
    termination_reason  TEXT,
    termination_detail  TEXT,
    signals_sent        TEXT,
    started_at          TEXT,
    terminated_at       TEXT
);
CREATE TABLE IF NOT EXISTS sandbox_metric (
    id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    sandbox_id        INTEGER NOT NULL REFERENCES sandbox (id) ON DELETE CASCADE,
    cpu_percent       REAL,
    memory_bytes      INTEGER,
    disk_read_bytes   INTEGER,
    disk_write_bytes  INTEGER,
    net_rx_bytes      INTEGER,
    net_tx_bytes      INTEGER,
    sampled_at        TEXT,
    created_at        TEXT
);
CREATE INDEX IF NOT EXISTS idx_sandbox_metrics_sandbox_sampled
    ON sandbox_metric (sandbox_id, sampled_at);
CREATE INDEX IF NOT EXISTS idx_run_sandbox ON run (sandbox_id);
CREATE INDEX IF NOT EXISTS idx_sandbox_status ON sandbox (status);
)sql",
};

}  // namespace

int latest_schema_version() { return static_cast<int>(kMigrations.size()); }

Status migrate(Database& db) {
    // Fast path: nothing to do (no write lock taken).
    if (TRY(db.schema_version()) >= latest_schema_version()) return {};
    return db.transaction(TransactionKind::Immediate, [&]() -> Status {
        // Re-read under the write lock: another process may have migrated meanwhile.
        const int current = TRY(db.schema_version());
        for (int version = current + 1; version <= latest_schema_version(); ++version) {
            auto st = db.exec(kMigrations[static_cast<size_t>(version - 1)]);
            if (!st) return st.error().with_context(fmt::format("schema migration {}", version));
        }
        if (current < latest_schema_version()) {
            // PRAGMA takes no parameters; the value is our own constant.
            TRY(db.exec(fmt::format("PRAGMA user_version = {}", latest_schema_version())));
        }
        return {};
    });
}

}  // namespace msb::store
