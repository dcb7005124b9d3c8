// PassthroughFs: a FileSystem that exposes one host directory (the share) to the guest.
//
//   auto fs = TRY(PassthroughFs::create("/srv/share", Access::ReadOnly));
//
// Escape prevention (docs/virtio-fs.md):
//   - An inode is an O_PATH fd, keyed by (st_dev, st_ino), with a lookup count the guest's
//     FORGETs lower; the root is never forgotten. Every operation is an *at(2) call relative to
//     the fd of a node the guest already holds, with a single-component name: no host path is
//     ever built from guest strings.
//   - Names with '/' and the names "." and ".." are refused where they would move between
//     directories; LOOKUP of ".." answers the root for the root and EINVAL elsewhere (the
//     guest never asks without FUSE_EXPORT_SUPPORT, which we do not offer).
//   - Symlinks are never followed: lookups use openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//     RESOLVE_NO_MAGICLINKS) with O_NOFOLLOW (O_NOFOLLOW single-component openat before Linux
//     5.6); files are opened by re-opening the node's own O_PATH fd through /proc/self/fd/N
//     only after checking the node is not a symlink, so a path swapped for a symlink between
//     LOOKUP and OPEN still opens the inode that was looked up.
//   - Access::ReadOnly refuses every mutating operation with EROFS, including OPEN with write
//     access or O_TRUNC, CREATE, SETATTR, SETXATTR, FALLOCATE and COPY_FILE_RANGE.
// Ownership and permissions are the host's: the server runs with its own credentials, and what
// the host refuses (e.g. chown when not root) returns the host's errno.
//
// Threads: single-threaded (FuseServer's thread).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "base/unique_fd.h"
#include "devices/fs/file_system.h"

namespace msb::devices::fs {

enum class Access { ReadWrite, ReadOnly };

class PassthroughFs final : public FileSystem {
public:
    // Bounds on host resources a guest can pin (each inode and handle is one host fd).
    static constexpr size_t kMaxInodes = 65536;
    static constexpr size_t kMaxHandles = 16384;

    // `root` must be an existing directory; it is opened once (later renames of it on the host
    // do not matter).
    static Result<std::shared_ptr<PassthroughFs>> create(const std::string& root, Access access);

    Access access_mode() const { return m_access; }
    size_t inode_count() const { return m_inodes.size(); }
    size_t handle_count() const { return m_handles.size(); }

    void destroy() override;
    Result<Entry> lookup(uint64_t parent, std::string_view name) override;
    void forget(uint64_t node, uint64_t count) override;
    Result<struct stat> getattr(uint64_t node, std::optional<uint64_t> handle) override;
    Result<struct stat> setattr(uint64_t node, const SetAttr& attr) override;
    Result<std::string> readlink(uint64_t node) override;
    Result<Entry> symlink(uint64_t parent, std::string_view name, std::string_view target) override;
    Result<Entry> mknod(uint64_t parent, std::string_view name, uint32_t mode, uint32_t rdev,
                        uint32_t umask) override;
    Result<Entry> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                        uint32_t umask) override;
    Status unlink(uint64_t parent, std::string_view name) override;
    Status rmdir(uint64_t parent, std::string_view name) override;
    Status rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                  std::string_view new_name, uint32_t flags) override;
    Result<Entry> link(uint64_t node, uint64_t new_parent, std::string_view new_name) override;
    Result<Opened> open(uint64_t node, uint32_t flags) override;
    Result<size_t> read(uint64_t node, uint64_t handle, uint64_t offset,
                        std::span<uint8_t> out) override;
    Result<size_t> write(uint64_t node, uint64_t handle, uint64_t offset,
                         std::span<const uint8_t> data) override;
    Result<struct statvfs> statfs(uint64_t node) override;
    Status release(uint64_t node, uint64_t handle) override;
    Status flush(uint64_t node, uint64_t handle) override;
    Status fsync(uint64_t node, uint64_t handle, Sync sync) override;
    Result<size_t> getxattr(uint64_t node, std::string_view name, std::span<uint8_t> out) override;
    Status setxattr(uint64_t node, std::string_view name, std::span<const uint8_t> value,
                    uint32_t flags) override;
    Result<size_t> listxattr(uint64_t node, std::span<uint8_t> out) override;
    Status removexattr(uint64_t node, std::string_view name) override;
    Result<Opened> opendir(uint64_t node, uint32_t flags) override;
    Status readdir(uint64_t node, uint64_t handle, uint64_t offset, DirSink& sink) override;
    Status releasedir(uint64_t node, uint64_t handle) override;
    Status fsyncdir(uint64_t node, uint64_t handle, Sync sync) override;
    Status access(uint64_t node, uint32_t mask) override;
    Result<Created> create(uint64_t parent, std::string_view name, uint32_t mode, uint32_t flags,
                           uint32_t umask) override;
    Status fallocate(uint64_t node, uint64_t handle, uint32_t mode, uint64_t offset,
                     uint64_t length) override;
    Result<uint64_t> lseek(uint64_t node, uint64_t handle, uint64_t offset,
                           uint32_t whence) override;
    Result<size_t> copy_file_range(const CopyRange& range) override;

private:
    struct Inode {
        UniqueFd fd;  // O_PATH | O_NOFOLLOW
        dev_t dev;
        ino_t ino;
        mode_t type;  // S_IFMT bits, fixed for the inode's life
        uint64_t lookups;
    };
    struct Handle {
        UniqueFd fd;
        uint64_t node;
    };

    PassthroughFs(Access access, UniqueFd proc_self_fd)
        : m_access(access), m_proc_self_fd(std::move(proc_self_fd)) {}

    Result<Inode*> inode(uint64_t node);
    Result<int> handle_fd(uint64_t node, uint64_t handle);
    // Opens `name` in `parent` as O_PATH without following any symlink, registers it (or bumps
    // the lookup count of the node it already is), and returns its Entry.
    Result<Entry> lookup_in(Inode& parent, std::string_view name);
    // Registers an O_PATH fd as a node (one lookup).
    Result<Entry> register_inode(UniqueFd fd);
    // Re-opens a node through /proc/self/fd with `flags` (refuses symlinks).
    Result<UniqueFd> reopen(const Inode& inode, int flags);
    Result<uint64_t> add_handle(UniqueFd fd, uint64_t node);
    Status check_writable() const;
    std::string proc_path(const Inode& inode) const;

    Access m_access;
    UniqueFd m_proc_self_fd;
    std::unordered_map<uint64_t, Inode> m_inodes;
    std::map<std::pair<dev_t, ino_t>, uint64_t> m_by_key;
    std::unordered_map<uint64_t, Handle> m_handles;
    uint64_t m_next_node = 2;  // FUSE_ROOT_ID is 1
    uint64_t m_next_handle = 1;
};

}  // namespace msb::devices::fs
