// Starts `build/msb sandbox` as a child process, as the SDK does, and checks what it leaves in
// the store and on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/unique_fd.h"
#include "store/database.h"
#include "store/records.h"

namespace msb {
namespace {

namespace fs = std::filesystem;

struct ChildResult {
    int exit_code = -1;
    pid_t pid = -1;
    std::string out;
    std::string err;
};

std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
}

ChildResult run_msb(const std::vector<std::string>& args) {
    auto out = MUST(Pipe::create());
    auto err = MUST(Pipe::create());
    std::vector<char*> argv;
    std::string exe = std::string(MSB_BINARY_DIR) + "/msb";
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out.write.get(), 1);
        ::dup2(err.write.get(), 2);
        ::execv(exe.c_str(), argv.data());
        ::_exit(127);
    }
    out.write.reset();
    err.write.reset();
    ChildResult r;
    r.pid = pid;
    r.out = read_all(out.read.get());
    r.err = read_all(err.read.get());
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

class SandboxProcess : public ::testing::Test {
protected:
    void SetUp() override {
        home = fs::temp_directory_path() / ("msb-sandbox-test-" + std::to_string(::getpid()));
        fs::remove_all(home);
        fs::create_directories(home);
        db_path = (home / "msb.db").string();
        auto db = MUST(store::Database::open(db_path));
        sandbox_id = MUST(store::create_sandbox(db, "box", "{}"));
    }
    void TearDown() override { fs::remove_all(home); }

    std::vector<std::string> base_args() const {
        return {"sandbox",      "--name",       "box",
                "--sandbox-id", std::to_string(sandbox_id),
                "--db-path",    db_path,
                "--log-dir",    (home / "logs").string(),
                "--runtime-dir", (home / "runtime").string(),
                "--agent-sock", (home / "agent.sock").string()};
    }

    fs::path home;
    std::string db_path;
    int64_t sandbox_id = 0;
};

TEST_F(SandboxProcess, UnbuildableVmEndsAsInternalErrorWithReasonAndNoSocket) {
    auto args = base_args();
    args.insert(args.end(), {"--kernel", (home / "no-such-vmlinux").string()});
    ChildResult r = run_msb(args);

    // Start-up JSON first, with the child's own pid.
    EXPECT_EQ(r.out, "{\"pid\":" + std::to_string(r.pid) + "}\n");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("sandbox error: build VM:"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(home / "agent.sock"));

    auto db = MUST(store::Database::open(db_path));
    auto run = MUST(store::latest_run(db, sandbox_id));
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ(run->pid, r.pid);
    EXPECT_EQ(run->status, store::RunStatus::Terminated);
    EXPECT_EQ(run->termination_reason, store::TerminationReason::InternalError);
    ASSERT_TRUE(run->termination_detail.has_value());
    EXPECT_NE(run->termination_detail->find("build VM"), std::string::npos);
    EXPECT_TRUE(run->terminated_at.has_value());
    EXPECT_EQ(MUST(store::get_sandbox_by_id(db, sandbox_id)).status, store::SandboxStatus::Stopped);

    // The same reason is in host.log.
    std::ifstream host_log(home / "logs" / "host.log");
    std::stringstream text;
    text << host_log.rdbuf();
    EXPECT_NE(text.str().find("build VM"), std::string::npos);
    EXPECT_TRUE(fs::is_directory(home / "runtime" / "scripts"));
}

TEST_F(SandboxProcess, MalformedMountAndDiskFlagsAreRejectedBeforeAnythingStarts) {
    auto args = base_args();
    args.insert(args.end(), {"--mount", "no-colon"});
    ChildResult r = run_msb(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("invalid mount 'no-colon'"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");

    args = base_args();
    args.insert(args.end(), {"--disk", "d:/x.img:iso"});
    r = run_msb(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("unknown disk image format: iso"), std::string::npos) << r.err;

    auto db = MUST(store::Database::open(db_path));
    EXPECT_FALSE(MUST(store::latest_run(db, sandbox_id)).has_value());  // nothing half-made
}

}  // namespace
}  // namespace msb
