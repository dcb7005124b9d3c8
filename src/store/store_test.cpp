// Store: migrations, records, constraint errors, cascade, and concurrent writers.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/database.h"
#include "store/records.h"
#include "store/schema.h"

namespace msb::store {
namespace {

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/msb-store-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        m_dir = pattern;
        m_path = m_dir + "/nested/dir/msb.db";
    }
    void TearDown() override { std::filesystem::remove_all(m_dir); }

    Database open_db() {
        auto db = Database::open(m_path);
        EXPECT_TRUE(db.ok()) << db.error().message();
        return std::move(db).value();
    }

    static int64_t count(Database& db, const char* table) {
        auto st = db.prepare(std::string("SELECT COUNT(*) FROM ") + table);
        EXPECT_TRUE(st.ok());
        EXPECT_EQ(st->step().value_or(Step::Done), Step::Row);
        return st->column_int64(0);
    }

    std::string m_dir;
    std::string m_path;
};

TEST_F(StoreTest, OpenCreatesTheParentDirectoryAndAppliesTheSchema) {
    Database db = open_db();
    EXPECT_TRUE(std::filesystem::exists(m_path));
    auto version = db.schema_version();
    ASSERT_TRUE(version.ok());
    EXPECT_EQ(version.value(), latest_schema_version());
    EXPECT_EQ(count(db, "sandbox"), 0);
    EXPECT_EQ(count(db, "run"), 0);
    EXPECT_EQ(count(db, "sandbox_metric"), 0);
}

TEST_F(StoreTest, ConnectionUsesWalForeignKeysAndTheBusyTimeout) {
    auto db =
        Database::open(m_path, DatabaseOptions{.busy_timeout = std::chrono::milliseconds(1234)});
    ASSERT_TRUE(db.ok());
    auto pragma = [&](const char* sql) {
        auto st = db->prepare(sql);
        EXPECT_TRUE(st.ok());
        EXPECT_EQ(st->step().value_or(Step::Done), Step::Row);
        return st->column_text(0);
    };
    EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(pragma("PRAGMA foreign_keys"), "1");
    EXPECT_EQ(pragma("PRAGMA busy_timeout"), "1234");
}

TEST_F(StoreTest, MigratingTwiceIsANoOp) {
    {
        auto raw = Database::open(m_path, DatabaseOptions{.migrate = DatabaseOptions::Migrate::No});
        ASSERT_TRUE(raw.ok());
        EXPECT_EQ(raw->schema_version().value_or(-1), 0);
        ASSERT_TRUE(migrate(raw.value()).ok());
        EXPECT_EQ(raw->schema_version().value_or(-1), latest_schema_version());
        ASSERT_TRUE(create_sandbox(raw.value(), "kept", "{}").ok());
        ASSERT_TRUE(migrate(raw.value()).ok());
    }
    Database db = open_db();  // migrates again on open
    ASSERT_TRUE(migrate(db).ok());
    EXPECT_EQ(db.schema_version().value_or(-1), latest_schema_version());
    EXPECT_EQ(count(db, "sandbox"), 1) << "data survives repeated migration";
    auto st = db.prepare("SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'index')");
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st->step().value_or(Step::Done), Step::Row);
    const int64_t objects = st->column_int64(0);
    ASSERT_TRUE(migrate(db).ok());
    ASSERT_TRUE(st->reset().ok());
    ASSERT_EQ(st->step().value_or(Step::Done), Step::Row);
    EXPECT_EQ(st->column_int64(0), objects);
}

TEST_F(StoreTest, SandboxCreateGetListUpdateDelete) {
    Database db = open_db();
    auto a = create_sandbox(db, "alpha", R"({"cpus":1})");
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto b = create_sandbox(db, "beta", "{}", SandboxStatus::Stopped);
    ASSERT_TRUE(b.ok());
    EXPECT_NE(a.value(), b.value());

    auto alpha = get_sandbox(db, "alpha");
    ASSERT_TRUE(alpha.ok());
    EXPECT_EQ(alpha->id, a.value());
    EXPECT_EQ(alpha->config, R"({"cpus":1})");
    EXPECT_EQ(alpha->status, SandboxStatus::Running);
    ASSERT_TRUE(alpha->created_at.has_value());
    EXPECT_EQ(alpha->created_at->size(), 19u) << *alpha->created_at;  // "YYYY-MM-DD HH:MM:SS"
    EXPECT_EQ(alpha->created_at, alpha->updated_at);

    auto by_id = get_sandbox_by_id(db, b.value());
    ASSERT_TRUE(by_id.ok());
    EXPECT_EQ(by_id->name, "beta");
    EXPECT_EQ(by_id->status, SandboxStatus::Stopped);

    auto missing = get_sandbox(db, "gamma");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(), "sandbox 'gamma' not found");
    auto found = find_sandbox(db, "gamma");
    ASSERT_TRUE(found.ok());
    EXPECT_FALSE(found->has_value());

    auto all = list_sandboxes(db);
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0].name, "alpha");
    auto running = list_sandboxes(db, SandboxFilter::RunningOnly);
    ASSERT_TRUE(running.ok());
    ASSERT_EQ(running->size(), 1u);
    EXPECT_EQ((*running)[0].name, "alpha");

    ASSERT_TRUE(update_sandbox_status(db, a.value(), SandboxStatus::Draining).ok());
    EXPECT_EQ(get_sandbox(db, "alpha")->status, SandboxStatus::Draining);
    ASSERT_TRUE(update_sandbox_config(db, a.value(), R"({"cpus":2})").ok());
    EXPECT_EQ(get_sandbox(db, "alpha")->config, R"({"cpus":2})");
    EXPECT_FALSE(update_sandbox_status(db, 9999, SandboxStatus::Stopped).ok());

    ASSERT_TRUE(delete_sandbox(db, a.value()).ok());
    EXPECT_FALSE(find_sandbox(db, "alpha")->has_value());
    auto again = delete_sandbox(db, a.value());
    ASSERT_FALSE(again.ok());
    EXPECT_TRUE(again.error().message().find("not found") != std::string::npos);
}

TEST_F(StoreTest, DuplicateSandboxNameIsAClearError) {
    Database db = open_db();
    ASSERT_TRUE(create_sandbox(db, "x", "{}").ok());
    auto dup = create_sandbox(db, "x", "{}");
    ASSERT_FALSE(dup.ok());
    EXPECT_EQ(dup.error().message(), "sandbox 'x' already exists");
    EXPECT_EQ(dup.error().code(), EEXIST);
    EXPECT_EQ(count(db, "sandbox"), 1);
}

TEST_F(StoreTest, UserDataIsBoundNeverSpliced) {
    Database db = open_db();
    const std::string evil = "x'); DROP TABLE sandbox; --";
    ASSERT_TRUE(create_sandbox(db, evil, "{\"q\":\"'\"}").ok());
    auto record = get_sandbox(db, evil);
    ASSERT_TRUE(record.ok()) << record.error().message();
    EXPECT_EQ(record->name, evil);
    EXPECT_EQ(count(db, "sandbox"), 1);
}

TEST_F(StoreTest, RunsAreInsertedRunningAndFinalisedWithTheirOutcome) {
    Database db = open_db();
    int64_t sandbox = create_sandbox(db, "s", "{}").value_or(0);
    ASSERT_GT(sandbox, 0);
    EXPECT_FALSE(latest_run(db, sandbox)->has_value());

    auto first_run = insert_run(db, sandbox, 1111);
    ASSERT_TRUE(first_run.ok());
    auto run = find_run(db, first_run.value());
    ASSERT_TRUE(run.ok() && run->has_value());
    EXPECT_EQ((*run)->status, RunStatus::Running);
    EXPECT_EQ((*run)->pid, 1111);
    EXPECT_TRUE((*run)->started_at.has_value());
    EXPECT_FALSE((*run)->terminated_at.has_value());
    EXPECT_FALSE((*run)->termination_reason.has_value());

    ASSERT_TRUE(finalize_run(db, first_run.value(),
                             RunOutcome{.exit_code = 137,
                                        .exit_signal = 9,
                                        .reason = TerminationReason::MaxDurationExceeded,
                                        .detail = "max duration 5s exceeded"})
                    .ok());
    ASSERT_TRUE(set_run_signals_sent(db, first_run.value(), "SIGTERM,SIGKILL").ok());
    auto second_run = insert_run(db, sandbox, 2222);
    ASSERT_TRUE(second_run.ok());

    auto runs = list_runs(db, sandbox);
    ASSERT_TRUE(runs.ok());
    ASSERT_EQ(runs->size(), 2u);
    const RunRecord& done = (*runs)[0];
    EXPECT_EQ(done.status, RunStatus::Terminated);
    EXPECT_EQ(done.exit_code, 137);
    EXPECT_EQ(done.exit_signal, 9);
    EXPECT_EQ(done.termination_reason, TerminationReason::MaxDurationExceeded);
    EXPECT_EQ(done.termination_detail, "max duration 5s exceeded");
    EXPECT_EQ(done.signals_sent, "SIGTERM,SIGKILL");
    EXPECT_TRUE(done.terminated_at.has_value());

    auto latest = latest_run(db, sandbox);
    ASSERT_TRUE(latest.ok() && latest->has_value());
    EXPECT_EQ((*latest)->id, second_run.value());

    // Stored as the exact enum names.
    auto st = db.prepare("SELECT termination_reason, status FROM run WHERE id = ?1");
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(st->bind(1, first_run.value()).ok());
    ASSERT_EQ(st->step().value_or(Step::Done), Step::Row);
    EXPECT_EQ(st->column_text(0), "MaxDurationExceeded");
    EXPECT_EQ(st->column_text(1), "Terminated");

    EXPECT_FALSE(finalize_run(db, 424242, RunOutcome{}).ok());
    EXPECT_FALSE(insert_run(db, 424242, 1).ok()) << "foreign key to a missing sandbox";
}

TEST_F(StoreTest, MetricsAreListedNewestFirstAndLimited) {
    Database db = open_db();
    int64_t sandbox = create_sandbox(db, "m", "{}").value_or(0);
    for (int i = 0; i < 10; ++i) {
        MetricSample sample;
        sample.cpu_percent = i * 1.5;
        sample.memory_bytes = int64_t{1} << (20 + i);
        if (i % 2 == 0) sample.net_rx_bytes = i;
        ASSERT_TRUE(insert_metric(db, sandbox, sample).ok());
    }
    auto latest = list_metrics(db, sandbox, 3);
    ASSERT_TRUE(latest.ok());
    ASSERT_EQ(latest->size(), 3u);
    EXPECT_DOUBLE_EQ((*latest)[0].sample.cpu_percent.value_or(-1), 13.5);
    EXPECT_EQ((*latest)[0].sample.memory_bytes, int64_t{1} << 29);
    EXPECT_FALSE((*latest)[0].sample.net_rx_bytes.has_value());
    EXPECT_EQ((*latest)[1].sample.net_rx_bytes, 8);
    EXPECT_TRUE((*latest)[0].sample.sampled_at.has_value());
    EXPECT_GT((*latest)[0].id, (*latest)[1].id);
    EXPECT_EQ(list_metrics(db, sandbox, 100)->size(), 10u);
}

TEST_F(StoreTest, DeletingASandboxCascadesToRunsAndMetrics) {
    Database db = open_db();
    int64_t keep = create_sandbox(db, "keep", "{}").value_or(0);
    int64_t drop = create_sandbox(db, "drop", "{}").value_or(0);
    for (int64_t id : {keep, drop}) {
        ASSERT_TRUE(insert_run(db, id, 1).ok());
        ASSERT_TRUE(insert_run(db, id, 2).ok());
        ASSERT_TRUE(insert_metric(db, id, MetricSample{}).ok());
    }
    ASSERT_TRUE(delete_sandbox(db, drop).ok());
    EXPECT_EQ(count(db, "run"), 2);
    EXPECT_EQ(count(db, "sandbox_metric"), 1);
    EXPECT_EQ(list_runs(db, drop)->size(), 0u);
    EXPECT_EQ(list_runs(db, keep)->size(), 2u);
}

TEST_F(StoreTest, MarkingACrashedSandboxTerminatesItsOpenRunsOnly) {
    Database db = open_db();
    int64_t sandbox = create_sandbox(db, "c", "{}").value_or(0);
    int64_t finished = insert_run(db, sandbox, 1).value_or(0);
    ASSERT_TRUE(finalize_run(db, finished, RunOutcome{.exit_code = 0}).ok());
    int64_t open_run = insert_run(db, sandbox, 2).value_or(0);
    ASSERT_TRUE(mark_sandbox_crashed(db, sandbox, "sandbox process 2 is gone").ok());
    EXPECT_EQ(get_sandbox_by_id(db, sandbox)->status, SandboxStatus::Crashed);
    auto crashed = find_run(db, open_run);
    ASSERT_TRUE(crashed.ok() && crashed->has_value());
    EXPECT_EQ((*crashed)->status, RunStatus::Terminated);
    EXPECT_EQ((*crashed)->termination_reason, TerminationReason::InternalError);
    EXPECT_EQ((*crashed)->termination_detail, "sandbox process 2 is gone");
    auto done = find_run(db, finished);
    ASSERT_TRUE(done.ok() && done->has_value());
    EXPECT_EQ((*done)->termination_reason, TerminationReason::Completed);
    EXPECT_FALSE((*done)->termination_detail.has_value());
    // A missing sandbox is an error and changes nothing.
    EXPECT_FALSE(mark_sandbox_crashed(db, 9999, "x").ok());
}

TEST_F(StoreTest, EnumNamesRoundTrip) {
    for (auto s : {SandboxStatus::Running, SandboxStatus::Draining, SandboxStatus::Paused,
                   SandboxStatus::Stopped, SandboxStatus::Crashed}) {
        EXPECT_EQ(parse_sandbox_status(to_string(s)), s);
    }
    for (auto r : {TerminationReason::Completed, TerminationReason::Failed,
                   TerminationReason::MaxDurationExceeded, TerminationReason::IdleTimeout,
                   TerminationReason::DrainRequested, TerminationReason::Signal,
                   TerminationReason::InternalError}) {
        EXPECT_EQ(parse_termination_reason(to_string(r)), r);
    }
    EXPECT_EQ(to_string(TerminationReason::IdleTimeout), "IdleTimeout");
    EXPECT_EQ(to_string(RunStatus::Terminated), "Terminated");
    EXPECT_FALSE(parse_sandbox_status("running").has_value());
    EXPECT_FALSE(parse_termination_reason("").has_value());
}

TEST_F(StoreTest, ConcurrentWritersInThreadsLoseNoRows) {
    int64_t sandbox = 0;
    {
        Database db = open_db();
        sandbox = create_sandbox(db, "shared", "{}").value_or(0);
    }
    constexpr int kThreads = 4;
    constexpr int kRowsEach = 100;
    std::vector<std::string> failures(kThreads);
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                auto db = Database::open(m_path);
                if (!db.ok()) {
                    failures[t] = db.error().message();
                    return;
                }
                for (int i = 0; i < kRowsEach; ++i) {
                    auto run = insert_run(db.value(), sandbox, t * 1000 + i);
                    auto metric =
                        insert_metric(db.value(), sandbox, MetricSample{.cpu_percent = 1.0});
                    auto name = create_sandbox(
                        db.value(), "t" + std::to_string(t) + "-" + std::to_string(i), "{}");
                    if (!run.ok()) failures[t] = run.error().message();
                    if (!metric.ok()) failures[t] = metric.error().message();
                    if (!name.ok()) failures[t] = name.error().message();
                }
            });
        }
    }
    for (const auto& failure : failures) EXPECT_EQ(failure, "");
    Database db = open_db();
    EXPECT_EQ(count(db, "run"), kThreads * kRowsEach);
    EXPECT_EQ(count(db, "sandbox_metric"), kThreads * kRowsEach);
    EXPECT_EQ(count(db, "sandbox"), 1 + kThreads * kRowsEach);
}

TEST_F(StoreTest, ConcurrentProcessesMigrateAndInsertWithoutLosingRows) {
    // The database does not exist yet: every child races to create and migrate it.
    constexpr int kProcesses = 4;
    constexpr int kRowsEach = 50;
    std::vector<pid_t> children;
    for (int p = 0; p < kProcesses; ++p) {
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto db = Database::open(m_path);
            if (!db.ok()) ::_exit(10);
            // Every child creates the shared sandbox or finds it created by another.
            auto created = create_sandbox(db.value(), "shared", "{}");
            int64_t sandbox = created.ok() ? created.value() : 0;
            if (!created.ok()) {
                auto existing = get_sandbox(db.value(), "shared");
                if (!existing.ok()) ::_exit(11);
                sandbox = existing->id;
            }
            for (int i = 0; i < kRowsEach; ++i) {
                if (!insert_run(db.value(), sandbox, ::getpid()).ok()) ::_exit(12);
                if (!insert_metric(db.value(), sandbox, MetricSample{}).ok()) ::_exit(13);
            }
            ::_exit(0);
        }
        children.push_back(pid);
    }
    for (pid_t child : children) {
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        EXPECT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed at step " << WEXITSTATUS(status);
    }
    Database db = open_db();
    EXPECT_EQ(count(db, "sandbox"), 1);
    EXPECT_EQ(count(db, "run"), kProcesses * kRowsEach);
    EXPECT_EQ(count(db, "sandbox_metric"), kProcesses * kRowsEach);
    EXPECT_EQ(db.schema_version().value_or(-1), latest_schema_version());
}

}  // namespace
}  // namespace msb::store
