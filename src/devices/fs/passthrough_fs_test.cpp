// PassthroughFs against temporary directories, including attempts to escape the share.
#include "devices/fs/passthrough_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace msb::devices::fs {
namespace {

namespace stdfs = std::filesystem;

std::string slurp(const stdfs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
void spit(const stdfs::path& p, const std::string& data) { std::ofstream(p) << data; }

struct CollectingSink : DirSink {
    std::vector<std::string> names;
    uint64_t last_offset = 0;
    size_t limit = SIZE_MAX;
    bool add(std::string_view name, uint64_t, uint32_t, uint64_t next) override {
        if (names.size() >= limit) return false;
        names.emplace_back(name);
        last_offset = next;
        return true;
    }
};

// A share and, beside it, an "outside" directory holding a secret that must never be read or
// changed through the share.
class PassthroughFsTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/msb-fs-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        base = tmpl;
        share = base / "share";
        outside = base / "outside";
        stdfs::create_directories(share / "sub");
        stdfs::create_directories(outside);
        spit(outside / "secret", kSecret);
        spit(share / "sub" / "secret", "harmless");
        spit(share / "file", "hello world");
        outside_mtime = stdfs::last_write_time(outside / "secret");
        fs = MUST(PassthroughFs::create(share.string(), Access::ReadWrite));
    }
    void TearDown() override {
        // Zero escapes: the outside is exactly as it was.
        EXPECT_EQ(slurp(outside / "secret"), kSecret);
        EXPECT_EQ(stdfs::last_write_time(outside / "secret"), outside_mtime);
        std::vector<std::string> entries;
        for (auto& e : stdfs::directory_iterator(outside))
            entries.push_back(e.path().filename().string());
        EXPECT_EQ(entries, std::vector<std::string>{"secret"});
        struct stat st {};
        ASSERT_EQ(::stat((outside / "secret").c_str(), &st), 0);
        EXPECT_EQ(st.st_nlink, 1u);
        EXPECT_EQ(st.st_mode & 07777, 0644u & ~current_umask());
        fs.reset();
        stdfs::remove_all(base);
    }
    static mode_t current_umask() {
        mode_t m = ::umask(0);
        ::umask(m);
        return m;
    }
    std::string read_all(uint64_t node, uint64_t handle) {
        std::vector<uint8_t> buf(4096);
        auto n = fs->read(node, handle, 0, buf);
        if (!n.ok()) return "<error>";
        return std::string(buf.begin(), buf.begin() + static_cast<long>(*n));
    }

    static constexpr const char* kSecret = "TOP SECRET";
    stdfs::path base, share, outside;
    stdfs::file_time_type outside_mtime;
    std::shared_ptr<PassthroughFs> fs;
};

TEST_F(PassthroughFsTest, LooksUpReadsAndWritesFiles) {
    auto e = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    EXPECT_EQ(e.attr.st_size, 11);
    auto h = MUST(fs->open(e.node, O_RDWR));
    EXPECT_EQ(read_all(e.node, h.handle), "hello world");
    const std::string data = "HELLO";
    EXPECT_EQ(MUST(fs->write(e.node, h.handle, 0,
                             {reinterpret_cast<const uint8_t*>(data.data()), data.size()})),
              5u);
    EXPECT_EQ(slurp(share / "file"), "HELLO world");
    MUST(fs->release(e.node, h.handle));
    EXPECT_EQ(fs->handle_count(), 0u);
}

TEST_F(PassthroughFsTest, SameInodeIsOneNodeAndForgetDropsIt) {
    auto a = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    auto b = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    EXPECT_EQ(a.node, b.node);
    EXPECT_EQ(fs->inode_count(), 2u);  // root + file
    fs->forget(a.node, 1);
    EXPECT_EQ(fs->inode_count(), 2u);
    fs->forget(a.node, 1);
    EXPECT_EQ(fs->inode_count(), 1u);
    EXPECT_EQ(fs->getattr(a.node, std::nullopt).error().code(), EBADF);
    fs->forget(FUSE_ROOT_ID, 100);  // the root is never forgotten
    EXPECT_TRUE(fs->getattr(FUSE_ROOT_ID, std::nullopt).ok());
}

TEST_F(PassthroughFsTest, CreatesDirectoriesFilesAndListsThem) {
    auto d = MUST(fs->mkdir(FUSE_ROOT_ID, "dir", 0755, 022));
    EXPECT_TRUE(S_ISDIR(d.attr.st_mode));
    auto c = MUST(fs->create(d.node, "new", 0644, O_WRONLY | O_CREAT | O_EXCL, 022));
    const std::string data = "payload";
    MUST(fs->write(c.entry.node, c.opened.handle, 0,
                   {reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
    EXPECT_EQ(slurp(share / "dir" / "new"), "payload");
    EXPECT_EQ(fs->create(d.node, "new", 0644, O_WRONLY | O_CREAT | O_EXCL, 0).error().code(),
              EEXIST);
    auto h = MUST(fs->opendir(d.node, 0));
    CollectingSink sink;
    MUST(fs->readdir(d.node, h.handle, 0, sink));
    std::sort(sink.names.begin(), sink.names.end());
    EXPECT_EQ(sink.names, (std::vector<std::string>{".", "..", "new"}));
    // Resuming from an offset continues after the entries already taken.
    CollectingSink first;
    first.limit = 1;
    MUST(fs->readdir(d.node, h.handle, 0, first));
    CollectingSink rest;
    MUST(fs->readdir(d.node, h.handle, first.last_offset, rest));
    EXPECT_EQ(rest.names.size(), 2u);
    MUST(fs->releasedir(d.node, h.handle));
    MUST(fs->unlink(d.node, "new"));
    MUST(fs->rmdir(FUSE_ROOT_ID, "dir"));
    EXPECT_FALSE(stdfs::exists(share / "dir"));
}

TEST_F(PassthroughFsTest, SetattrTruncatesChmodsAndTouches) {
    auto e = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    SetAttr a;
    a.size = 5;
    a.mode = 0600;
    a.mtime = timespec{1000, 0};
    a.atime = timespec{0, UTIME_NOW};
    auto st = MUST(fs->setattr(e.node, a));
    EXPECT_EQ(st.st_size, 5);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_mtim.tv_sec, 1000);
    EXPECT_GT(st.st_atim.tv_sec, 1000);
    EXPECT_EQ(slurp(share / "file"), "hello");
}

TEST_F(PassthroughFsTest, ChownReturnsTheHostsAnswer) {
    auto e = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    SetAttr a;
    a.uid = 12345;
    auto r = fs->setattr(e.node, a);
    if (::geteuid() == 0) {
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->st_uid, 12345u);
    } else {
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code(), EPERM);
    }
}

TEST_F(PassthroughFsTest, RenameHonoursNoreplaceAndExchange) {
    spit(share / "other", "other");
    EXPECT_EQ(
        fs->rename(FUSE_ROOT_ID, "file", FUSE_ROOT_ID, "other", RENAME_NOREPLACE).error().code(),
        EEXIST);
    MUST(fs->rename(FUSE_ROOT_ID, "file", FUSE_ROOT_ID, "other", RENAME_EXCHANGE));
    EXPECT_EQ(slurp(share / "file"), "other");
    EXPECT_EQ(slurp(share / "other"), "hello world");
    auto sub = MUST(fs->lookup(FUSE_ROOT_ID, "sub"));
    MUST(fs->rename(FUSE_ROOT_ID, "other", sub.node, "moved", 0));
    EXPECT_EQ(slurp(share / "sub" / "moved"), "hello world");
    EXPECT_EQ(fs->rename(FUSE_ROOT_ID, "file", FUSE_ROOT_ID, "x", RENAME_WHITEOUT).error().code(),
              EINVAL);
}

TEST_F(PassthroughFsTest, SymlinksAreCreatedAndReadButNeverFollowed) {
    auto l = MUST(fs->symlink(FUSE_ROOT_ID, "abs", (outside / "secret").string()));
    EXPECT_TRUE(S_ISLNK(l.attr.st_mode));
    EXPECT_EQ(MUST(fs->readlink(l.node)), (outside / "secret").string());
    EXPECT_EQ(fs->open(l.node, O_RDONLY).error().code(), ELOOP);
    EXPECT_EQ(fs->open(l.node, O_WRONLY | O_TRUNC).error().code(), ELOOP);
    SetAttr a;
    a.size = 0;
    EXPECT_FALSE(fs->setattr(l.node, a).ok());
    a = {};
    a.mode = 0777;
    EXPECT_FALSE(fs->setattr(l.node, a).ok());
    std::vector<uint8_t> buf(64);
    EXPECT_FALSE(fs->getxattr(l.node, "user.x", buf).ok());
}

TEST_F(PassthroughFsTest, DotDotOfTheRootStaysAtTheRoot) {
    auto up = MUST(fs->lookup(FUSE_ROOT_ID, ".."));
    EXPECT_EQ(up.node, FUSE_ROOT_ID);
    auto sub = MUST(fs->lookup(FUSE_ROOT_ID, "sub"));
    EXPECT_EQ(fs->lookup(sub.node, "..").error().code(), EINVAL);
    EXPECT_EQ(fs->lookup(FUSE_ROOT_ID, "../outside").error().code(), EINVAL);
    EXPECT_EQ(fs->lookup(FUSE_ROOT_ID, "sub/secret").error().code(), EINVAL);
    EXPECT_EQ(fs->create(FUSE_ROOT_ID, "..", 0644, O_WRONLY, 0).error().code(), EINVAL);
    EXPECT_EQ(fs->mkdir(FUSE_ROOT_ID, ".", 0755, 0).error().code(), EINVAL);
    EXPECT_EQ(fs->unlink(FUSE_ROOT_ID, "..").error().code(), EINVAL);
    EXPECT_EQ(fs->rename(FUSE_ROOT_ID, "file", FUSE_ROOT_ID, "..", 0).error().code(), EINVAL);
    EXPECT_EQ(fs->rename(FUSE_ROOT_ID, "file", sub.node, "../../outside/x", 0).error().code(),
              EINVAL);
    EXPECT_EQ(fs->rename(sub.node, "..", FUSE_ROOT_ID, "x", 0).error().code(), EINVAL);
    EXPECT_EQ(fs->symlink(FUSE_ROOT_ID, "..", "/etc").error().code(), EINVAL);
}

TEST_F(PassthroughFsTest, AbsoluteSymlinksToTheOutsideCannotBeTraversed) {
    stdfs::create_symlink(outside, share / "out");
    stdfs::create_symlink("/etc", share / "etc");
    auto out = MUST(fs->lookup(FUSE_ROOT_ID, "out"));
    EXPECT_TRUE(S_ISLNK(out.attr.st_mode));
    EXPECT_FALSE(fs->lookup(out.node, "secret").ok());
    EXPECT_FALSE(fs->create(out.node, "planted", 0644, O_WRONLY | O_CREAT, 0).ok());
    EXPECT_FALSE(fs->mkdir(out.node, "planted", 0755, 0).ok());
    EXPECT_FALSE(fs->opendir(out.node, 0).ok());
    EXPECT_FALSE(fs->rename(FUSE_ROOT_ID, "file", out.node, "stolen", 0).ok());
    EXPECT_FALSE(fs->symlink(out.node, "l", "x").ok());
    auto etc = MUST(fs->lookup(FUSE_ROOT_ID, "etc"));
    EXPECT_FALSE(fs->lookup(etc.node, "passwd").ok());
    EXPECT_FALSE(fs->opendir(etc.node, 0).ok());
    // Relative symlinks climbing out are just as dead.
    stdfs::create_symlink("../outside/secret", share / "rel");
    auto rel = MUST(fs->lookup(FUSE_ROOT_ID, "rel"));
    EXPECT_EQ(fs->open(rel.node, O_RDONLY).error().code(), ELOOP);
    // Creating over a planted symlink does not write through it.
    stdfs::create_symlink(outside / "secret", share / "trap");
    EXPECT_FALSE(fs->create(FUSE_ROOT_ID, "trap", 0644, O_WRONLY | O_CREAT | O_TRUNC, 0).ok());
}

TEST_F(PassthroughFsTest, HardLinksCannotReachFilesOutside) {
    stdfs::create_symlink(outside / "secret", share / "ln");
    auto l = MUST(fs->lookup(FUSE_ROOT_ID, "ln"));
    // Linking a symlink node links the symlink itself (or fails), never its target.
    auto r = fs->link(l.node, FUSE_ROOT_ID, "hard");
    if (r.ok()) {
        EXPECT_TRUE(S_ISLNK(r->attr.st_mode));
    }
    auto f = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    auto h = MUST(fs->link(f.node, FUSE_ROOT_ID, "file2"));
    EXPECT_EQ(h.node, f.node);
    EXPECT_EQ(h.attr.st_nlink, 2u);
    EXPECT_FALSE(fs->link(f.node, FUSE_ROOT_ID, "..").ok());
    auto sub = MUST(fs->lookup(FUSE_ROOT_ID, "sub"));
    EXPECT_EQ(fs->link(sub.node, FUSE_ROOT_ID, "dirlink").error().code(), EPERM);
}

TEST_F(PassthroughFsTest, NeverOpensDevicesOrFifos) {
    EXPECT_EQ(fs->mknod(FUSE_ROOT_ID, "disk", S_IFBLK | 0600, makedev(8, 0), 0).error().code(),
              EPERM);
    EXPECT_EQ(fs->mknod(FUSE_ROOT_ID, "mem", S_IFCHR | 0600, makedev(1, 1), 0).error().code(),
              EPERM);
    auto fifo = MUST(fs->mknod(FUSE_ROOT_ID, "fifo", S_IFIFO | 0600, 0, 0));
    EXPECT_TRUE(S_ISFIFO(fifo.attr.st_mode));
    // Opening it would block the device thread forever; it is refused instead.
    EXPECT_EQ(fs->open(fifo.node, O_RDONLY).error().code(), EPERM);
    EXPECT_EQ(fs->create(FUSE_ROOT_ID, "fifo", 0644, O_RDONLY | O_CREAT, 0).error().code(), EPERM);
    EXPECT_EQ(fs->create(FUSE_ROOT_ID, "fifo", 0644, O_WRONLY | O_CREAT, 0).error().code(),
              ENXIO);  // no reader; without O_NONBLOCK this would have blocked
    // A host device node that is already in the share is not opened either.
    if (::geteuid() == 0) {
        ASSERT_EQ(::mknod((share / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
        auto null = MUST(fs->lookup(FUSE_ROOT_ID, "null"));
        EXPECT_EQ(fs->open(null.node, O_RDONLY).error().code(), EPERM);
    }
}

TEST_F(PassthroughFsTest, UnknownNodesAndHandlesAreEbadf) {
    EXPECT_EQ(fs->lookup(999, "x").error().code(), EBADF);
    auto f = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(fs->read(f.node, 12345, 0, buf).error().code(), EBADF);
    auto h = MUST(fs->open(f.node, O_RDONLY));
    // A handle presented with another node is refused.
    EXPECT_EQ(fs->read(FUSE_ROOT_ID, h.handle, 0, buf).error().code(), EBADF);
}

TEST_F(PassthroughFsTest, XattrsRoundTrip) {
    auto f = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    const std::string v = "value";
    auto s = fs->setxattr(f.node, "user.msb", {reinterpret_cast<const uint8_t*>(v.data()), 5}, 0);
    if (!s.ok() && (s.error().code() == ENOTSUP || s.error().code() == EOPNOTSUPP))
        GTEST_SKIP() << "the temp file system has no user xattrs";
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(MUST(fs->getxattr(f.node, "user.msb", {})), 5u);
    std::vector<uint8_t> buf(64);
    EXPECT_EQ(MUST(fs->getxattr(f.node, "user.msb", buf)), 5u);
    EXPECT_EQ(std::string(buf.begin(), buf.begin() + 5), "value");
    EXPECT_GE(MUST(fs->listxattr(f.node, {})), 9u);
    MUST(fs->removexattr(f.node, "user.msb"));
    EXPECT_FALSE(fs->getxattr(f.node, "user.msb", buf).ok());
}

TEST_F(PassthroughFsTest, SeeksAllocatesAndCopiesRanges) {
    auto c = MUST(fs->create(FUSE_ROOT_ID, "big", 0644, O_RDWR | O_CREAT, 0));
    MUST(fs->fallocate(c.entry.node, c.opened.handle, 0, 0, 8192));
    EXPECT_EQ(stdfs::file_size(share / "big"), 8192u);
    EXPECT_EQ(MUST(fs->lseek(c.entry.node, c.opened.handle, 0, SEEK_END)), 8192u);
    auto f = MUST(fs->lookup(FUSE_ROOT_ID, "file"));
    auto in = MUST(fs->open(f.node, O_RDONLY));
    FileSystem::CopyRange range{f.node, in.handle, 0, c.entry.node, c.opened.handle, 100, 5, 0};
    EXPECT_EQ(MUST(fs->copy_file_range(range)), 5u);
    EXPECT_EQ(slurp(share / "big").substr(100, 5), "hello");
    MUST(fs->fsync(c.entry.node, c.opened.handle, FileSystem::Sync::DataOnly));
    EXPECT_GT(MUST(fs->statfs(FUSE_ROOT_ID)).f_bsize, 0u);
}

TEST_F(PassthroughFsTest, ReadOnlyShareRefusesEveryMutatingOperationWithErofs) {
    auto ro = MUST(PassthroughFs::create(share.string(), Access::ReadOnly));
    auto f = MUST(ro->lookup(FUSE_ROOT_ID, "file"));
    auto sub = MUST(ro->lookup(FUSE_ROOT_ID, "sub"));
    auto rd = MUST(ro->open(f.node, O_RDONLY));
    const uint8_t byte = 'x';
    auto code = [](const auto& r) { return r.ok() ? 0 : r.error().code(); };
    SetAttr size;
    size.size = 0;
    SetAttr mode;
    mode.mode = 0777;
    SetAttr times;
    times.mtime = timespec{0, UTIME_NOW};
    FileSystem::CopyRange range{f.node, rd.handle, 0, f.node, rd.handle, 0, 1, 0};
    EXPECT_EQ(code(ro->open(f.node, O_WRONLY)), EROFS);
    EXPECT_EQ(code(ro->open(f.node, O_RDWR)), EROFS);
    EXPECT_EQ(code(ro->open(f.node, O_RDONLY | O_TRUNC)), EROFS);
    EXPECT_EQ(code(ro->create(FUSE_ROOT_ID, "new", 0644, O_WRONLY | O_CREAT, 0)), EROFS);
    EXPECT_EQ(code(ro->create(FUSE_ROOT_ID, "new", 0644, O_RDONLY | O_CREAT, 0)), EROFS);
    EXPECT_EQ(code(ro->setattr(f.node, size)), EROFS);
    EXPECT_EQ(code(ro->setattr(f.node, mode)), EROFS);
    EXPECT_EQ(code(ro->setattr(f.node, times)), EROFS);
    EXPECT_EQ(code(ro->write(f.node, rd.handle, 0, {&byte, 1})), EROFS);
    EXPECT_EQ(code(ro->mkdir(FUSE_ROOT_ID, "d", 0755, 0)), EROFS);
    EXPECT_EQ(code(ro->mknod(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, 0)), EROFS);
    EXPECT_EQ(code(ro->symlink(FUSE_ROOT_ID, "l", "file")), EROFS);
    EXPECT_EQ(code(ro->link(f.node, FUSE_ROOT_ID, "h")), EROFS);
    EXPECT_EQ(code(ro->unlink(FUSE_ROOT_ID, "file")), EROFS);
    EXPECT_EQ(code(ro->rmdir(FUSE_ROOT_ID, "sub")), EROFS);
    EXPECT_EQ(code(ro->rename(FUSE_ROOT_ID, "file", sub.node, "file", 0)), EROFS);
    EXPECT_EQ(code(ro->setxattr(f.node, "user.x", {&byte, 1}, 0)), EROFS);
    EXPECT_EQ(code(ro->removexattr(f.node, "user.x")), EROFS);
    EXPECT_EQ(code(ro->fallocate(f.node, rd.handle, 0, 0, 4096)), EROFS);
    EXPECT_EQ(code(ro->copy_file_range(range)), EROFS);
    EXPECT_EQ(code(ro->access(f.node, W_OK)), EROFS);
    // Reading still works, and nothing changed.
    EXPECT_EQ(code(ro->access(f.node, R_OK)), 0);
    std::vector<uint8_t> buf(64);
    EXPECT_EQ(MUST(ro->read(f.node, rd.handle, 0, buf)), 11u);
    EXPECT_EQ(slurp(share / "file"), "hello world");
    EXPECT_FALSE(stdfs::exists(share / "new"));
    EXPECT_TRUE(stdfs::exists(share / "sub"));
}

// A thread keeps swapping share/flip between a real directory and a symlink to the outside
// (atomically, with RENAME_EXCHANGE) while the guest side looks it up and works inside it.
// Whatever the interleaving, every operation lands in the real directory or fails.
TEST_F(PassthroughFsTest, DirectorySwappedForSymlinkRaceNeverEscapes) {
    stdfs::create_directories(share / "flip");
    spit(share / "flip" / "secret", "inside");
    stdfs::create_symlink(outside, share / "flop");
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> swaps{0};
    int share_fd = ::open(share.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(share_fd, 0);
    std::thread flipper([&] {
        while (!stop) {
            if (::syscall(SYS_renameat2, share_fd, "flip", share_fd, "flop", RENAME_EXCHANGE) == 0)
                ++swaps;
        }
    });
    int reads_inside = 0;
    std::vector<uint8_t> buf(64);
    for (int i = 0; i < 2000; ++i) {
        auto d = fs->lookup(FUSE_ROOT_ID, (i % 2) ? "flip" : "flop");
        if (!d.ok()) continue;
        if (auto s = fs->lookup(d->node, "secret"); s.ok()) {
            if (auto h = fs->open(s->node, O_RDWR); h.ok()) {
                auto n = fs->read(s->node, h->handle, 0, buf);
                if (n.ok()) {
                    EXPECT_EQ(std::string(buf.begin(), buf.begin() + static_cast<long>(*n)),
                              "inside");
                    ++reads_inside;
                }
                const uint8_t x = 'i';
                (void)fs->write(s->node, h->handle, 0, {&x, 1});
                (void)fs->release(s->node, h->handle);
            }
            fs->forget(s->node, 1);
        }
        if (auto c = fs->create(d->node, "planted", 0644, O_WRONLY | O_CREAT, 0); c.ok()) {
            (void)fs->release(c->entry.node, c->opened.handle);
            fs->forget(c->entry.node, 1);
        }
        (void)fs->mkdir(d->node, "planted-dir", 0755, 0);
        (void)fs->unlink(d->node, "secret-not-there");
        if (auto h = fs->opendir(d->node, 0); h.ok()) {
            CollectingSink sink;
            (void)fs->readdir(d->node, h->handle, 0, sink);
            for (auto& n : sink.names) EXPECT_NE(n, "secret-outside-marker");
            (void)fs->releasedir(d->node, h->handle);
        }
        fs->forget(d->node, 1);
    }
    stop = true;
    flipper.join();
    ::close(share_fd);
    EXPECT_GT(swaps.load(), 0u);
    EXPECT_GT(reads_inside, 0);
    EXPECT_EQ(fs->inode_count() >= 1, true);
    // TearDown checks the outside directory is untouched; the plants ended up inside.
    stdfs::path real = stdfs::is_symlink(share / "flip") ? share / "flop" : share / "flip";
    EXPECT_TRUE(stdfs::exists(real / "planted"));
}

}  // namespace
}  // namespace msb::devices::fs
