// The msb CLI driven as a user would: the binary with arguments, against a private MSB_HOME.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "sdk/util.h"
#include "store/database.h"
#include "store/records.h"

namespace {

namespace fs = std::filesystem;

struct Output {
    int code = -1;
    std::string out, err;
};

bool have_kvm() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/msb-cli-XXXXXX";
        home = ::mkdtemp(tmpl);
    }
    void TearDown() override {
        // A test that stopped early may have left sandboxes running: stop them with the store.
        if (fs::exists(home + "/msb.db")) {
            std::stringstream names(msb("ls -q").out);
            for (std::string name; std::getline(names, name);)
                if (!name.empty()) (void)msb("rm -f " + name);
        }
        fs::remove_all(home);
    }

    // Runs `msb args` with MSB_HOME=home; stdin from /dev/null. `ready_timeout`: how long a
    // boot may take (MSB_TEST_READY_TIMEOUT overrides it, e.g. under emulated KVM).
    Output msb(const std::string& args, const std::string& ready_timeout = "600s") {
        std::string errfile = home + "/.stderr." + std::to_string(::gettid());
        const char* ready = std::getenv("MSB_TEST_READY_TIMEOUT");
        std::string cmd = "MSB_HOME='" + home +
                          "' MSB_READY_TIMEOUT=" + (ready ? std::string(ready) : ready_timeout) +
                          " " MSB_BINARY_DIR "/msb " + args + " </dev/null 2>" + errfile;
        Output o;
        FILE* p = ::popen(cmd.c_str(), "r");
        std::array<char, 4096> buf;
        size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
        int status = ::pclose(p);
        o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        std::ifstream e(errfile);
        o.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
        fs::remove(errfile);
        return o;
    }

    static size_t lines(const std::string& s) {
        return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
    }

    // A failed command: one line on stderr, starting with "msb: ", non-zero exit.
    void expect_one_line_error(const Output& o, const std::string& needle) {
        EXPECT_NE(o.code, 0);
        EXPECT_EQ(lines(o.err), 1u) << o.err;
        EXPECT_EQ(o.err.rfind("msb: ", 0), 0u) << o.err;
        EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
    }

    // Nothing left behind: no sandbox rows, no sandbox directories, no sockets.
    void expect_empty_state() {
        auto db = MUST(msb::store::Database::open(home + "/msb.db"));
        EXPECT_TRUE(MUST(msb::store::list_sandboxes(db)).empty());
        if (fs::exists(home + "/sandboxes")) {
            EXPECT_TRUE(fs::is_empty(home + "/sandboxes"));
        }
        if (fs::exists(home + "/run")) {
            EXPECT_TRUE(fs::is_empty(home + "/run"));
        }
    }

    int64_t insert_row(const std::string& name) {
        auto db = MUST(msb::store::Database::open(home + "/msb.db"));
        auto id = MUST(msb::store::create_sandbox(
            db, name,
            R"({"name":")" + name + R"(","cpus":1,"memory_mib":256,"idle_timeout_secs":2})",
            msb::store::SandboxStatus::Stopped));
        fs::create_directories(home + "/sandboxes/" + name + "/logs");
        return id;
    }

    std::string home;
};

TEST_F(Cli, EveryCommandHasHelpWithExamples) {
    for (const char* c : {"run", "create", "start", "stop", "rm", "ls", "ps", "exec", "logs",
                          "metrics", "inspect", "cp", "completion"}) {
        auto o = msb(std::string(c) + " --help");
        EXPECT_EQ(o.code, 0) << c;
        EXPECT_NE(o.out.find("Example"), std::string::npos) << c;
    }
}

TEST_F(Cli, UnknownSandboxIsOneClearLine) {
    expect_one_line_error(msb("inspect nosuch"), "sandbox 'nosuch' not found");
    expect_one_line_error(msb("exec nosuch -- true"), "not found");
    expect_one_line_error(msb("rm nosuch"), "not found");
    expect_one_line_error(msb("logs nosuch"), "not found");
}

TEST_F(Cli, BadInputsFailCleanlyAndLeaveNothingBehind) {
    expect_one_line_error(msb("create -m lots"), "invalid memory size 'lots'");
    expect_one_line_error(msb("run -m 12X -- true"), "invalid memory size");
    expect_one_line_error(msb("create --rootfs /does/not/exist"),
                          "rootfs directory /does/not/exist does not exist");
    expect_one_line_error(msb("create -v nocolon"), "invalid volume 'nocolon'");
    expect_one_line_error(msb("create -v /tmp:relative"), "invalid volume");
    expect_one_line_error(msb("create --name Bad_Name"), "invalid sandbox name");
    expect_one_line_error(msb("create --idle-timeout soon"), "invalid duration");
    expect_one_line_error(msb("create --disk /nope.img"), "disk image /nope.img does not exist");
    // Repeatable flags take one value each: `--` still ends the options, so the command's own
    // `-c` is not read as --cpus (the memory error proves parsing got past them).
    expect_one_line_error(msb("run -v /tmp:/a -e X=1 --tmpfs /t -m 12X -- sh -c true"),
                          "invalid memory size");
    expect_empty_state();
}

TEST_F(Cli, DuplicateNameIsAClearError) {
    insert_row("dup");
    auto o = msb("create --name dup");
    expect_one_line_error(o, "sandbox 'dup' already exists");
    EXPECT_NE(o.err.find("msb rm dup"), std::string::npos);
    auto db = MUST(msb::store::Database::open(home + "/msb.db"));
    EXPECT_EQ(MUST(msb::store::list_sandboxes(db)).size(), 1u);
}

TEST_F(Cli, ListInspectAndRemoveWorkOnStoreRows) {
    insert_row("alpha");
    insert_row("beta");
    auto ls = msb("ls");
    EXPECT_EQ(ls.code, 0);
    EXPECT_NE(ls.out.find("alpha"), std::string::npos);
    EXPECT_NE(ls.out.find("Stopped"), std::string::npos);
    EXPECT_EQ(msb("ls --running").out.find("alpha"), std::string::npos);
    EXPECT_EQ(msb("ps").out.find("beta"), std::string::npos);
    auto json = nlohmann::json::parse(msb("ls --format json").out);
    ASSERT_EQ(json.size(), 2u);
    EXPECT_EQ(json[0]["name"], "alpha");
    auto inspect = nlohmann::json::parse(msb("inspect alpha").out);
    EXPECT_EQ(inspect["status"], "Stopped");
    EXPECT_EQ(inspect["config"]["idle_timeout_secs"], 2);
    EXPECT_EQ(inspect["dir"], home + "/sandboxes/alpha");
    auto rm = msb("rm alpha");
    EXPECT_EQ(rm.code, 0) << rm.err;
    EXPECT_FALSE(fs::exists(home + "/sandboxes/alpha"));
    EXPECT_EQ(msb("ls -q").out, "beta\n");
}

TEST_F(Cli, KilledSandboxProcessIsRepairedAsCrashed) {
    int64_t id = insert_row("ghost");
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    ::waitpid(child, nullptr, 0);  // a pid that is certainly gone
    {
        auto db = MUST(msb::store::Database::open(home + "/msb.db"));
        MUST(msb::store::update_sandbox_status(db, id, msb::store::SandboxStatus::Running));
        MUST(msb::store::insert_run(db, id, child));
    }
    auto ls = msb("ls");
    EXPECT_NE(ls.out.find("Crashed"), std::string::npos) << ls.out;
    auto inspect = nlohmann::json::parse(msb("inspect ghost").out);
    EXPECT_EQ(inspect["status"], "Crashed");
    EXPECT_EQ(inspect["latest_run"]["status"], "Terminated");
    EXPECT_EQ(inspect["latest_run"]["termination_reason"], "InternalError");
    EXPECT_EQ(inspect["latest_run"]["termination_detail"], "sandbox process vanished");
    EXPECT_TRUE(inspect["pid"].is_null());
}

TEST_F(Cli, LogsReadAcrossRotatedFiles) {
    insert_row("logged");
    std::string dir = home + "/sandboxes/logged/logs/";
    std::ofstream(dir + "host.log.2") << "one\n";
    std::ofstream(dir + "host.log.1") << "two\n";
    std::ofstream(dir + "host.log") << "three\nfour\n";
    std::ofstream(dir + "guest.log") << "guest says hi\n";
    EXPECT_EQ(msb("logs logged --source host").out, "one\ntwo\nthree\nfour\n");
    EXPECT_EQ(msb("logs logged --source host --tail 2").out, "three\nfour\n");
    EXPECT_EQ(msb("logs logged").out, "guest says hi\n");
}

TEST_F(Cli, CompletionScriptIsBash) {
    auto o = msb("completion bash");
    EXPECT_EQ(o.code, 0);
    EXPECT_NE(o.out.find("complete -F _msb msb"), std::string::npos);
}

TEST_F(Cli, RunWithoutKvmFailsWithOneLineAndLeavesNothing) {
    if (have_kvm()) GTEST_SKIP() << "/dev/kvm present: covered by the VM tests";
    auto o = msb("run -- true");
    expect_one_line_error(o, "cannot start sandbox");
    EXPECT_NE(o.err.find("/dev/kvm"), std::string::npos) << o.err;
    expect_empty_state();
    // A named one that never got running is removed too.
    auto named = msb("create --name keepme");
    expect_one_line_error(named, "/dev/kvm");
    expect_empty_state();
}

TEST_F(Cli, ParallelCreatesKeepNamesUniqueAndLoseNoRows) {
    // Six `msb create` processes at once on three names. With KVM exactly one per name wins.
    // Without KVM each either loses the name race ("already exists") or fails at boot and
    // cleans up after itself; either way one line each and nothing left behind. (Three names,
    // not more: every winner boots a guest, and on the PVM host each boot is a minute of CPU;
    // with other tests' guests on the same two cores a boot can take ten, hence 20 minutes.)
    constexpr int kNames = 3;
    std::vector<std::thread> threads;
    std::vector<Output> results(2 * kNames);
    for (int i = 0; i < 2 * kNames; i++)
        threads.emplace_back(
            [&, i] { results[i] = msb("create --name p" + std::to_string(i % kNames), "1200s"); });
    for (auto& t : threads) t.join();
    if (have_kvm()) {
        int ok = 0;
        std::string errors;
        for (auto& r : results) {
            ok += r.code == 0;
            errors += r.err;
        }
        EXPECT_EQ(ok, kNames) << errors;  // one winner per name
        auto json = nlohmann::json::parse(msb("ls --format json").out);
        EXPECT_EQ(json.size(), size_t{kNames});
        for (int i = 0; i < kNames; i++) (void)msb("rm -f p" + std::to_string(i));
        return;
    }
    for (auto& r : results) {
        EXPECT_NE(r.code, 0);
        EXPECT_EQ(lines(r.err), 1u) << r.err;
        bool kvm = r.err.find("/dev/kvm") != std::string::npos;
        bool dup = r.err.find("already exists") != std::string::npos;
        EXPECT_TRUE(kvm || dup) << r.err;
    }
    expect_empty_state();
}

TEST_F(Cli, ParallelRowInsertsThroughTheStoreLoseNothing) {
    // Ten processes inserting rows into one MSB_HOME at once (what ten `msb create` do before
    // booting); `msb ls` must then see all ten.
    std::vector<pid_t> kids;
    for (int i = 0; i < 10; i++) {
        pid_t p = ::fork();
        if (p == 0) {
            auto db = msb::store::Database::open(home + "/msb.db");
            if (!db.ok()) ::_exit(1);
            auto id = msb::store::create_sandbox(*db, "par" + std::to_string(i), "{}",
                                                 msb::store::SandboxStatus::Stopped);
            ::_exit(id.ok() ? 0 : 1);
        }
        kids.push_back(p);
    }
    for (pid_t p : kids) {
        int status = 0;
        ::waitpid(p, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    auto json = nlohmann::json::parse(msb("ls --format json").out);
    EXPECT_EQ(json.size(), 10u);
}

// --- needs a VM ------------------------------------------------------------------------------

TEST_F(Cli, RunPassesTheExitCodeThrough) {
    if (!have_kvm()) GTEST_SKIP() << "/dev/kvm absent on this machine: no VM can run";
    auto o = msb("run -- sh -c 'echo hi; exit 7'");
    EXPECT_EQ(o.code, 7) << o.err;
    EXPECT_EQ(o.out, "hi\n");
    expect_empty_state();
}

// `msb run -t` from a terminal: the guest command gets a PTY of the terminal's size, and the
// exit code comes back through it.
TEST_F(Cli, RunWithATtyGivesTheCommandAPtyOfTheTerminalsSize) {
    if (!have_kvm()) GTEST_SKIP() << "/dev/kvm absent on this machine: no VM can run";
    winsize ws{};
    ws.ws_row = 33;
    ws.ws_col = 77;
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
    ASSERT_GE(pid, 0) << "forkpty: " << std::strerror(errno);
    if (pid == 0) {
        ::setenv("MSB_HOME", home.c_str(), 1);
        ::setenv("MSB_READY_TIMEOUT", "600s", 1);
        ::execl(MSB_BINARY_DIR "/msb", "msb", "run", "-t", "--", "sh", "-c",
                "tty; stty size; exit 5", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    std::string seen;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EIO once the child side is closed
        seen.append(buf, static_cast<size_t>(n));
    }
    ::close(master);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << status << "\n" << seen;
    EXPECT_NE(seen.find("/dev/pts/"), std::string::npos) << seen;
    EXPECT_NE(seen.find("33 77"), std::string::npos) << seen;
    expect_empty_state();
}

// `--idle-timeout 2s`: shown in the config, and a sandbox nobody uses stops by itself with
// IdleTimeout as its run's termination reason.
TEST_F(Cli, IdleTimeoutStopsAnUnusedSandboxAndInspectSaysWhy) {
    if (!have_kvm()) GTEST_SKIP() << "/dev/kvm absent on this machine: no VM can run";
    auto created = msb("create --name idler --idle-timeout 2s -m 128M");
    ASSERT_EQ(created.code, 0) << created.err;
    nlohmann::json inspect;
    // Ready → idle 2 s → the guest powers off; generous for a loaded software-KVM host.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    for (;;) {
        inspect = nlohmann::json::parse(msb("inspect idler").out);
        if (inspect["status"] != "Running" || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    EXPECT_EQ(inspect["config"]["idle_timeout_secs"], 2) << inspect.dump(2);
    EXPECT_EQ(inspect["status"], "Stopped") << inspect.dump(2);
    EXPECT_EQ(inspect["latest_run"]["termination_reason"], "IdleTimeout") << inspect.dump(2);
    EXPECT_EQ(msb("rm idler").code, 0);
    expect_empty_state();
}

// Ten `msb run` at once against one MSB_HOME: every one boots its own sandbox, gets its own
// output and exit code, and cleans up. On the PVM host ten guests share two cores, and each
// guest's timer tick is emulated too: at 100 Hz the ten took 474 s on one such host and did not
// all get ready in 1200 s on another (the guests logged RCU stalls: ticks ate their share of
// the CPU). The guest kernel now ticks at 25 Hz: 316 s on the first host (2 Dec 2026), hence
// an 1800 s ready timeout. MSB_TEST_PARALLEL_RUNS overrides the count. DISABLED_ so that
// discovery only lists it: tests/cli/CMakeLists.txt registers it as a RUN_SERIAL test of its
// own, because its guests starve any other test's boot.
TEST_F(Cli, DISABLED_ParallelRunsAllSucceedAndLeaveNothing) {
    if (!have_kvm()) GTEST_SKIP() << "/dev/kvm absent on this machine: no VM can run";
    const char* count = std::getenv("MSB_TEST_PARALLEL_RUNS");
    const int kRuns = count && *count ? std::atoi(count) : 10;
    ASSERT_GE(kRuns, 1) << "MSB_TEST_PARALLEL_RUNS must be at least 1";
    std::vector<std::thread> threads;
    std::vector<Output> results(kRuns);
    for (int i = 0; i < kRuns; i++) {
        threads.emplace_back([&, i] {
            results[i] = msb("run -m 128M -- sh -c 'echo run-" + std::to_string(i) + "; exit " +
                                 std::to_string(i) + "'",
                             "1800s");
        });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kRuns; i++) {
        EXPECT_EQ(results[i].code, i) << "run " << i << ": " << results[i].err;
        EXPECT_EQ(results[i].out, "run-" + std::to_string(i) + "\n") << results[i].err;
        // A run that failed names its guest log: its last lines say how far the guest got.
        const std::string see = "see ";
        if (auto at = results[i].err.rfind(see); results[i].code != i && at != std::string::npos) {
            std::string path = results[i].err.substr(at + see.size());
            path = path.substr(0, path.find_first_of(" \n"));
            std::string text;
            for (const auto& line : msb::sdk::tail_rotated_log(path, 15)) text += line + "\n";
            ADD_FAILURE() << "run " << i << ": the end of " << path << ":\n" << text;
        }
    }
    expect_empty_state();
}

TEST_F(Cli, CreateExecCopyLogsInspectStopStartRemove) {
    if (!have_kvm()) GTEST_SKIP() << "/dev/kvm absent on this machine: no VM can run";
    std::filesystem::create_directories(home + "/share");
    std::ofstream(home + "/share/from-host.txt") << "shared";
    ASSERT_EQ(msb("create --name life --idle-timeout 2m -v " + home + "/share:/data").code, 0);
    EXPECT_EQ(msb("exec life -- echo inside").out, "inside\n");
    // The volume: host files visible, guest writes land on the host.
    EXPECT_EQ(
        msb("exec life -- sh -c 'cat /data/from-host.txt; echo back > /data/from-guest.txt'").out,
        "shared");
    std::ifstream from_guest(home + "/share/from-guest.txt");
    EXPECT_EQ(
        std::string(std::istreambuf_iterator<char>(from_guest), std::istreambuf_iterator<char>()),
        "back\n");
    std::ofstream(home + "/in.txt") << "payload";
    ASSERT_EQ(msb("cp " + home + "/in.txt life:/tmp/in.txt").code, 0);
    ASSERT_EQ(msb("cp life:/tmp/in.txt " + home + "/out.txt").code, 0);
    std::ifstream back(home + "/out.txt");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(back), std::istreambuf_iterator<char>()),
              "payload");
    EXPECT_EQ(msb("logs life --source host").code, 0);
    EXPECT_EQ(msb("metrics life").code, 0);
    EXPECT_EQ(nlohmann::json::parse(msb("inspect life").out)["status"], "Running");
    EXPECT_EQ(msb("stop life").code, 0);
    EXPECT_EQ(nlohmann::json::parse(msb("inspect life").out)["status"], "Stopped");
    EXPECT_EQ(msb("start life").code, 0);
    EXPECT_EQ(msb("rm -f life").code, 0);
    expect_empty_state();
}

}  // namespace
