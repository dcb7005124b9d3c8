// The agent in a booted guest: the real kernel, build/guest/initramfs.cpio plus a per-boot
// config cpio, and the agent port carried by a virtio-console port named "agent".
//
// Peer VMM: QEMU microvm under TCG (no /dev/kvm needed; an independent implementation of the
// virtio-console device, so this checks the agent and not our devices), and `msb vmm-run` on
// /dev/kvm for the exit-status path. Every boot has a watchdog.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "agent/boot_config.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "loader/cpio.h"
#include "protocol/messages.h"

extern char** environ;

namespace msb::agent {
namespace {

using protocol::Message;
using protocol::MessageType;

constexpr auto kBootWatchdog =
    std::chrono::seconds(600);  // a healthy boot: ~60 s on the nested PVM host
constexpr const char* kCmdline =
    "console=ttyS0 panic=-1 reboot=k noxsave clearcpuid=141,151,308,297,580 rodata=off quiet";

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// MSB_GUEST_KERNEL overrides the kernel of this source tree (e.g. to try another build).
std::string kernel_path() {
    if (const char* override_path = std::getenv("MSB_GUEST_KERNEL")) return override_path;
    std::string cmd =
        std::string("bash ") + MSB_SOURCE_DIR + "/guest/kernel/build.sh --path 2>/dev/null";
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        ::pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

std::string initramfs_path() { return std::string(MSB_BINARY_DIR) + "/guest/initramfs.cpio"; }

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A file added to the per-boot cpio: path inside the guest, host file to copy, mode.
struct ExtraFile {
    std::string guest_path;
    std::string host_path;
    uint32_t mode;
};

// base initramfs + a cpio holding the boot config (and any extra files).
std::string make_initrd(const std::string& dir, const BootConfig& config,
                        const std::vector<ExtraFile>& extra_files = {}) {
    loader::CpioWriter cpio;
    EXPECT_TRUE(cpio.add_file(kBootConfigCpioName, config.to_json(), 0644).ok());
    for (const auto& f : extra_files)
        EXPECT_TRUE(cpio.add_file(f.guest_path, read_file(f.host_path), f.mode).ok())
            << f.host_path;
    std::vector<uint8_t> extra = cpio.finish();
    std::string base = read_file(initramfs_path());
    std::string path = dir + "/initrd.cpio";
    std::ofstream out(path, std::ios::binary);
    out << base;
    out.write(reinterpret_cast<const char*>(extra.data()),
              static_cast<std::streamsize>(extra.size()));
    return path;
}

// A VMM child process with a watchdog; killed on destruction.
class Vmm {
public:
    Vmm(const std::vector<std::string>& argv, const std::string& log_path) {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        int rc = ::posix_spawn(&m_pid, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) m_pid = -1;
    }
    ~Vmm() {
        if (m_pid > 0 && !m_status) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
    }
    bool running() const { return m_pid > 0; }
    // Waits for exit; kills the VMM when the deadline passes (returns nullopt then).
    std::optional<int> wait(Deadline deadline) {
        while (!deadline.expired()) {
            int status = 0;
            pid_t r = ::waitpid(m_pid, &status, WNOHANG);
            if (r == m_pid) {
                m_status = status;
                return status;
            }
            ::usleep(20'000);
        }
        return std::nullopt;
    }

private:
    pid_t m_pid = -1;
    std::optional<int> m_status;
};

// The host end of the agent port.
class PortClient {
public:
    bool connect(const std::string& path, Deadline deadline) {
        while (!deadline.expired()) {
            m_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            (void)std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
            if (::connect(m_fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
                return true;
            ::usleep(20'000);
        }
        return false;
    }
    template <typename P>
    void send(uint32_t id, const P& payload) {
        auto frame = MUST(protocol::encode_message(id, payload));
        ASSERT_TRUE(write_all(m_fd.get(), frame.data(), frame.size()).ok());
    }
    // Next frame, or nullopt at the deadline / on EOF.
    std::optional<Message> next(Deadline deadline) {
        while (m_pending.empty()) {
            pollfd pfd{m_fd.get(), POLLIN, 0};
            int rc = ::poll(&pfd, 1, static_cast<int>(deadline.remaining().count()));
            if (rc <= 0) return std::nullopt;
            uint8_t buf[65536];
            ssize_t n = ::read(m_fd.get(), buf, sizeof buf);
            if (n <= 0) return std::nullopt;
            Status st = m_decoder.feed(std::span<const uint8_t>(buf, static_cast<size_t>(n)),
                                       [this](protocol::RawFrame&& f) {
                                           m_pending.push_back(MUST(protocol::decode_message(f)));
                                       });
            if (!st.ok()) return std::nullopt;
        }
        Message m = std::move(m_pending.front());
        m_pending.erase(m_pending.begin());
        return m;
    }

private:
    UniqueFd m_fd;
    protocol::FrameDecoder m_decoder;
    std::vector<Message> m_pending;
};

struct ExecResult {
    std::string out;
    std::optional<int> code;
};

ExecResult run_exec(PortClient& client, uint32_t id, const std::string& cmd,
                    std::vector<std::string> args, Deadline deadline) {
    protocol::ExecRequest request;
    request.cmd = cmd;
    request.args = std::move(args);
    client.send(id, request);
    ExecResult result;
    while (auto m = client.next(deadline)) {
        if (m->id != id) continue;
        if (m->type == MessageType::ExecStdout || m->type == MessageType::ExecStderr) {
            auto data = MUST(protocol::decode_payload<protocol::ExecStdout>(m->payload)).data;
            result.out.append(data.begin(), data.end());
        }
        if (m->type == MessageType::ExecExited) {
            result.code = MUST(protocol::decode_payload<protocol::ExecExited>(m->payload)).code;
            break;
        }
    }
    return result;
}

class AgentGuest : public ::testing::Test {
protected:
    void SetUp() override {
        m_kernel = kernel_path();
        if (m_kernel.empty() || !exists(m_kernel))
            GTEST_SKIP() << "guest kernel not built: " << m_kernel;
        if (!exists(initramfs_path())) GTEST_SKIP() << "initramfs not built: " << initramfs_path();
        char tmpl[] = "/tmp/msb-agent-guest-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
    }
    void TearDown() override {
        if (!m_dir.empty()) std::system(("rm -rf '" + m_dir + "'").c_str());
    }

    std::vector<std::string> qemu_argv(const std::string& initrd, const std::string& socket) {
        return {"/usr/bin/qemu-system-x86_64",
                "-M",
                "microvm,pit=on,pic=on,rtc=on,acpi=off",
                "-accel",
                "tcg",
                "-cpu",
                "max",
                "-m",
                "256",
                "-nodefaults",
                "-no-user-config",
                "-nographic",
                "-serial",
                "stdio",
                "-device",
                "i8042",
                "-no-reboot",
                "-kernel",
                m_kernel,
                "-initrd",
                initrd,
                "-append",
                kCmdline,
                "-device",
                "virtio-serial-device",
                "-chardev",
                "socket,id=agent,path=" + socket + ",server=on,wait=off",
                "-device",
                "virtserialport,chardev=agent,name=agent"};
    }

    std::string m_kernel;
    std::string m_dir;
};

TEST_F(AgentGuest, ReadyArrivesOnTheAgentPortAndExecAndShutdownWork) {
    if (!exists("/usr/bin/qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86 not installed";
    BootConfig config;
    config.env = {"MSB_HOSTNAME=guest-test", "MSB_TMPFS=/scratch,size=8,noexec", "GREETING=hello"};
    std::string initrd = make_initrd(m_dir, config);
    std::string socket = m_dir + "/agent.sock";
    Deadline watchdog = Deadline::after(kBootWatchdog);
    Vmm vmm(qemu_argv(initrd, socket), m_dir + "/serial.log");
    ASSERT_TRUE(vmm.running());

    PortClient client;
    ASSERT_TRUE(client.connect(socket, watchdog));
    auto ready = client.next(watchdog);
    ASSERT_TRUE(ready.has_value()) << read_file(m_dir + "/serial.log");
    ASSERT_EQ(ready->type, MessageType::Ready);
    auto payload = MUST(protocol::decode_payload<protocol::Ready>(ready->payload));
    EXPECT_GT(payload.ready_time_ns, payload.boot_time_ns);
    EXPECT_GT(payload.init_time_ns, 0u);
    std::printf("core.ready: boot %.3f s, init %.3f s, ready %.3f s (guest CLOCK_BOOTTIME)\n",
                payload.boot_time_ns / 1e9, payload.init_time_ns / 1e9,
                payload.ready_time_ns / 1e9);

    auto exec = run_exec(
        client, 1, "/bin/sh",
        {"-c", "hostname; echo $GREETING; grep ' /scratch ' /proc/mounts; echo $PATH"}, watchdog);
    EXPECT_EQ(exec.code, 0) << exec.out;
    EXPECT_NE(exec.out.find("guest-test\nhello\n"), std::string::npos) << exec.out;
    EXPECT_NE(exec.out.find("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"), std::string::npos)
        << exec.out;
    EXPECT_NE(exec.out.find("/.msb/scripts:"), std::string::npos) << exec.out;

    auto missing = run_exec(client, 2, "no-such-command", {}, watchdog);
    EXPECT_EQ(missing.code, 127);

    client.send(0, protocol::Shutdown{});
    auto status = vmm.wait(watchdog);
    ASSERT_TRUE(status.has_value()) << "VM did not power off";
    // QEMU has no exit port: the kernel reports init's status in its panic line.
    EXPECT_NE(read_file(m_dir + "/serial.log").find("exitcode=0x00000000"), std::string::npos)
        << read_file(m_dir + "/serial.log");
}

TEST_F(AgentGuest, MainCommandStatusEndsTheVmAndBadVariablesFailTheBoot) {
    if (!exists("/usr/bin/qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86 not installed";
    // One boot: the main command's status is the VM's (42 → wait status 0x2a00).
    BootConfig config;
    config.exec_path = "/bin/sh";
    config.exec_args = {"-c", "echo main-command-ran; exit 42"};
    config.env = {"PATH=/bin:/sbin"};
    std::string initrd = make_initrd(m_dir, config);
    Deadline watchdog = Deadline::after(kBootWatchdog);
    {
        Vmm vmm(qemu_argv(initrd, m_dir + "/a.sock"), m_dir + "/serial-a.log");
        ASSERT_TRUE(vmm.wait(watchdog).has_value()) << "VM did not power off";
    }
    std::string log = read_file(m_dir + "/serial-a.log");
    EXPECT_NE(log.find("main-command-ran"), std::string::npos) << log;
    EXPECT_NE(log.find("exitcode=0x00002a00"), std::string::npos) << log;

    // A malformed variable is reported on the console and ends the boot with status 241.
    config.exec_path.reset();
    config.env = {"MSB_TMPFS=/x,size=lots"};
    initrd = make_initrd(m_dir, config);
    {
        Vmm vmm(qemu_argv(initrd, m_dir + "/b.sock"), m_dir + "/serial-b.log");
        ASSERT_TRUE(vmm.wait(watchdog).has_value()) << "VM did not power off";
    }
    log = read_file(m_dir + "/serial-b.log");
    EXPECT_NE(log.find("MSB_TMPFS=\"/x,size=lots\": size: not a number"), std::string::npos) << log;
    EXPECT_NE(log.find("exitcode=0x0000f100"), std::string::npos) << log;
}

TEST_F(AgentGuest, BlockRootSwitchDiskMountAndFsOps) {
    if (!exists("/usr/bin/qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86 not installed";
    if (!exists("/sbin/mke2fs") || !exists("/usr/bin/cpio"))
        GTEST_SKIP() << "e2fsprogs/cpio not installed";
    // Root disk: the busybox tree of the initramfs (without /init) plus a marker file.
    std::string d = m_dir;
    std::string script = "set -e; mkdir -p '" + d + "/root' '" + d + "/data'; cd '" + d +
                         "/root'; "
                         "cpio -idm --quiet < '" +
                         initramfs_path() +
                         "'; rm -f init; echo block-root > etc/marker; "
                         "echo hello-data > '" +
                         d +
                         "/data/hello.txt'; "
                         "mke2fs -q -F -t ext4 -d '" +
                         d + "/root' '" + d +
                         "/root.img' 32M; "
                         "mke2fs -q -F -t ext4 -d '" +
                         d + "/data' '" + d + "/data.img' 8M";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\" > " + d + "/mkfs.log 2>&1").c_str()), 0)
        << read_file(d + "/mkfs.log");

    BootConfig config;
    config.env = {"MSB_BLOCK_ROOT=kind=disk-image,device=/dev/vda",
                  "MSB_DISK_MOUNTS=data-1:/mnt/data:ro"};
    std::string initrd = make_initrd(m_dir, config);
    std::string socket = m_dir + "/agent.sock";
    auto argv = qemu_argv(initrd, socket);
    for (std::string arg :
         std::vector<std::string>{"-drive", "id=root,file=" + d + "/root.img,format=raw,if=none",
                                  "-device", "virtio-blk-device,drive=root,serial=root", "-drive",
                                  "id=data,file=" + d + "/data.img,format=raw,if=none,readonly=on",
                                  "-device", "virtio-blk-device,drive=data,serial=data-1"})
        argv.push_back(arg);
    Deadline watchdog = Deadline::after(kBootWatchdog);
    Vmm vmm(argv, m_dir + "/serial.log");
    PortClient client;
    ASSERT_TRUE(client.connect(socket, watchdog));
    auto ready = client.next(watchdog);
    ASSERT_TRUE(ready.has_value()) << read_file(m_dir + "/serial.log");

    auto exec = run_exec(
        client, 1, "/bin/sh",
        {"-c",
         "cat /etc/marker /mnt/data/hello.txt; grep -E ' / | /mnt/data ' /proc/mounts; "
         "test -e /init || echo no-initramfs; touch /mnt/data/x 2>/dev/null || echo ro-ok"},
        watchdog);
    EXPECT_EQ(exec.code, 0) << exec.out;
    EXPECT_NE(exec.out.find("block-root\nhello-data\n"), std::string::npos) << exec.out;
    EXPECT_NE(exec.out.find("/dev/vda / ext4 rw"), std::string::npos) << exec.out;
    EXPECT_NE(exec.out.find("/mnt/data ext4 ro"), std::string::npos) << exec.out;
    EXPECT_NE(exec.out.find("no-initramfs"), std::string::npos) << exec.out;
    EXPECT_NE(exec.out.find("ro-ok"), std::string::npos) << exec.out;

    // fs ops in the guest: write a file in two chunks, read it back.
    client.send(2, protocol::FsRequest{protocol::FsOp::write("/root/note.txt", 0600)});
    client.send(2, protocol::FsData{std::vector<uint8_t>{'a', 'b'}});
    client.send(2, protocol::FsData{std::vector<uint8_t>{'c'}});
    client.send(2, protocol::FsData{});
    auto written = client.next(watchdog);
    ASSERT_TRUE(written.has_value());
    EXPECT_TRUE(MUST(protocol::decode_payload<protocol::FsResponse>(written->payload)).ok);
    client.send(3, protocol::FsRequest{protocol::FsOp::read("/root/note.txt")});
    std::string content;
    while (auto m = client.next(watchdog)) {
        if (m->type == MessageType::FsData) {
            auto data = MUST(protocol::decode_payload<protocol::FsData>(m->payload)).data;
            content.append(data.begin(), data.end());
        }
        if (m->type == MessageType::FsResponse) break;
    }
    EXPECT_EQ(content, "abc");

    client.send(0, protocol::Shutdown{});
    ASSERT_TRUE(vmm.wait(watchdog).has_value()) << "VM did not power off";
    EXPECT_NE(read_file(m_dir + "/serial.log").find("exitcode=0x00000000"), std::string::npos);
}

TEST_F(AgentGuest, MsbVmmRunEndsWithTheMainCommandsStatus) {
    std::string msb = std::string(MSB_BINARY_DIR) + "/msb";
    if (!exists("/dev/kvm")) GTEST_SKIP() << "/dev/kvm is absent";
    ASSERT_TRUE(exists(msb)) << "msb is built with the tests but is missing: " << msb;
    BootConfig config;
    config.exec_path = "/bin/sh";
    config.exec_args = {"-c", "exit 42"};
    std::string initrd = make_initrd(m_dir, config);
    Vmm vmm({msb, "vmm-run", "--kernel", m_kernel, "--initrd", initrd}, m_dir + "/vmm.log");
    auto status = vmm.wait(Deadline::after(kBootWatchdog));
    ASSERT_TRUE(status.has_value()) << "watchdog: " << read_file(m_dir + "/vmm.log");
    ASSERT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 42) << read_file(m_dir + "/vmm.log");
}

// PVM regression. The guest kernel runs with `noxsave` there and preserves only the FXSAVE
// state of a task, while user code runs on the host CPU under the host's XCR0: it is told AVX is
// enabled and the upper halves of %ymm leak between processes — seen as runs of zeros in the
// middle of a pipe's data, from glibc's AVX memcpy. The VMM's GLIBC_TUNABLES (on the kernel
// command line, passed on by the agent) must keep glibc off AVX there. On hardware KVM the
// kernel uses XSAVE and nothing leaks.
TEST_F(AgentGuest, GlibcUsesOnlyTheVectorStateTheKernelSaves) {
    std::string msb = std::string(MSB_BINARY_DIR) + "/msb";
    std::string checker = std::string(MSB_BINARY_DIR) + "/tests/guests/xstate_check";
    if (!exists("/dev/kvm")) GTEST_SKIP() << "/dev/kvm is absent";
    ASSERT_TRUE(exists(msb)) << "msb is built with the tests but is missing: " << msb;
    ASSERT_TRUE(exists(checker)) << "xstate_check is built with the tests but is missing";
    BootConfig config;
    config.exec_path = "/xstate_check";
    config.exec_args = {"100"};
    std::string initrd = make_initrd(m_dir, config, {{"xstate_check", checker, 0755}});
    Vmm vmm({msb, "vmm-run", "--kernel", m_kernel, "--initrd", initrd}, m_dir + "/vmm.log");
    auto status = vmm.wait(Deadline::after(kBootWatchdog));
    std::string log = read_file(m_dir + "/vmm.log");
    ASSERT_TRUE(status.has_value()) << "watchdog: " << log;
    ASSERT_TRUE(WIFEXITED(*status)) << log;
    EXPECT_EQ(WEXITSTATUS(*status), 0) << log;
    EXPECT_NE(log.find("xstate: "), std::string::npos) << log;
    if (exists("/sys/module/kvm_pvm")) {
        EXPECT_TRUE(log.find("glibc AVX off") != std::string::npos ||
                    log.find("AVX is not enabled by the OS") != std::string::npos)
            << log;
    }
}

}  // namespace
}  // namespace msb::agent
