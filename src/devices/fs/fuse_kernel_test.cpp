// FuseServer + PassthroughFs against the host kernel's own FUSE client: the share is mounted
// through /dev/fuse and a thread serves it with the same FuseServer the virtio-fs device uses,
// so the real kernel (page cache, shared mappings, truncation, readahead) drives our server at
// native speed. fsx (tests/guests/fsx.c) then runs many seeds on the mount.
//
// Needs root (mount(2)) and /dev/fuse; skips with the reason otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "devices/fs/fuse_server.h"
#include "devices/fs/passthrough_fs.h"
#include "testing/fsx.h"

namespace msb::devices::fs {
namespace {

namespace stdfs = std::filesystem;

// A share mounted at `mountpoint` through /dev/fuse, served by FuseServer on a thread.
class KernelMount {
public:
    static std::string unavailable_reason() {
        if (::geteuid() != 0) return "mounting FUSE needs root";
        if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is missing";
        return "";
    }

    KernelMount(const stdfs::path& share, const stdfs::path& mountpoint, Access access,
                FuseServer::Options options = {})
        : m_mountpoint(mountpoint) {
        m_fs = MUST(PassthroughFs::create(share.string(), access));
        m_server = std::make_unique<FuseServer>(*m_fs, options);
        m_dev.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
        EXPECT_TRUE(m_dev) << "open /dev/fuse: " << std::strerror(errno);
        std::string data = "fd=" + std::to_string(m_dev.get()) +
                           ",rootmode=40000,user_id=0,group_id=0,allow_other";
        m_mounted = ::mount("msb-test", mountpoint.c_str(), "fuse", MS_NOSUID | MS_NODEV,
                            data.c_str()) == 0;
        m_mount_errno = m_mounted ? 0 : errno;
        if (m_mounted) m_thread = std::thread([this] { serve(); });
    }

    ~KernelMount() {
        if (m_mounted) ::umount2(m_mountpoint.c_str(), MNT_DETACH);
        if (m_thread.joinable()) m_thread.join();
    }

    bool mounted() const { return m_mounted; }
    int mount_errno() const { return m_mount_errno; }
    uint64_t malformed() const { return m_server->malformed(); }

private:
    // Requests come one per read(); a reply goes back with one write(). The kernel aborts the
    // connection (ENODEV) once the mount is gone.
    void serve() {
        std::vector<uint8_t> request(FuseServer::kMaxRequest);
        std::vector<uint8_t> reply(FuseServer::kMaxReply);
        for (;;) {
            ssize_t n = ::read(m_dev.get(), request.data(), request.size());
            if (n < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN)) continue;
            if (n <= 0) return;
            size_t len = m_server->handle({request.data(), static_cast<size_t>(n)}, reply);
            if (len == 0) continue;
            if (::write(m_dev.get(), reply.data(), len) < 0 && errno == ENODEV) return;
        }
    }

    stdfs::path m_mountpoint;
    std::shared_ptr<PassthroughFs> m_fs;
    std::unique_ptr<FuseServer> m_server;
    UniqueFd m_dev;
    bool m_mounted = false;
    int m_mount_errno = 0;
    std::thread m_thread;
};

class FuseKernelTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto why = KernelMount::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
        char tmpl[] = "/tmp/msb-fuse-kernel-XXXXXX";
        m_dir = ::mkdtemp(tmpl);
        stdfs::create_directories(m_dir / "share");
        stdfs::create_directories(m_dir / "mnt");
    }
    void TearDown() override {
        m_mount.reset();
        if (!m_dir.empty()) stdfs::remove_all(m_dir);
    }
    void mount(Access access = Access::ReadWrite, FuseServer::Options options = {}) {
        m_mount = std::make_unique<KernelMount>(m_dir / "share", m_dir / "mnt", access, options);
        // A container may forbid mounts even to root; anything else is a failure.
        if (m_mount->mount_errno() == EPERM)
            GTEST_SKIP() << "mount(2) is not permitted here (EPERM)";
        ASSERT_TRUE(m_mount->mounted()) << "mount: " << std::strerror(m_mount->mount_errno());
    }

    stdfs::path m_dir;
    std::unique_ptr<KernelMount> m_mount;
};

// Runs a command (no shell); returns its exit status and stdout.
std::pair<int, std::string> run(const std::vector<std::string>& argv) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return {-1, ""};
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
}

std::string slurp(const stdfs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

TEST_F(FuseKernelTest, FilesWrittenThroughTheMountAreTheShareFiles) {
    mount();
    if (IsSkipped() || HasFatalFailure()) return;
    std::ofstream(m_dir / "mnt" / "a.txt") << "through fuse";
    stdfs::create_directories(m_dir / "mnt" / "sub" / "deeper");
    EXPECT_EQ(slurp(m_dir / "share" / "a.txt"), "through fuse");
    EXPECT_TRUE(stdfs::is_directory(m_dir / "share" / "sub" / "deeper"));
    std::ofstream(m_dir / "share" / "b.txt") << "from the host";
    EXPECT_EQ(slurp(m_dir / "mnt" / "b.txt"), "from the host");
    EXPECT_EQ(m_mount->malformed(), 0u);
}

// fsx's random writes, truncates, reads and shared-mapping reads and writes, checked against
// its model, over many seeds; the share's file must then hold the model's bytes.
TEST_F(FuseKernelTest, FsxFindsNoDifferenceFromItsModel) {
    // Attributes that expire at once: every operation revalidates against the server, as in a
    // slow guest where the one-second timeouts lapse between operations.
    const char* zero = std::getenv("MSB_TEST_FUSE_ZERO_TIMEOUTS");
    mount(Access::ReadWrite, zero ? FuseServer::Options{0, 0} : FuseServer::Options{});
    if (IsSkipped() || HasFatalFailure()) return;
    for (int seed = 1; seed <= 40; ++seed) {
        auto [code, out] = run({MSB_FSX_BINARY, (m_dir / "mnt" / "fsx.file").string(), "3000",
                                std::to_string(seed), "262144"});
        ASSERT_EQ(code, 0) << "seed " << seed << ":\n" << out;
        ASSERT_NE(out.find("mmap=yes"), std::string::npos) << out;
        std::string summary = testing::fsx_summary(slurp(m_dir / "share" / "fsx.file"));
        ASSERT_NE(out.find(summary), std::string::npos)
            << "seed " << seed << ": the share holds " << summary << ", fsx says " << out;
    }
    EXPECT_EQ(m_mount->malformed(), 0u);
}

TEST_F(FuseKernelTest, AReadOnlyShareRefusesWritesWithErofs) {
    std::ofstream(m_dir / "share" / "keep.txt") << "kept";
    mount(Access::ReadOnly);
    if (IsSkipped() || HasFatalFailure()) return;
    int fd = ::open((m_dir / "mnt" / "new.txt").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_EQ(fd, -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::truncate((m_dir / "mnt" / "keep.txt").c_str(), 0), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(slurp(m_dir / "mnt" / "keep.txt"), "kept");
    EXPECT_FALSE(stdfs::exists(m_dir / "share" / "new.txt"));
}

}  // namespace
}  // namespace msb::devices::fs
