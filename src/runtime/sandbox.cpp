// runtime::enter(): the sandbox process from start-up JSON to _exit.
#include "runtime/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/boot_config.h"
#include "arch/x86_64/cpuid.h"
#include "base/log.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "devices/block/block_device.h"
#include "devices/console/console_device.h"
#include "devices/fs/fs_device.h"
#include "devices/rng/rng_device.h"
#include "loader/cpio.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "runtime/agent_console.h"
#include "runtime/guest_log.h"
#include "runtime/heartbeat_reader.h"
#include "runtime/log_capture.h"
#include "runtime/metrics.h"
#include "runtime/relay.h"
#include "store/database.h"
#include "store/records.h"
#include "virtio/mmio_transport.h"
#include "vmm/vm_builder.h"

namespace msb::runtime {

namespace x86 = arch::x86_64;

namespace {

constexpr size_t kRingBytes = 1 << 20;
// Exit code used when the host ends the VM itself (watchers, ready timeout).
constexpr int kHostStopCode = 0;
constexpr int kReadyTimeoutCode = 1;

// What the exit observer needs to know beyond the exit code. Shared across threads.
struct ExitContext {
    ExitTriggerSlot trigger;
    std::mutex mutex;
    std::optional<std::string> detail;  // GUARDED_BY(mutex)

    void set_detail(std::string text) {
        std::lock_guard lock(mutex);
        if (!detail) detail = std::move(text);
    }
    std::optional<std::string> take_detail() {
        std::lock_guard lock(mutex);
        return detail;
    }
};

Status write_startup_info() {
    std::string line = "{\"pid\":" + std::to_string(::getpid()) + "}\n";
    return write_all(STDOUT_FILENO, line.data(), line.size());
}

// The per-boot cpio with the agent's boot configuration (see docs/agent.md).
Result<std::vector<uint8_t>> boot_config_cpio(const Config& config) {
    agent::BootConfig boot;
    boot.exec_path = config.exec_path;
    boot.exec_args = config.exec_args;
    boot.env = guest_env(config, x86::detect_host_kind() == x86::HostKind::Pvm);
    if (config.workdir) boot.workdir = config.workdir;
    loader::CpioWriter cpio;
    TRY(cpio.add_directory(".msb-boot", 0755));
    TRY(cpio.add_file(agent::kBootConfigCpioName, boot.to_json(), 0644));
    return cpio.finish();
}

// The last `max_bytes` of a file, for error reports ("" when unreadable).
std::string file_tail(const std::string& path, size_t max_bytes) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return {};
    off_t start =
        st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes) : 0;
    std::string out(static_cast<size_t>(st.st_size - start), '\0');
    ssize_t n = ::pread(fd.get(), out.data(), out.size(), start);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
}

// A virtio-fs device sharing `host` under `tag`, behind its MMIO transport.
Result<std::shared_ptr<virtio::MmioTransport>> fs_transport(const std::string& tag,
                                                            const std::string& host,
                                                            Access access) {
    auto fs = TRY(devices::fs::PassthroughFs::create(host, access == Access::ReadOnly
                                                               ? devices::fs::Access::ReadOnly
                                                               : devices::fs::Access::ReadWrite));
    auto device = TRY(devices::fs::FsDevice::create(tag, std::move(fs)));
    return virtio::MmioTransport::create(std::move(device));
}

// A virtio-blk device over a disk image whose serial is `serial`, behind its MMIO transport.
Result<std::shared_ptr<virtio::MmioTransport>> disk_transport(const std::string& serial,
                                                              const std::string& host,
                                                              DiskFormat format, Access access) {
    auto disk_access =
        access == Access::ReadOnly ? devices::DiskAccess::ReadOnly : devices::DiskAccess::ReadWrite;
    std::shared_ptr<devices::DiskImage> image =
        TRY(devices::open_disk_image(host, disk_format_name(format), disk_access));
    auto device = TRY(devices::BlockDevice::create(
        {.disk = std::move(image), .serial = serial, .access = disk_access}));
    return virtio::MmioTransport::create(std::move(device));
}

// Devices, in the order the guest probes them (the root disk must become /dev/vda): the agent
// console, the root (a virtio-fs directory or a disk image), the runtime share at /.msb, the
// user's directory mounts, the disk images and an entropy source (virtio-rng).
Result<vmm::Vm> build_vm(const Config& config, ByteRing& to_guest, ByteRing& from_guest,
                         std::function<void(int)> observer) {
    if (config.init_path) return Error("--init-path is not supported: the agent is always init");
    if (config.rootfs_path && config.rootfs_disk)
        return Error("--rootfs-path and --rootfs-disk exclude each other; pass one root");

    auto guest_log = TRY(GuestLog::open(config.log_dir));
    auto backend = std::make_shared<AgentConsoleBackend>(to_guest, from_guest);
    auto console = TRY(devices::ConsoleDevice::create(
        {.output = guest_log,
         .ports = {{.name = std::string(protocol::kAgentPortName), .backend = backend}}}));

    std::vector<std::shared_ptr<virtio::MmioTransport>> transports;
    transports.push_back(TRY(virtio::MmioTransport::create(console)));
    // The share's own errors name the host path; the flag is what the user has to fix.
    auto add = [&](Result<std::shared_ptr<virtio::MmioTransport>> transport,
                   const std::string& what) -> Status {
        if (!transport.ok()) return std::move(transport).error().with_context(what);
        transports.push_back(std::move(transport).value());
        return {};
    };
    if (config.rootfs_path)
        TRY(add(
            fs_transport(std::string(protocol::kRootFsTag), *config.rootfs_path, Access::ReadWrite),
            "--rootfs-path"));
    if (config.rootfs_disk) {
        auto format = TRY(validate_disk_format(config.rootfs_disk_format));
        TRY(add(disk_transport("root", *config.rootfs_disk, format,
                               config.rootfs_disk_readonly ? Access::ReadOnly : Access::ReadWrite),
                "--rootfs-disk"));
    }
    if (!config.runtime_dir.empty())
        TRY(add(fs_transport(std::string(protocol::kRuntimeFsTag), config.runtime_dir,
                             Access::ReadWrite),
                "runtime share"));
    for (const auto& mount : config.mounts)
        TRY(add(fs_transport(mount.tag, mount.host, mount.access), "--mount " + mount.tag));
    for (const auto& disk : config.disks)
        TRY(add(disk_transport(disk.id, disk.host, disk.format, disk.access), "--disk " + disk.id));
    // An entropy source: without one the guest's CRNG waits for interrupt timing, getrandom()
    // blocks, and every early /dev/urandom read spins the kernel's jitter loop (emulated
    // instruction by instruction on PVM).
    TRY(add(virtio::MmioTransport::create(std::make_shared<devices::RngDevice>()), "virtio-rng"));

    std::vector<loader::InitrdImage> initrds;
    initrds.push_back(loader::InitrdImage::file(config.initramfs));
    initrds.push_back(loader::InitrdImage::memory(TRY(boot_config_cpio(config))));

    vmm::VmBuilder builder;
    builder.machine(config.vcpus, config.memory_mib)
        .kernel(config.kernel, std::move(initrds))
        .console({.echo = vmm::ConsoleEcho::None, .writer = guest_log->serial_writer()})
        .on_exit(std::move(observer));
    for (auto& transport : transports) builder.mmio_device(std::move(transport));
    return builder.build();
}

// Blocks the signals the watcher thread takes through a signalfd. Must run before any thread
// starts so that every thread inherits the mask.
Result<UniqueFd> take_signals() {
    (void)::signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&set, s);
    if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return Error("block signals");
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return Error::from_errno("signalfd");
    return UniqueFd(fd);
}

// Watches signals, the idle timeout, the maximum duration and a pending graceful shutdown.
// Graceful stop: core.shutdown to the guest (it syncs and powers off), then a hard stop after
// the grace period.
class Watcher {
public:
    Watcher(const Config& config, UniqueFd signals, Relay& relay, vmm::ExitHandle exit,
            ExitContext& context)
        : m_config(config),
          m_signals(std::move(signals)),
          m_relay(relay),
          m_exit(std::move(exit)),
          m_context(context),
          m_heartbeat(config.runtime_dir) {}

    // Thread-safe: the guest sent core.ready.
    void mark_ready() { m_ready_ns.store(monotonic_ns()); }

    // Thread-safe: start a graceful stop (idempotent).
    void request_stop(ExitTrigger trigger, bool forward_to_guest) {
        if (!m_stop_requested.exchange(true)) {
            m_context.trigger.record(trigger);
            if (forward_to_guest) {
                auto frame = protocol::encode_frame(
                    protocol::make_message(protocol::MessageType::Shutdown, 0,
                                           protocol::encode_payload(protocol::Shutdown{})));
                if (frame.ok()) m_relay.send_to_guest(std::move(frame).value());
            }
            m_stop_deadline_ns.store(monotonic_ns() +
                                     m_config.shutdown_grace_secs * 1'000'000'000ULL);
        }
    }

    void run() {
        uint64_t start = monotonic_ns();
        for (;;) {
            pollfd p{m_signals.get(), POLLIN, 0};
            ::poll(&p, 1, 1000);
            signalfd_siginfo info{};
            while (::read(m_signals.get(), &info, sizeof info) == sizeof info) {
                int sig = static_cast<int>(info.ssi_signo);
                log::info("sandbox: received signal {}; shutting down", sig);
                request_stop(sig == SIGUSR1 ? ExitTrigger::Drain : ExitTrigger::Signal, true);
            }
            uint64_t now = monotonic_ns();
            if (auto secs = m_config.policy.max_duration_secs;
                secs && now - start >= *secs * 1'000'000'000ULL && !m_stop_requested) {
                log::info("sandbox: max duration {} s exceeded", *secs);
                request_stop(ExitTrigger::MaxDuration, true);
            }
            // Idleness counts from core.ready at the earliest (a heartbeat may exist before).
            uint64_t ready = m_ready_ns.load();
            if (auto secs = m_config.policy.idle_timeout_secs;
                secs && !m_stop_requested && ready && now - ready >= *secs * 1'000'000'000ULL &&
                m_heartbeat.observe_idle(*secs, now)) {
                log::info("sandbox: idle for {} s", *secs);
                request_stop(ExitTrigger::IdleTimeout, true);
            }
            uint64_t deadline = m_stop_deadline_ns.load();
            if (deadline && now >= deadline) {
                log::warn("sandbox: guest did not power off within {} s; stopping it",
                          m_config.shutdown_grace_secs);
                m_exit.trigger(kHostStopCode);
                return;
            }
        }
    }

private:
    const Config& m_config;
    UniqueFd m_signals;
    Relay& m_relay;
    vmm::ExitHandle m_exit;
    ExitContext& m_context;
    HeartbeatReader m_heartbeat;
    std::atomic<bool> m_stop_requested{false};
    std::atomic<uint64_t> m_stop_deadline_ns{0};
    std::atomic<uint64_t> m_ready_ns{0};  // monotonic time core.ready arrived; 0 before
};

// Everything up to vm.enter(). Returns only on failure.
Status run(const Config& config, int original_stderr) {
    auto signals = TRY(take_signals());
    TRY(write_startup_info());
    TRY(start_log_capture(config.log_dir, config.forward_output ? original_stderr : -1));
    log::init({.level = config.log_level, .fd = STDERR_FILENO, .name = "sandbox"});
    log::info("sandbox {} (id {}) starting, pid {}", config.sandbox_name, config.sandbox_id,
              ::getpid());

    std::error_code ec;
    std::filesystem::create_directories(config.runtime_dir + "/scripts", ec);
    if (ec) return Error("create runtime dir " + config.runtime_dir + ": " + ec.message());

    auto to_guest = TRY(ByteRing::create(kRingBytes));
    auto from_guest = TRY(ByteRing::create(kRingBytes));
    RelayOptions relay_options;
    relay_options.socket_path = config.agent_sock;
    relay_options.ready_timeout = std::chrono::seconds(config.ready_timeout_secs);
    auto relay = TRY(Relay::create(relay_options, *to_guest, *from_guest));

    auto db = TRY(store::Database::open(
        config.db_path, {.busy_timeout = std::chrono::seconds(config.db_connect_timeout_secs)}));
    int64_t run_id = TRY(store::insert_run(db, config.sandbox_id, ::getpid()));

    // Lives for the rest of the process: enter() never returns.
    static ExitContext context;
    store::Database* db_ptr = &db;
    std::string sock = config.agent_sock;
    int64_t sandbox_id = config.sandbox_id;
    auto observer = [db_ptr, run_id, sandbox_id, sock](int code) {
        ExitTrigger trigger = context.trigger.trigger();
        store::RunOutcome outcome;
        outcome.exit_code = code;
        if (code > 128 && code <= 128 + 64) outcome.exit_signal = code - 128;
        outcome.reason = termination_reason_for(code, trigger);
        outcome.detail = context.take_detail();
        log::info("sandbox: exiting with code {} ({})", code, store::to_string(outcome.reason));
        if (auto st = store::finalize_run(*db_ptr, run_id, outcome); !st.ok())
            log::error("sandbox: {}", st.error().message());
        if (auto st =
                store::update_sandbox_status(*db_ptr, sandbox_id, store::SandboxStatus::Stopped);
            !st.ok())
            log::error("sandbox: {}", st.error().message());
        ::unlink(sock.c_str());
        finish_log_capture();
    };

    auto vm = build_vm(config, *to_guest, *from_guest, observer);
    if (!vm.ok()) {
        Error error = std::move(vm).error().with_context("build VM");
        (void)store::finalize_run(
            db, run_id,
            {.reason = store::TerminationReason::InternalError, .detail = error.message()});
        (void)store::update_sandbox_status(db, sandbox_id, store::SandboxStatus::Stopped);
        return error;
    }
    vmm::ExitHandle exit = vm->exit_handle();

    // Threads live until _exit; they are deliberately detached.
    static std::unique_ptr<Watcher> watcher;
    watcher = std::make_unique<Watcher>(config, std::move(signals), *relay, exit, context);
    relay->on_shutdown = [] { watcher->request_stop(ExitTrigger::None, false); };
    relay->on_ready = [] { watcher->mark_ready(); };
    relay->on_ready_timeout = [exit, log_dir = config.log_dir](const std::string& reason) {
        context.trigger.record(ExitTrigger::InternalError);
        context.set_detail(reason + "; last guest output:\n" +
                           file_tail(log_dir + "/guest.log", 2048));
        exit.trigger(kReadyTimeoutCode);
    };
    static std::unique_ptr<Relay> relay_keep;
    relay_keep = std::move(relay);
    static std::unique_ptr<ByteRing> rings[2];
    rings[0] = std::move(to_guest);
    rings[1] = std::move(from_guest);

    std::thread([] {
        if (auto st = relay_keep->run(); !st.ok()) log::error("relay: {}", st.error().message());
    }).detach();
    std::thread([] { watcher->run(); }).detach();
    start_metrics_sampler(config.db_path, config.sandbox_id);

    log::info("sandbox: entering VM");
    vm->enter();
}

}  // namespace

void enter(Config config) {
    int original_stderr = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    Status st = run(config, original_stderr);
    std::string line = "sandbox error: " + st.error().message() + "\n";
    log::error("{}", line.substr(0, line.size() - 1));
    if (original_stderr >= 0) (void)write_all(original_stderr, line.data(), line.size());
    ::unlink(config.agent_sock.c_str());
    finish_log_capture();
    ::_exit(kExitSetupFailed);
}

}  // namespace msb::runtime
