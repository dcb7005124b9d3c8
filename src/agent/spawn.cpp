// clone(CLONE_VM | CLONE_VFORK) spawning and pseudo-terminals; see spawn.h.
#include "agent/spawn.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <memory>

namespace msb::agent {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kChildStackSize = 64 * 1024;

enum class Stage : int {
    None = 0,
    Signals,
    Session,
    ControllingTty,
    Stdio,
    Rlimit,
    Groups,
    Gid,
    Uid,
    Chdir,
    Exec,
};

// Everything the child needs, prepared by the parent. The child writes `failed_stage` and
// `error` into this structure (shared memory) when a step fails.
struct ChildContext {
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    const char* const* candidates = nullptr;
    size_t candidate_count = 0;
    int stdio[3] = {-1, -1, -1};
    bool new_session = false;
    int controlling_tty = -1;
    const int* rlimit_resources = nullptr;
    const struct rlimit* rlimit_values = nullptr;
    size_t rlimit_count = 0;
    bool set_credentials = false;
    const gid_t* groups = nullptr;
    size_t group_count = 0;
    gid_t gid = 0;
    uid_t uid = 0;
    const char* cwd = nullptr;

    Stage failed_stage = Stage::None;
    int error = 0;
    size_t failed_index = 0;  // which rlimit failed
};

[[noreturn]] void child_fail(ChildContext* c, Stage stage, int error) {
    c->failed_stage = stage;
    c->error = error;
    _exit(127);
}

// Runs in the child, on its own stack but in the agent's memory, with every signal blocked.
// Only system calls from here on: no allocation, no locks, no stdio.
int child_main(void* raw) {
    auto* c = static_cast<ChildContext*>(raw);

    // Handlers are reset by execve, ignored dispositions are not: put back the defaults of the
    // signals an agent ignores or handles (the agent installs no other handlers; SIGCHLD is read
    // through a signalfd). A short list, because every system call is costly on software KVM.
    static constexpr int kResetSignals[] = {SIGPIPE, SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR1,
                                            SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXFSZ};
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : kResetSignals) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    if (::sigprocmask(SIG_SETMASK, &none, nullptr) < 0) child_fail(c, Stage::Signals, errno);

    if (c->new_session && ::setsid() < 0) child_fail(c, Stage::Session, errno);
    if (c->controlling_tty >= 0 && ::ioctl(c->controlling_tty, TIOCSCTTY, 0) < 0)
        child_fail(c, Stage::ControllingTty, errno);

    // Move sources that sit on 0..2 out of the way before any dup2 can overwrite them.
    int source[3];
    for (int i = 0; i < 3; ++i) {
        source[i] = c->stdio[i];
        if (source[i] >= 0 && source[i] < 3 && source[i] != i) {
            source[i] = ::fcntl(source[i], F_DUPFD_CLOEXEC, 3);
            if (source[i] < 0) child_fail(c, Stage::Stdio, errno);
        }
    }
    for (int i = 0; i < 3; ++i) {
        if (source[i] < 0) continue;
        if (source[i] == i) {
            if (::fcntl(i, F_SETFD, 0) < 0) child_fail(c, Stage::Stdio, errno);
        } else if (::dup2(source[i], i) < 0) {
            child_fail(c, Stage::Stdio, errno);
        }
    }

    for (size_t i = 0; i < c->rlimit_count; ++i) {
        if (::setrlimit(static_cast<__rlimit_resource_t>(c->rlimit_resources[i]),
                        &c->rlimit_values[i]) < 0) {
            c->failed_index = i;
            child_fail(c, Stage::Rlimit, errno);
        }
    }

    // Raw system calls: glibc's set*id wrappers broadcast to the threads of the *agent*
    // (this child shares its memory and thread list), which must not happen here.
    if (c->set_credentials) {
        if (::syscall(SYS_setgroups, c->group_count, c->groups) < 0)
            child_fail(c, Stage::Groups, errno);
        if (::syscall(SYS_setgid, c->gid) < 0) child_fail(c, Stage::Gid, errno);
        if (::syscall(SYS_setuid, c->uid) < 0) child_fail(c, Stage::Uid, errno);
    }

    if (c->cwd && ::chdir(c->cwd) < 0) child_fail(c, Stage::Chdir, errno);

    // execvp's search rule: remember EACCES, keep looking on ENOENT/ENOTDIR, stop on others.
    int error = ENOENT;
    bool saw_eacces = false;
    for (size_t i = 0; i < c->candidate_count; ++i) {
        ::execve(c->candidates[i], c->argv, c->envp);
        error = errno;
        if (error == EACCES) {
            saw_eacces = true;
            continue;
        }
        if (error == ENOENT || error == ENOTDIR || error == ENAMETOOLONG) continue;
        break;
    }
    if ((error == ENOENT || error == ENOTDIR || error == ENAMETOOLONG) && saw_eacces)
        error = EACCES;
    child_fail(c, Stage::Exec, error);
}

std::vector<char*> pointer_array(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

SpawnFailure describe_failure(const ChildContext& c, const SpawnOptions& options) {
    SpawnFailure failure;
    failure.error_code = c.error;
    std::string reason = ::strerror(c.error);
    switch (c.failed_stage) {
        case Stage::Exec:
            if (c.error == ENOENT || c.error == ENOTDIR || c.error == ENAMETOOLONG) {
                failure.exit_code = 127;
                failure.message = options.program.find('/') == std::string::npos
                                      ? options.program + ": command not found"
                                      : options.program + ": " + reason;
            } else {
                failure.exit_code = 126;
                failure.message = options.program + ": " + reason;
            }
            break;
        case Stage::Chdir:
            failure.message =
                "cannot change directory to " + options.cwd.value_or("") + ": " + reason;
            break;
        case Stage::Rlimit:
            failure.message =
                "cannot set resource limit " +
                (c.failed_index < options.rlimits.size() ? options.rlimits[c.failed_index].name
                                                         : std::string("?")) +
                ": " + reason;
            break;
        case Stage::Groups:
        case Stage::Gid:
        case Stage::Uid:
            failure.message = "cannot switch to user " +
                              std::to_string(options.user ? options.user->uid : 0) + ": " + reason;
            break;
        case Stage::ControllingTty:
            failure.message = "cannot set controlling terminal: " + reason;
            break;
        default:
            failure.message = "cannot set up process: " + reason;
            break;
    }
    return failure;
}

}  // namespace

std::vector<std::string> exec_candidates(const std::string& program,
                                         const std::vector<std::string>& env) {
    if (program.find('/') != std::string::npos) return {program};
    std::string path = find_env(env, "PATH").value_or(kDefaultPath);
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t end = path.find(':', start);
        std::string dir =
            path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) dir = ".";
        out.push_back(dir + "/" + program);
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return out;
}

Result<SpawnResult> spawn(const SpawnOptions& options) {
    if (options.program.empty()) {
        return SpawnResult{-1, SpawnFailure{127, ": command not found", ENOENT}};
    }
    std::vector<std::string> argv_storage = options.argv;
    if (argv_storage.empty()) argv_storage.push_back(options.program);
    auto argv = pointer_array(argv_storage);
    auto envp = pointer_array(options.env);
    std::vector<std::string> candidate_storage = exec_candidates(options.program, options.env);
    std::vector<const char*> candidates;
    for (const auto& s : candidate_storage) candidates.push_back(s.c_str());

    std::vector<int> resources;
    std::vector<struct rlimit> limits;
    for (const auto& r : options.rlimits) {
        resources.push_back(r.resource);
        limits.push_back({static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)});
    }

    ChildContext ctx;
    ctx.argv = argv.data();
    ctx.envp = envp.data();
    ctx.candidates = candidates.data();
    ctx.candidate_count = candidates.size();
    ctx.stdio[0] = options.stdin_fd;
    ctx.stdio[1] = options.stdout_fd;
    ctx.stdio[2] = options.stderr_fd;
    ctx.new_session = options.session == SessionMode::NewSession;
    ctx.controlling_tty = options.controlling_tty;
    ctx.rlimit_resources = resources.data();
    ctx.rlimit_values = limits.data();
    ctx.rlimit_count = resources.size();
    if (options.user) {
        ctx.set_credentials = true;
        ctx.groups = options.user->groups.data();
        ctx.group_count = options.user->groups.size();
        ctx.gid = options.user->gid;
        ctx.uid = options.user->uid;
    }
    ctx.cwd = options.cwd ? options.cwd->c_str() : nullptr;

    // The child's stack; it lives in our memory, and we are suspended while the child uses it.
    auto stack = std::make_unique<char[]>(kChildStackSize);
    void* stack_top = stack.get() + kChildStackSize;

    // Block every signal so that no agent handler runs on the child's stack before it resets
    // the dispositions.
    sigset_t all, saved;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = ::clone(child_main, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
    int clone_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (pid < 0) return Error::from_errno("clone for " + options.program, clone_errno);

    if (ctx.failed_stage == Stage::None) return SpawnResult{pid, std::nullopt};

    // The child has already called _exit; collect it so no zombie is left behind.
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return SpawnResult{-1, describe_failure(ctx, options)};
}

Status set_window_size(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    if (::ioctl(fd, TIOCSWINSZ, &ws) < 0) return Error::from_errno("TIOCSWINSZ");
    return {};
}

Result<Pty> Pty::open(unsigned short rows, unsigned short cols) {
    int master_fd = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_fd < 0) return Error::from_errno("open /dev/ptmx");
    UniqueFd master(master_fd);
    if (::unlockpt(master.get()) < 0) return Error::from_errno("unlockpt");
    // TIOCGPTPEER opens the peer of this very master, whatever devpts instance it lives in.
    int slave_fd = ::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave_fd < 0) {
        char name[128];
        if (::ptsname_r(master.get(), name, sizeof name) != 0) return Error::from_errno("ptsname");
        slave_fd = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave_fd < 0) return Error::from_errno(std::string("open ") + name);
    }
    UniqueFd slave(slave_fd);
    TRY(set_window_size(master.get(), rows, cols));
    TRY(set_nonblocking(master.get()));
    return Pty{std::move(master), std::move(slave)};
}

}  // namespace msb::agent
