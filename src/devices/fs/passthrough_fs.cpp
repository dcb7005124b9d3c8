// PassthroughFs: the host side of virtio-fs (escape-prevention rules in passthrough_fs.h).
#include "devices/fs/passthrough_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/fuse.h>
#include <linux/limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

namespace msb::devices::fs {

namespace {

Error last_error() { return fs_error(errno); }

bool is_plain_name(std::string_view name) {
    return !name.empty() && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos && name.size() <= kMaxName;
}

// Opens one path component below `dir` without following symlinks anywhere.
int open_beneath(int dir, const std::string& name, int flags, mode_t mode = 0) {
    static bool have_openat2 = true;
    flags |= O_NOFOLLOW | O_CLOEXEC;
    if (have_openat2) {
        open_how how{};
        how.flags = static_cast<uint64_t>(flags);
        how.mode = (flags & O_CREAT) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = ::syscall(SYS_openat2, dir, name.c_str(), &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS) return static_cast<int>(fd);
        have_openat2 = false;  // Linux < 5.6: the name is a single component and O_NOFOLLOW
    }
    return ::openat(dir, name.c_str(), flags, mode);
}

bool stat_fd(int fd, struct stat& st) {
    return ::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0;
}

}  // namespace

Result<std::shared_ptr<PassthroughFs>> PassthroughFs::create(const std::string& root,
                                                             Access access) {
    int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("open virtio-fs share " + root);
    UniqueFd root_fd(fd);
    int proc = ::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return Error::from_errno("open /proc/self/fd");
    struct stat st {};
    if (!stat_fd(root_fd.get(), st)) return Error::from_errno("stat virtio-fs share " + root);
    std::shared_ptr<PassthroughFs> fs(new PassthroughFs(access, UniqueFd(proc)));
    fs->m_by_key[{st.st_dev, st.st_ino}] = FUSE_ROOT_ID;
    fs->m_inodes.emplace(FUSE_ROOT_ID, Inode{std::move(root_fd), st.st_dev, st.st_ino, S_IFDIR, 1});
    return fs;
}

Status PassthroughFs::check_writable() const {
    if (m_access == Access::ReadOnly) return fs_error(EROFS);
    return {};
}

std::string PassthroughFs::proc_path(const Inode& inode) const {
    return "/proc/self/fd/" + std::to_string(inode.fd.get());
}

Result<PassthroughFs::Inode*> PassthroughFs::inode(uint64_t node) {
    auto it = m_inodes.find(node);
    if (it == m_inodes.end()) return fs_error(EBADF);
    return &it->second;
}

Result<int> PassthroughFs::handle_fd(uint64_t node, uint64_t handle) {
    auto it = m_handles.find(handle);
    if (it == m_handles.end() || it->second.node != node) return fs_error(EBADF);
    return it->second.fd.get();
}

Result<UniqueFd> PassthroughFs::reopen(const Inode& inode, int flags) {
    // A symlink's O_PATH fd re-opened through /proc would reach whatever it points to.
    if (S_ISLNK(inode.type)) return fs_error(ELOOP);
    flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW);
    int fd =
        ::openat(m_proc_self_fd.get(), std::to_string(inode.fd.get()).c_str(), flags | O_CLOEXEC);
    if (fd < 0) return last_error();
    return UniqueFd(fd);
}

Result<uint64_t> PassthroughFs::add_handle(UniqueFd fd, uint64_t node) {
    if (m_handles.size() >= kMaxHandles) return fs_error(ENFILE);
    uint64_t id = m_next_handle++;
    m_handles.emplace(id, Handle{std::move(fd), node});
    return id;
}

Result<Entry> PassthroughFs::register_inode(UniqueFd fd) {
    Entry entry;
    if (!stat_fd(fd.get(), entry.attr)) return last_error();
    auto key = std::make_pair(entry.attr.st_dev, entry.attr.st_ino);
    if (auto it = m_by_key.find(key); it != m_by_key.end()) {
        ++m_inodes.at(it->second).lookups;
        entry.node = it->second;
        return entry;  // `fd` closes; the node keeps its own
    }
    if (m_inodes.size() >= kMaxInodes) return fs_error(ENFILE);
    entry.node = m_next_node++;
    m_inodes.emplace(entry.node, Inode{std::move(fd), entry.attr.st_dev, entry.attr.st_ino,
                                       static_cast<mode_t>(entry.attr.st_mode & S_IFMT), 1});
    m_by_key[key] = entry.node;
    return entry;
}

Result<Entry> PassthroughFs::lookup_in(Inode& parent, std::string_view name) {
    int fd = open_beneath(parent.fd.get(), std::string(name), O_PATH);
    if (fd < 0) return last_error();
    return register_inode(UniqueFd(fd));
}

Result<Entry> PassthroughFs::lookup(uint64_t parent, std::string_view name) {
    Inode* dir = TRY(inode(parent));
    if (name == "." || (name == ".." && parent == FUSE_ROOT_ID)) {
        // "." is the directory itself; ".." of the root stays at the root.
        Entry entry;
        if (!stat_fd(dir->fd.get(), entry.attr)) return last_error();
        entry.node = parent;
        ++dir->lookups;
        return entry;
    }
    if (!is_plain_name(name)) return fs_error(EINVAL);
    return lookup_in(*dir, name);
}

void PassthroughFs::forget(uint64_t node, uint64_t count) {
    auto it = m_inodes.find(node);
    if (it == m_inodes.end() || node == FUSE_ROOT_ID) return;
    Inode& i = it->second;
    i.lookups -= std::min(count, i.lookups);
    if (i.lookups > 0) return;
    m_by_key.erase({i.dev, i.ino});
    m_inodes.erase(it);
}

void PassthroughFs::destroy() {
    m_handles.clear();
    for (auto it = m_inodes.begin(); it != m_inodes.end();) {
        if (it->first == FUSE_ROOT_ID) {
            ++it;
            continue;
        }
        m_by_key.erase({it->second.dev, it->second.ino});
        it = m_inodes.erase(it);
    }
}

Result<struct stat> PassthroughFs::getattr(uint64_t node, std::optional<uint64_t> handle) {
    Inode* i = TRY(inode(node));
    struct stat st {};
    if (handle) {
        int fd = TRY(handle_fd(node, *handle));
        if (::fstat(fd, &st) != 0) return last_error();
        return st;
    }
    if (!stat_fd(i->fd.get(), st)) return last_error();
    return st;
}

Result<struct stat> PassthroughFs::setattr(uint64_t node, const SetAttr& a) {
    TRY(check_writable());
    Inode* i = TRY(inode(node));
    const std::string fd_name = std::to_string(i->fd.get());
    if (a.mode) {
        if (S_ISLNK(i->type)) return fs_error(EOPNOTSUPP);
        if (::fchmodat(m_proc_self_fd.get(), fd_name.c_str(), *a.mode, 0) != 0) return last_error();
    }
    if (a.uid || a.gid) {
        uid_t uid = a.uid ? *a.uid : static_cast<uid_t>(-1);
        gid_t gid = a.gid ? *a.gid : static_cast<gid_t>(-1);
        if (::fchownat(i->fd.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
            return last_error();
    }
    if (a.size) {
        if (*a.size > static_cast<uint64_t>(INT64_MAX)) return fs_error(EINVAL);
        int rc;
        if (a.handle) {
            int fd = TRY(handle_fd(node, *a.handle));
            rc = ::ftruncate(fd, static_cast<off_t>(*a.size));
        } else {
            if (!S_ISREG(i->type)) return fs_error(S_ISDIR(i->type) ? EISDIR : EINVAL);
            UniqueFd fd = TRY(reopen(*i, O_WRONLY));
            rc = ::ftruncate(fd.get(), static_cast<off_t>(*a.size));
        }
        if (rc != 0) return last_error();
    }
    if (a.atime || a.mtime) {
        struct timespec times[2];
        times[0] = a.atime ? *a.atime : timespec{0, UTIME_OMIT};
        times[1] = a.mtime ? *a.mtime : timespec{0, UTIME_OMIT};
        int rc = S_ISLNK(i->type)
                     ? ::utimensat(i->fd.get(), "", times, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                     : ::utimensat(m_proc_self_fd.get(), fd_name.c_str(), times, 0);
        if (rc != 0) return last_error();
    }
    return getattr(node, std::nullopt);
}

Result<std::string> PassthroughFs::readlink(uint64_t node) {
    Inode* i = TRY(inode(node));
    if (!S_ISLNK(i->type)) return fs_error(EINVAL);
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlinkat(i->fd.get(), "", target.data(), target.size());
    if (n < 0) return last_error();
    target.resize(static_cast<size_t>(n));
    return target;
}

Result<Entry> PassthroughFs::symlink(uint64_t parent, std::string_view name,
                                     std::string_view target) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    // The target is stored as data and never resolved by us; a link pointing outside the share
    // is harmless because lookups and opens never follow symlinks.
    if (::symlinkat(std::string(target).c_str(), dir->fd.get(), std::string(name).c_str()) != 0)
        return last_error();
    return lookup_in(*dir, name);
}

Result<Entry> PassthroughFs::mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                   uint32_t rdev, uint32_t umask) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    // Device nodes would give the guest the host's devices (when we run with CAP_MKNOD).
    mode_t type = mode & S_IFMT;
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK) return fs_error(EPERM);
    if (::mknodat(dir->fd.get(), std::string(name).c_str(), mode & ~umask, rdev) != 0)
        return last_error();
    return lookup_in(*dir, name);
}

Result<Entry> PassthroughFs::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                   uint32_t umask) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    if (::mkdirat(dir->fd.get(), std::string(name).c_str(), mode & ~umask & 07777) != 0)
        return last_error();
    return lookup_in(*dir, name);
}

Status PassthroughFs::unlink(uint64_t parent, std::string_view name) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    if (::unlinkat(dir->fd.get(), std::string(name).c_str(), 0) != 0) return last_error();
    return {};
}

Status PassthroughFs::rmdir(uint64_t parent, std::string_view name) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    if (::unlinkat(dir->fd.get(), std::string(name).c_str(), AT_REMOVEDIR) != 0)
        return last_error();
    return {};
}

Status PassthroughFs::rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                             std::string_view new_name, uint32_t flags) {
    TRY(check_writable());
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return fs_error(EINVAL);
    Inode* from = TRY(inode(parent));
    Inode* to = TRY(inode(new_parent));
    if (!is_plain_name(name) || !is_plain_name(new_name)) return fs_error(EINVAL);
    if (::syscall(SYS_renameat2, from->fd.get(), std::string(name).c_str(), to->fd.get(),
                  std::string(new_name).c_str(), flags) != 0)
        return last_error();
    return {};
}

Result<Entry> PassthroughFs::link(uint64_t node, uint64_t new_parent, std::string_view new_name) {
    TRY(check_writable());
    Inode* i = TRY(inode(node));
    Inode* dir = TRY(inode(new_parent));
    if (!is_plain_name(new_name)) return fs_error(EINVAL);
    if (S_ISDIR(i->type)) return fs_error(EPERM);
    const std::string name(new_name);
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; otherwise link the inode behind our own fd via
    // /proc (never a guest-supplied path). Symlink nodes take only the first form.
    if (::linkat(i->fd.get(), "", dir->fd.get(), name.c_str(), AT_EMPTY_PATH) != 0) {
        if ((errno != ENOENT && errno != EPERM) || S_ISLNK(i->type)) return last_error();
        if (::linkat(m_proc_self_fd.get(), std::to_string(i->fd.get()).c_str(), dir->fd.get(),
                     name.c_str(), AT_SYMLINK_FOLLOW) != 0)
            return last_error();
    }
    return lookup_in(*dir, new_name);
}

Result<Opened> PassthroughFs::open(uint64_t node, uint32_t flags) {
    int f = static_cast<int>(flags);
    if (m_access == Access::ReadOnly && ((f & O_ACCMODE) != O_RDONLY || (f & O_TRUNC)))
        return fs_error(EROFS);
    Inode* i = TRY(inode(node));
    if (S_ISDIR(i->type) && (f & O_ACCMODE) != O_RDONLY) return fs_error(EISDIR);
    // Only regular files and directories are opened on the host: a device node would hand the
    // guest a host device, and a FIFO would block the device thread.
    if (!S_ISREG(i->type) && !S_ISDIR(i->type)) return fs_error(S_ISLNK(i->type) ? ELOOP : EPERM);
    UniqueFd fd = TRY(reopen(*i, f));
    return Opened{TRY(add_handle(std::move(fd), node)), 0};
}

Result<size_t> PassthroughFs::read(uint64_t node, uint64_t handle, uint64_t offset,
                                   std::span<uint8_t> out) {
    int fd = TRY(handle_fd(node, handle));
    if (offset > static_cast<uint64_t>(INT64_MAX)) return fs_error(EINVAL);
    ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0) return last_error();
    return static_cast<size_t>(n);
}

Result<size_t> PassthroughFs::write(uint64_t node, uint64_t handle, uint64_t offset,
                                    std::span<const uint8_t> data) {
    TRY(check_writable());
    int fd = TRY(handle_fd(node, handle));
    if (offset > static_cast<uint64_t>(INT64_MAX)) return fs_error(EINVAL);
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) return last_error();
    return static_cast<size_t>(n);
}

Result<struct statvfs> PassthroughFs::statfs(uint64_t node) {
    Inode* i = TRY(inode(node));
    struct statvfs st {};
    if (::fstatvfs(i->fd.get(), &st) != 0) return last_error();
    return st;
}

Status PassthroughFs::release(uint64_t node, uint64_t handle) {
    TRY(handle_fd(node, handle));
    m_handles.erase(handle);
    return {};
}

Status PassthroughFs::releasedir(uint64_t node, uint64_t handle) { return release(node, handle); }

Status PassthroughFs::flush(uint64_t node, uint64_t handle) {
    TRY(handle_fd(node, handle));
    return {};
}

Status PassthroughFs::fsync(uint64_t node, uint64_t handle, Sync sync) {
    int fd = TRY(handle_fd(node, handle));
    if ((sync == Sync::DataOnly ? ::fdatasync(fd) : ::fsync(fd)) != 0) return last_error();
    return {};
}

Status PassthroughFs::fsyncdir(uint64_t node, uint64_t handle, Sync sync) {
    return fsync(node, handle, sync);
}

// Extended attributes have no *at(2) calls before Linux 6.13: they go through the /proc path of
// the node's own fd (a path we build from our fd number, never from guest bytes). Symlinks
// would be followed that way, so they have no xattrs here.
Result<size_t> PassthroughFs::getxattr(uint64_t node, std::string_view name,
                                       std::span<uint8_t> out) {
    Inode* i = TRY(inode(node));
    if (S_ISLNK(i->type)) return fs_error(ENOTSUP);
    ssize_t n =
        ::getxattr(proc_path(*i).c_str(), std::string(name).c_str(), out.data(), out.size());
    if (n < 0) return last_error();
    return static_cast<size_t>(n);
}

Status PassthroughFs::setxattr(uint64_t node, std::string_view name, std::span<const uint8_t> value,
                               uint32_t flags) {
    TRY(check_writable());
    Inode* i = TRY(inode(node));
    if (S_ISLNK(i->type)) return fs_error(ENOTSUP);
    if (::setxattr(proc_path(*i).c_str(), std::string(name).c_str(), value.data(), value.size(),
                   static_cast<int>(flags & (XATTR_CREATE | XATTR_REPLACE))) != 0)
        return last_error();
    return {};
}

Result<size_t> PassthroughFs::listxattr(uint64_t node, std::span<uint8_t> out) {
    Inode* i = TRY(inode(node));
    if (S_ISLNK(i->type)) return size_t{0};
    ssize_t n = ::listxattr(proc_path(*i).c_str(), reinterpret_cast<char*>(out.data()), out.size());
    if (n < 0) return last_error();
    return static_cast<size_t>(n);
}

Status PassthroughFs::removexattr(uint64_t node, std::string_view name) {
    TRY(check_writable());
    Inode* i = TRY(inode(node));
    if (S_ISLNK(i->type)) return fs_error(ENOTSUP);
    if (::removexattr(proc_path(*i).c_str(), std::string(name).c_str()) != 0) return last_error();
    return {};
}

Result<Opened> PassthroughFs::opendir(uint64_t node, uint32_t) {
    Inode* i = TRY(inode(node));
    if (!S_ISDIR(i->type)) return fs_error(ENOTDIR);
    UniqueFd fd = TRY(reopen(*i, O_RDONLY | O_DIRECTORY));
    return Opened{TRY(add_handle(std::move(fd), node)), 0};
}

Status PassthroughFs::readdir(uint64_t node, uint64_t handle, uint64_t offset, DirSink& sink) {
    int fd = TRY(handle_fd(node, handle));
    if (offset > static_cast<uint64_t>(INT64_MAX)) return fs_error(EINVAL);
    if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return last_error();
    alignas(8) uint8_t buffer[16384];
    for (;;) {
        long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (n < 0) return last_error();
        if (n == 0) return {};
        for (long pos = 0; pos < n;) {
            // The kernel lays out linux_dirent64 records: ino, off, reclen, type, name.
            uint64_t ino;
            int64_t next;
            uint16_t reclen;
            uint8_t type;
            std::memcpy(&ino, buffer + pos, 8);
            std::memcpy(&next, buffer + pos + 8, 8);
            std::memcpy(&reclen, buffer + pos + 16, 2);
            type = buffer[pos + 18];
            const char* name = reinterpret_cast<const char*>(buffer + pos + 19);
            size_t max = static_cast<size_t>(reclen) - 19;
            std::string_view entry(name, strnlen(name, max));
            if (!sink.add(entry, ino, type, static_cast<uint64_t>(next))) return {};
            pos += reclen;
        }
    }
}

Status PassthroughFs::access(uint64_t node, uint32_t mask) {
    if ((mask & W_OK) && m_access == Access::ReadOnly) return fs_error(EROFS);
    Inode* i = TRY(inode(node));
    if (S_ISLNK(i->type)) return {};
    if (::faccessat(m_proc_self_fd.get(), std::to_string(i->fd.get()).c_str(),
                    static_cast<int>(mask), 0) != 0)
        return last_error();
    return {};
}

Result<FileSystem::Created> PassthroughFs::create(uint64_t parent, std::string_view name,
                                                  uint32_t mode, uint32_t flags, uint32_t umask) {
    TRY(check_writable());
    Inode* dir = TRY(inode(parent));
    if (!is_plain_name(name)) return fs_error(EINVAL);
    int f = static_cast<int>(flags) & ~(O_NOCTTY | O_DIRECTORY | O_PATH);
    // O_NONBLOCK so that an existing FIFO of that name cannot block us; only a regular file
    // is accepted, then the guest's blocking mode is restored.
    int fd = open_beneath(dir->fd.get(), std::string(name), f | O_CREAT | O_NONBLOCK,
                          static_cast<mode_t>(mode & ~umask & 07777));
    if (fd < 0) return last_error();
    UniqueFd file(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return last_error();
    if (!S_ISREG(st.st_mode)) return fs_error(EPERM);
    if (!(f & O_NONBLOCK) && ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        return last_error();
    // The node is the inode just opened, not whatever the name points at a moment later.
    int path_fd = ::openat(m_proc_self_fd.get(), std::to_string(fd).c_str(), O_PATH | O_CLOEXEC);
    if (path_fd < 0) return last_error();
    Entry entry = TRY(register_inode(UniqueFd(path_fd)));
    auto handle = add_handle(std::move(file), entry.node);
    if (!handle.ok()) {
        forget(entry.node, 1);
        return handle.error();
    }
    return Created{entry, Opened{*handle, 0}};
}

Status PassthroughFs::fallocate(uint64_t node, uint64_t handle, uint32_t mode, uint64_t offset,
                                uint64_t length) {
    TRY(check_writable());
    int fd = TRY(handle_fd(node, handle));
    if (offset > static_cast<uint64_t>(INT64_MAX) || length > static_cast<uint64_t>(INT64_MAX))
        return fs_error(EINVAL);
    if (::fallocate(fd, static_cast<int>(mode), static_cast<off_t>(offset),
                    static_cast<off_t>(length)) != 0)
        return last_error();
    return {};
}

Result<uint64_t> PassthroughFs::lseek(uint64_t node, uint64_t handle, uint64_t offset,
                                      uint32_t whence) {
    int fd = TRY(handle_fd(node, handle));
    if (whence > SEEK_HOLE || offset > static_cast<uint64_t>(INT64_MAX)) return fs_error(EINVAL);
    off_t r = ::lseek(fd, static_cast<off_t>(offset), static_cast<int>(whence));
    if (r < 0) return last_error();
    return static_cast<uint64_t>(r);
}

Result<size_t> PassthroughFs::copy_file_range(const CopyRange& c) {
    TRY(check_writable());
    int in = TRY(handle_fd(c.node_in, c.handle_in));
    int out = TRY(handle_fd(c.node_out, c.handle_out));
    if (c.flags != 0 || c.offset_in > static_cast<uint64_t>(INT64_MAX) ||
        c.offset_out > static_cast<uint64_t>(INT64_MAX))
        return fs_error(EINVAL);
    auto off_in = static_cast<off64_t>(c.offset_in);
    auto off_out = static_cast<off64_t>(c.offset_out);
    ssize_t n = ::copy_file_range(in, &off_in, out, &off_out, c.length, 0);
    if (n < 0) return last_error();
    return static_cast<size_t>(n);
}

}  // namespace msb::devices::fs
