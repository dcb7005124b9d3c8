// SQLite connection and statement owners; see database.h.
#include "store/database.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cerrno>
#include <thread>

#include <filesystem>
#include <system_error>
#include <utility>

#include "store/schema.h"

namespace msb::store {

namespace {

Error sqlite_error(sqlite3* db, std::string_view what, int rc) {
    const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return Error(fmt::format("{}: {} (sqlite code {})", what, detail, rc));
}

}  // namespace

// --- Statement ----------------------------------------------------------------------------------

Statement::~Statement() {
    if (m_statement != nullptr) sqlite3_finalize(m_statement);
}

Statement::Statement(Statement&& other) noexcept
    : m_statement(std::exchange(other.m_statement, nullptr)),
      m_db(std::exchange(other.m_db, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
    if (this != &other) {
        if (m_statement != nullptr) sqlite3_finalize(m_statement);
        m_statement = std::exchange(other.m_statement, nullptr);
        m_db = std::exchange(other.m_db, nullptr);
    }
    return *this;
}

Error Statement::error(std::string_view what, int rc) const {
    const char* sql = m_statement != nullptr ? sqlite3_sql(m_statement) : "";
    return sqlite_error(m_db, fmt::format("{} [{}]", what, sql), rc);
}

Status Statement::bind(int index, int64_t value) {
    int rc = sqlite3_bind_int64(m_statement, index, value);
    if (rc != SQLITE_OK) return error(fmt::format("bind parameter {}", index), rc);
    return {};
}

Status Statement::bind(int index, double value) {
    int rc = sqlite3_bind_double(m_statement, index, value);
    if (rc != SQLITE_OK) return error(fmt::format("bind parameter {}", index), rc);
    return {};
}

Status Statement::bind(int index, std::string_view text) {
    int rc = sqlite3_bind_text64(m_statement, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) return error(fmt::format("bind parameter {}", index), rc);
    return {};
}

Status Statement::bind_null(int index) {
    int rc = sqlite3_bind_null(m_statement, index);
    if (rc != SQLITE_OK) return error(fmt::format("bind parameter {}", index), rc);
    return {};
}

Result<Step> Statement::step() {
    int rc = sqlite3_step(m_statement);
    if (rc == SQLITE_ROW) return Step::Row;
    if (rc == SQLITE_DONE) return Step::Done;
    // Leave the statement reusable; the error is in rc/errmsg.
    Error e = error("execute", rc);
    sqlite3_reset(m_statement);
    return e;
}

Status Statement::run() {
    while (TRY(step()) == Step::Row) {
    }
    return {};
}

Status Statement::reset() {
    sqlite3_reset(m_statement);
    int rc = sqlite3_clear_bindings(m_statement);
    if (rc != SQLITE_OK) return error("reset", rc);
    return {};
}

bool Statement::column_is_null(int column) const {
    return sqlite3_column_type(m_statement, column) == SQLITE_NULL;
}

int64_t Statement::column_int64(int column) const {
    return sqlite3_column_int64(m_statement, column);
}

double Statement::column_double(int column) const {
    return sqlite3_column_double(m_statement, column);
}

std::string Statement::column_text(int column) const {
    const unsigned char* text = sqlite3_column_text(m_statement, column);
    if (text == nullptr) return {};
    int size = sqlite3_column_bytes(m_statement, column);
    return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::optional<int64_t> Statement::column_optional_int64(int column) const {
    if (column_is_null(column)) return std::nullopt;
    return column_int64(column);
}

std::optional<double> Statement::column_optional_double(int column) const {
    if (column_is_null(column)) return std::nullopt;
    return column_double(column);
}

std::optional<std::string> Statement::column_optional_text(int column) const {
    if (column_is_null(column)) return std::nullopt;
    return column_text(column);
}

// --- Database -----------------------------------------------------------------------------------

Result<Database> Database::open(const std::string& path, const DatabaseOptions& options) {
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec)
            return Error::from_errno("create database directory " + parent.string(), ec.value());
    }

    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    Database db(raw, path);  // owns the handle even when open failed
    if (rc != SQLITE_OK) return sqlite_error(raw, "open database " + path, rc);
    sqlite3_extended_result_codes(raw, 1);

    // busy_timeout first, so that switching to WAL waits for other openers instead of failing.
    rc = sqlite3_busy_timeout(raw, static_cast<int>(options.busy_timeout.count()));
    if (rc != SQLITE_OK) return db.error("set busy_timeout on " + path, rc);
    // Switching to WAL takes an exclusive lock and SQLite may answer SQLITE_BUSY without
    // waiting in the busy handler while another opener does the same: retry, bounded.
    Status wal = db.exec("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;");
    for (int attempt = 0; !wal && wal.error().code() == EBUSY && attempt < 50; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * attempt));
        wal = db.exec("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;");
    }
    TRY(std::move(wal));
    if (options.migrate == DatabaseOptions::Migrate::Yes) {
        // SQLite does not always wait in the busy handler (e.g. while another opener switches
        // the file to WAL), so a crowd of processes opening a fresh store at once can see
        // SQLITE_BUSY early: retry for a bounded while, as the busy handler would have.
        auto st = migrate(db);
        for (int attempt = 0; !st && st.error().code() == EBUSY && attempt < 50; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * attempt));
            st = migrate(db);
        }
        if (!st) return st.error().with_context("migrate " + path);
    }
    return db;
}

Database::~Database() {
    if (m_db != nullptr) sqlite3_close_v2(m_db);
}

Database::Database(Database&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_path(std::move(other.m_path)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        if (m_db != nullptr) sqlite3_close_v2(m_db);
        m_db = std::exchange(other.m_db, nullptr);
        m_path = std::move(other.m_path);
    }
    return *this;
}

Error Database::error(std::string_view what, int rc) const { return sqlite_error(m_db, what, rc); }

Result<Statement> Database::prepare(std::string_view sql) {
    sqlite3_stmt* statement = nullptr;
    int rc =
        sqlite3_prepare_v2(m_db, sql.data(), static_cast<int>(sql.size()), &statement, nullptr);
    if (rc != SQLITE_OK) return error(fmt::format("prepare [{}]", sql), rc);
    return Statement(statement, m_db);
}

Status Database::exec(std::string_view sql) {
    std::string text(sql);
    char* message = nullptr;
    int rc = sqlite3_exec(m_db, text.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        // EBUSY lets callers tell "another connection holds the lock" from real failures.
        return Error(fmt::format("execute [{}]: {} (sqlite code {})", sql, detail, rc),
                     (rc & 0xff) == SQLITE_BUSY ? EBUSY : 0);
    }
    return {};
}

Status Database::transaction(TransactionKind kind, const std::function<Status()>& body) {
    TRY(exec(kind == TransactionKind::Immediate ? "BEGIN IMMEDIATE" : "BEGIN"));
    Status st = body();
    if (!st) {
        (void)exec("ROLLBACK");
        return st;
    }
    Status committed = exec("COMMIT");
    if (!committed) {
        (void)exec("ROLLBACK");
        return committed;
    }
    return {};
}

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(m_db); }

int64_t Database::changes() const { return sqlite3_changes64(m_db); }

Result<int> Database::schema_version() {
    Statement st = TRY(prepare("PRAGMA user_version"));
    if (TRY(st.step()) != Step::Row) return Error("read PRAGMA user_version: no row");
    return static_cast<int>(st.column_int64(0));
}

}  // namespace msb::store
