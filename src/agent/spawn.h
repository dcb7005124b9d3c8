// Process spawning without copying the agent's address space.
//
// spawn() uses clone(CLONE_VM | CLONE_VFORK): the child runs on a small private stack inside the
// agent's own memory (no page-table copy, which is the dominant cost of fork on software KVM),
// does its setup (signals, session, controlling terminal, stdio, rlimits, credentials, cwd) and
// execs; the agent thread is suspended until then. Because the memory is shared, the child
// reports a failure by storing errno and the failed step in the parent's frame before _exit —
// the same mechanism glibc's posix_spawn uses; it cannot be lost or misread, so 127 ("not
// found") and 126 ("cannot execute") are exact.
//
//   SpawnOptions options{.program = "echo", .argv = {"echo", "hi"}, .env = {"PATH=/bin"}};
//   auto pid = spawn(options);  // Error on failure; see SpawnFailure for the exit code
//
// The child step only makes raw system calls (no allocation, no locks): everything it needs
// (argv/envp arrays, PATH candidates) is prepared by the parent first.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "agent/guest_config.h"
#include "agent/user.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::agent {

enum class SessionMode {
    Inherit,     // stay in the agent's session and process group
    NewSession,  // setsid(): own session and process group (signals go to the whole group)
};

struct SpawnOptions {
    // Program: searched in the PATH of `env` when it has no '/', as execvp does.
    std::string program;
    std::vector<std::string> argv;  // argv[0] included
    std::vector<std::string> env;   // "K=V", the complete environment
    std::optional<std::string> cwd;
    std::optional<ResolvedUser> user;  // nullopt: keep the agent's credentials
    std::vector<RlimitSpec> rlimits;
    // Descriptors that become the child's 0/1/2; -1 inherits the agent's.
    int stdin_fd = -1;
    int stdout_fd = -1;
    int stderr_fd = -1;
    SessionMode session = SessionMode::NewSession;
    // When ≥ 0 (REQUIRES session == NewSession): made the controlling terminal (TIOCSCTTY).
    int controlling_tty = -1;
};

// Why a spawn failed, mapped to the shell's exit code.
struct SpawnFailure {
    int exit_code = 126;  // 127: program not found; 126: found but cannot be started
    std::string message;  // "sh: no such file or directory: foo" style, for the process's stderr
    int error_code = 0;   // errno
};

struct SpawnResult {
    pid_t pid = -1;
    std::optional<SpawnFailure> failure;  // set when no process is running
};

// Starts the process. An Error is returned only for failures of the agent itself (pipe, mmap,
// clone); failures of the program (not found, permission denied, bad cwd, setuid refused) come
// back as SpawnResult::failure, with the child already reaped.
Result<SpawnResult> spawn(const SpawnOptions& options);

// The PATH candidates for `program` (exposed for tests): the program itself when it contains a
// '/', else dir + "/" + program for each PATH entry (an empty entry means ".").
std::vector<std::string> exec_candidates(const std::string& program,
                                         const std::vector<std::string>& env);

// A pseudo-terminal pair: master non-blocking, both close-on-exec.
struct Pty {
    UniqueFd master;
    UniqueFd slave;
    static Result<Pty> open(unsigned short rows, unsigned short cols);
};

// TIOCSWINSZ on a terminal fd.
Status set_window_size(int fd, unsigned short rows, unsigned short cols);

}  // namespace msb::agent
