// Database: the move-only owner of one SQLite connection to the msb store (~/.msb/msb.db), and
// Statement: a prepared statement with typed binds, so no SQL is ever assembled from user data.
//
//   Database db = TRY(Database::open(home + "/msb.db"));      // creates dirs, migrates
//   Statement st = TRY(db.prepare("SELECT id FROM sandbox WHERE name = ?1"));
//   TRY(st.bind(1, name));
//   while (TRY(st.step()) == Step::Row) ids.push_back(st.column_int64(0));
//
// Every connection runs with journal_mode=WAL, busy_timeout (default 5000 ms, as 0.4.3's
// SQLITE_PRAGMAS) and foreign_keys=ON. open() applies the schema migrations (schema.h) inside
// BEGIN IMMEDIATE, so any number of processes may open the same file concurrently.
//
// Threading: a Database (and its Statements) is used by one thread at a time; give each thread
// or process its own Database. Statements must not outlive the Database that prepared them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace msb::store {

struct DatabaseOptions {
    // How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
    std::chrono::milliseconds busy_timeout{5000};
    // Whether open() applies the schema migrations (off only for tests of the migrator).
    enum class Migrate { Yes, No } migrate = Migrate::Yes;
};

enum class Step { Row, Done };

class Statement {
public:
    Statement() = default;
    ~Statement();
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Parameters are 1-based (?1, ?2, ...). std::nullopt binds NULL.
    Status bind(int index, int64_t value);
    Status bind(int index, double value);
    Status bind(int index, std::string_view text);
    Status bind_null(int index);
    template <typename T>
    Status bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind_null(index);
    }
    Status bind(int index, int32_t value) { return bind(index, static_cast<int64_t>(value)); }
    Status bind(int index, const std::string& text) { return bind(index, std::string_view(text)); }
    Status bind(int index, const char* text) { return bind(index, std::string_view(text)); }

    // Runs the statement to its next row (Row) or to completion (Done).
    Result<Step> step();
    // Runs a statement that returns no rows (or ignores them) to completion.
    Status run();
    // Resets for another execution with new binds.
    Status reset();

    // Columns are 0-based. REQUIRES: the last step() returned Row.
    bool column_is_null(int column) const;
    int64_t column_int64(int column) const;
    double column_double(int column) const;
    std::string column_text(int column) const;  // "" for NULL
    std::optional<int64_t> column_optional_int64(int column) const;
    std::optional<double> column_optional_double(int column) const;
    std::optional<std::string> column_optional_text(int column) const;

private:
    friend class Database;
    Statement(sqlite3_stmt* statement, sqlite3* db) : m_statement(statement), m_db(db) {}
    Error error(std::string_view what, int rc) const;

    sqlite3_stmt* m_statement = nullptr;
    sqlite3* m_db = nullptr;  // not owned
};

enum class TransactionKind { Deferred, Immediate };

class Database {
public:
    // Opens (creating the file and its parent directories) and migrates `path`.
    static Result<Database> open(const std::string& path, const DatabaseOptions& options = {});

    Database() = default;
    ~Database();
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    // REQUIRES: `sql` is a single statement with ?N placeholders for all variable data.
    Result<Statement> prepare(std::string_view sql);
    // Runs constant SQL (possibly several statements). Never pass user data here.
    Status exec(std::string_view sql);

    // Runs `body` inside BEGIN [IMMEDIATE] … COMMIT; rolls back if it returns an error.
    Status transaction(TransactionKind kind, const std::function<Status()>& body);

    int64_t last_insert_rowid() const;
    // Rows changed by the most recent INSERT/UPDATE/DELETE.
    int64_t changes() const;
    // PRAGMA user_version: the applied schema version.
    Result<int> schema_version();

    const std::string& path() const { return m_path; }
    sqlite3* handle() const { return m_db; }

private:
    Database(sqlite3* db, std::string path) : m_db(db), m_path(std::move(path)) {}
    Error error(std::string_view what, int rc) const;

    sqlite3* m_db = nullptr;
    std::string m_path;
};

}  // namespace msb::store
