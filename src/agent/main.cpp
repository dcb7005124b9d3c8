// msb-agent: the guest's /init. Reads like the boot recipe: early mounts → boot config → MSB_*
// variables → root → switch → mounts → identity → port → service (+ main command) → power off.
// Every failure is printed on the console naming the variable at fault and ends the VM with a
// BootExit status (init.h); see docs/agent.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "agent/agent_service.h"
#include "agent/boot_config.h"
#include "agent/guest_config.h"
#include "agent/init.h"
#include "agent/spawn.h"
#include "agent/user.h"
#include "base/event_loop.h"
#include "base/log.h"
#include "base/time.h"

using namespace msb;
using namespace msb::agent;

namespace {

constexpr auto kPortWait = std::chrono::seconds(60);

[[noreturn]] void fail(int code, const std::string& message) {
    (void)std::fprintf(stderr, "msb-agent: boot failed: %s (exit status %d)\n", message.c_str(),
                       code);
    (void)std::fflush(stderr);
    power_off(code);
}

template <typename T>
T check(Result<T> result, int code) {
    if (!result.ok()) fail(code, result.error().message());
    return std::move(result).value();
}

void check(const Status& status, int code) {
    if (!status.ok()) fail(code, status.error().message());
}

// The environment of guest processes: the boot env without the MSB_* configuration.
std::vector<std::string> process_env(const std::vector<std::string>& boot_env) {
    std::vector<std::string> env;
    for (const auto& e : boot_env)
        if (e.rfind("MSB_", 0) != 0) env.push_back(e);
    return env;
}

int run_agent() {
    const uint64_t start_ns = boottime_ns();
    // Init mounts, switches roots and unmounts everything at power-off: never on a host.
    if (::getpid() != 1) {
        (void)std::fprintf(stderr,
                           "msb-agent: must run as the guest's PID 1 (it is the guest's /init)\n");
        return 2;
    }
    log::init({.level = log::Level::Info, .fd = 2, .name = "agent"});
    // PID 1 gets no default signal actions; writes to a vanished peer must not kill it.
    (void)::signal(SIGPIPE, SIG_IGN);

    check(mount_early_filesystems(), kExitMount);
    BootConfig boot = check(BootConfig::load(), kExitBootConfig);
    GuestConfig config = check(GuestConfig::parse(boot.env), kExitBadVariable);

    if (check(mount_new_root(config), kExitMount))
        check(switch_root(kNewRootPath), kExitSwitchRoot);
    check(mount_run_and_tmp(), kExitMount);
    bool runtime_mounted = mount_runtime_share();
    check(apply_mounts(config), kExitMount);
    check(apply_hostname(config.hostname), kExitSetup);
    check(apply_rlimits(config.rlimits), kExitSetup);
    if (Status lo = bring_up_loopback(); !lo.ok()) log::warn("init: {}", lo.error().message());
    check(apply_network(config), kExitSetup);
    std::optional<ResolvedUser> default_user;
    if (config.user) {
        auto user = resolve_user_in_root(*config.user);
        if (!user.ok()) fail(kExitBadVariable, "MSB_USER: " + user.error().message());
        default_user = user.value();
    }
    std::vector<std::string> env = process_env(boot.env);
    // The kernel put command-line variables in our environment; GLIBC_TUNABLES among them is
    // the VMM's (PVM: glibc must not use AVX) and goes to every process we start.
    const char* tunables = ::getenv("GLIBC_TUNABLES");
    const std::string pinned_tunables = tunables ? tunables : "";
    const uint64_t init_ns = boottime_ns() - start_ns;

    // The main command, when the boot config names one: stdio on the console, its own session;
    // its exit status becomes the VM's.
    pid_t main_pid = -1;
    if (boot.exec_path) {
        SpawnOptions options;
        options.program = *boot.exec_path;
        options.argv.push_back(*boot.exec_path);
        options.argv.insert(options.argv.end(), boot.exec_args.begin(), boot.exec_args.end());
        options.env =
            merge_env({}, env, runtime_mounted ? "/.msb/scripts" : "", default_user, false);
        pin_glibc_tunables(options.env, pinned_tunables);
        options.cwd = boot.workdir;
        options.user = default_user;
        auto spawned = check(spawn(options), kExitSetup);
        if (spawned.failure) {
            (void)std::fprintf(stderr, "%s\n", spawned.failure->message.c_str());
            power_off(spawned.failure->exit_code);
        }
        main_pid = spawned.pid;
    }

    // Port names arrive from the device through the console's control queue after the driver
    // probed, possibly after /init started: poll for a while.
    auto port_path = find_port_device(std::string(protocol::kAgentPortName));
    for (Deadline wait = Deadline::after(kPortWait); !port_path.ok() && !wait.expired();) {
        ::usleep(10'000);
        int status = 0;
        if (main_pid > 0 && ::waitpid(main_pid, &status, WNOHANG) == main_pid)
            power_off(exit_code_from_status(status));
        port_path = find_port_device(std::string(protocol::kAgentPortName));
    }
    int port = -1;
    if (port_path.ok()) port = ::open(port_path->c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (port < 0) {
        std::string why =
            port_path.ok() ? "open " + *port_path + " failed" : port_path.error().message();
        if (main_pid < 0) fail(kExitAgentPort, why);
        // No protocol, but the main command still runs: reap until it exits.
        log::warn("init: {}; running the main command without the agent protocol", why);
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, 0);
            if (pid == main_pid) power_off(exit_code_from_status(status));
            if (pid < 0 && errno == ECHILD) power_off(kExitInternal);
        }
    }

    auto loop = check(EventLoop::create(), kExitInternal);
    ServiceOptions options;
    options.read_fd = options.write_fd = port;
    if (runtime_mounted) options.runtime_dir = std::string(protocol::kRuntimeMountPoint);
    options.heartbeat_refresh = std::chrono::seconds(config.heartbeat_refresh_s);
    options.default_user = config.user;
    options.base_env = env;
    options.scripts_dir = std::string(protocol::kScriptsPath);
    options.pinned_glibc_tunables = pinned_tunables;
    options.peer_closed = PeerClosedPolicy::Wait;
    options.boot_time_ns = start_ns;
    options.init_time_ns = init_ns;
    auto service = check(AgentService::create(loop, std::move(options)), kExitInternal);
    service->set_on_shutdown([&service] {
        service->flush(std::chrono::milliseconds(1000));
        power_off(0);
    });
    service->set_on_foreign_exit([&service, main_pid](pid_t pid, int status) {
        if (pid != main_pid) return;  // an orphan: reaped, nothing else to do
        service->flush(std::chrono::milliseconds(1000));
        power_off(exit_code_from_status(status));
    });
    // CLOCK_BOOTTIME starts with the kernel: the last figure is kernel start → core.ready as the
    // guest's clock sees it (bench/sandbox_bench.cpp reads it). Logged before start() queues
    // core.ready, so the line is in the guest log by the time the host sees the agent ready.
    const uint64_t ready_ns = boottime_ns();
    log::info("agent ready in {} (init {}; {} since kernel start)",
              format_duration_ns(ready_ns - start_ns), format_duration_ns(init_ns),
              format_duration_ns(ready_ns));
    check(service->start(), kExitInternal);
    Status ran = loop.run();
    fail(kExitInternal, ran.ok() ? "event loop stopped" : ran.error().message());
}

}  // namespace

int main() {
    // Nothing in the agent throws on purpose; a library that does (allocation failure, JSON)
    // must still end the VM with a status instead of an abort with no explanation.
    try {
        return run_agent();
    } catch (const std::exception& e) {
        fail(kExitInternal, std::string("unexpected exception: ") + e.what());
    } catch (...) {
        fail(kExitInternal, "unexpected exception");
    }
}
