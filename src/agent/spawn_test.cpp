#include "agent/spawn.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent_service.h"

namespace msb::agent {
namespace {

// Runs options with stdout captured; returns {output, exit code}.
std::pair<std::string, int> run_captured(SpawnOptions options) {
    auto pipe = MUST(Pipe::create());
    options.stdout_fd = pipe.write.get();
    auto result = spawn(options);
    EXPECT_TRUE(result.ok());
    pipe.write.reset();
    if (!result.ok() || result->failure) return {"", result.ok() ? result->failure->exit_code : -1};
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipe.read.get(), buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(result->pid, &status, 0);
    return {out, exit_code_from_status(status)};
}

TEST(Spawn, SearchesPathLikeExecvp) {
    auto c = exec_candidates("ls", {"PATH=/a:/b::/c"});
    EXPECT_EQ(c, (std::vector<std::string>{"/a/ls", "/b/ls", "./ls", "/c/ls"}));
    EXPECT_EQ(exec_candidates("./x", {"PATH=/a"}), std::vector<std::string>{"./x"});
    EXPECT_EQ(exec_candidates("sh", {}).front(), "/usr/local/sbin/sh");
}

TEST(Spawn, RunsWithEnvCwdAndRlimits) {
    SpawnOptions options;
    options.program = "sh";
    options.argv = {"sh", "-c", "echo $A; pwd; ulimit -n"};
    options.env = {"PATH=/usr/bin:/bin", "A=1"};
    options.cwd = "/tmp";
    options.rlimits = {MUST(parse_rlimit("nofile", 99, 99))};
    auto [out, code] = run_captured(options);
    EXPECT_EQ(code, 0);
    EXPECT_EQ(out, "1\n/tmp\n99\n");
}

TEST(Spawn, SwitchesUserAndGroups) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to change credentials";
    SpawnOptions options;
    options.program = "/bin/sh";
    options.argv = {"sh", "-c", "id -u; id -g; id -G"};
    ResolvedUser user;
    user.uid = 65534;
    user.gid = 65534;
    user.groups = {65534, 100};
    options.user = user;
    auto [out, code] = run_captured(options);
    EXPECT_EQ(code, 0);
    EXPECT_EQ(out, "65534\n65534\n65534 100\n");
}

TEST(Spawn, ReportsChdirFailureWithoutRunningTheProgram) {
    SpawnOptions options;
    options.program = "/bin/true";
    options.cwd = "/nonexistent-msb-dir";
    auto result = spawn(options);
    ASSERT_TRUE(result.ok());
    ASSERT_TRUE(result->failure.has_value());
    EXPECT_EQ(result->failure->exit_code, 126);
    EXPECT_NE(result->failure->message.find("/nonexistent-msb-dir"), std::string::npos);
}

TEST(Spawn, DirectoryIsNotExecutable) {
    SpawnOptions options;
    options.program = "/tmp";
    auto result = spawn(options);
    ASSERT_TRUE(result.ok());
    ASSERT_TRUE(result->failure.has_value());
    EXPECT_EQ(result->failure->exit_code, 126);
    EXPECT_EQ(result->failure->error_code, EACCES);
}

TEST(Spawn, IgnoredSigpipeIsNotInherited) {
    (void)::signal(SIGPIPE, SIG_IGN);
    SpawnOptions options;
    options.program = "/bin/sh";
    options.argv = {"sh", "-c", "grep SigIgn /proc/self/status"};
    auto [out, code] = run_captured(options);
    (void)::signal(SIGPIPE, SIG_DFL);
    EXPECT_EQ(code, 0);
    // SIGPIPE is signal 13: bit 12 of the mask (0x1000).
    EXPECT_EQ(out.find("1000\n"), std::string::npos) << out;
}

TEST(ExecEnv, PrependsScriptsAndFillsHome) {
    ResolvedUser user;
    user.name = "app";
    user.home = "/home/app";
    auto env = merge_env({"PATH=/bin", "X=1"}, {"X=2", "Y=3"}, "/.msb/scripts", user, true);
    EXPECT_EQ(find_env(env, "PATH"), "/.msb/scripts:/bin");
    EXPECT_EQ(find_env(env, "X"), "2");
    EXPECT_EQ(find_env(env, "Y"), "3");
    EXPECT_EQ(find_env(env, "HOME"), "/home/app");
    EXPECT_EQ(find_env(env, "USER"), "app");
    EXPECT_EQ(find_env(env, "TERM"), "xterm-256color");
    // Already first: not added twice.
    auto again =
        merge_env({}, {"PATH=/.msb/scripts:/usr/bin"}, "/.msb/scripts", std::nullopt, false);
    EXPECT_EQ(find_env(again, "PATH"), "/.msb/scripts:/usr/bin");
    EXPECT_FALSE(find_env(again, "TERM"));
}

TEST(ExecEnv, PinnedGlibcTunablesGoInFrontOfTheProcesssOwn) {
    const std::string pinned = "glibc.cpu.hwcaps=-XSAVE,-XSAVEC";
    std::vector<std::string> none = {"A=1"};
    pin_glibc_tunables(none, pinned);
    EXPECT_EQ(find_env(none, "GLIBC_TUNABLES"), pinned);
    EXPECT_EQ(find_env(none, "A"), "1");

    std::vector<std::string> theirs = {"GLIBC_TUNABLES=glibc.malloc.check=3"};
    pin_glibc_tunables(theirs, pinned);
    EXPECT_EQ(find_env(theirs, "GLIBC_TUNABLES"), pinned + ":glibc.malloc.check=3");
    ASSERT_EQ(theirs.size(), 1u);
    pin_glibc_tunables(theirs, pinned);  // idempotent
    EXPECT_EQ(find_env(theirs, "GLIBC_TUNABLES"), pinned + ":glibc.malloc.check=3");

    std::vector<std::string> untouched = {"GLIBC_TUNABLES=x=1"};
    pin_glibc_tunables(untouched, "");
    EXPECT_EQ(find_env(untouched, "GLIBC_TUNABLES"), "x=1");
}

TEST(ExitCode, SignalledProcessesMapTo128PlusSignal) {
    EXPECT_EQ(exit_code_from_status(3 << 8), 3);
    EXPECT_EQ(exit_code_from_status(9), 137);
}

}  // namespace
}  // namespace msb::agent
