// FileSystem: what a virtio-fs backend implements. FuseServer decodes and validates each FUSE
// request (lengths, offsets, NUL-terminated names) and calls one virtual per operation with
// plain arguments; the backend answers with a value or an errno (Error::code()).
//
// Every operation defaults to ENOSYS, so a backend (or a test fake) implements only what it
// supports. Node ids are the backend's: FUSE_ROOT_ID (1) is the root, and every Entry returned
// by lookup/mknod/mkdir/symlink/link/create counts one lookup that the guest later returns
// with forget(). Names passed in are never empty, never contain '/' or NUL, and are at most
// kMaxName bytes; "." and ".." are passed through for the backend to judge.
//
// Threads: FuseServer calls a backend from one thread (the device's event loop).
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace msb::devices::fs {

constexpr size_t kMaxName = 255;

// An error reply: errno only (FUSE carries nothing else).
inline Error fs_error(int code) { return Error("", code); }

struct Entry {
    uint64_t node = 0;
    uint64_t generation = 0;
    struct stat attr {};
};

struct Opened {
    uint64_t handle = 0;
    uint32_t open_flags = 0;  // FOPEN_* reply flags
};

// SETATTR's decoded arguments; a field is meaningful only when its optional is set.
struct SetAttr {
    std::optional<uint64_t> handle;  // FATTR_FH
    std::optional<uint32_t> mode;    // permission bits and setuid/setgid/sticky only
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    std::optional<uint64_t> size;
    // UTIME_NOW / UTIME_OMIT in tv_nsec as utimensat(2) takes them.
    std::optional<struct timespec> atime;
    std::optional<struct timespec> mtime;
};

// Receives directory entries from readdir(). add() returns false once the reply is full (the
// entry was not taken: the backend stops and the guest asks again from that entry's offset).
class DirSink {
public:
    virtual ~DirSink() = default;
    // `next_offset`: the offset at which to resume after this entry. `type`: DT_* value.
    virtual bool add(std::string_view name, uint64_t inode, uint32_t type,
                     uint64_t next_offset) = 0;
};

class FileSystem {
public:
    virtual ~FileSystem() = default;

    // FUSE_INIT has been negotiated (called once per session) / FUSE_DESTROY.
    virtual void init() {}
    virtual void destroy() {}

    virtual Result<Entry> lookup(uint64_t parent, std::string_view name) {
        return nosys(parent, name);
    }
    virtual void forget(uint64_t node, uint64_t count) { (void)node, (void)count; }
    virtual Result<struct stat> getattr(uint64_t node, std::optional<uint64_t> handle) {
        (void)node, (void)handle;
        return fs_error(ENOSYS);
    }
    virtual Result<struct stat> setattr(uint64_t node, const SetAttr& attr) {
        (void)node, (void)attr;
        return fs_error(ENOSYS);
    }
    virtual Result<std::string> readlink(uint64_t node) {
        (void)node;
        return fs_error(ENOSYS);
    }
    virtual Result<Entry> symlink(uint64_t parent, std::string_view name, std::string_view target) {
        (void)target;
        return nosys(parent, name);
    }
    virtual Result<Entry> mknod(uint64_t parent, std::string_view name, uint32_t mode,
                                uint32_t rdev, uint32_t umask) {
        (void)mode, (void)rdev, (void)umask;
        return nosys(parent, name);
    }
    virtual Result<Entry> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                uint32_t umask) {
        (void)mode, (void)umask;
        return nosys(parent, name);
    }
    virtual Status unlink(uint64_t parent, std::string_view name) {
        (void)parent, (void)name;
        return fs_error(ENOSYS);
    }
    virtual Status rmdir(uint64_t parent, std::string_view name) {
        (void)parent, (void)name;
        return fs_error(ENOSYS);
    }
    // `flags`: 0 or RENAME_NOREPLACE / RENAME_EXCHANGE (RENAME2).
    virtual Status rename(uint64_t parent, std::string_view name, uint64_t new_parent,
                          std::string_view new_name, uint32_t flags) {
        (void)parent, (void)name, (void)new_parent, (void)new_name, (void)flags;
        return fs_error(ENOSYS);
    }
    virtual Result<Entry> link(uint64_t node, uint64_t new_parent, std::string_view new_name) {
        (void)node;
        return nosys(new_parent, new_name);
    }
    // `flags`: the guest's open(2) flags.
    virtual Result<Opened> open(uint64_t node, uint32_t flags) {
        (void)node, (void)flags;
        return fs_error(ENOSYS);
    }
    // Fills `out` (already bounded by max_read and the guest's buffer); returns bytes read.
    virtual Result<size_t> read(uint64_t node, uint64_t handle, uint64_t offset,
                                std::span<uint8_t> out) {
        (void)node, (void)handle, (void)offset, (void)out;
        return fs_error(ENOSYS);
    }
    virtual Result<size_t> write(uint64_t node, uint64_t handle, uint64_t offset,
                                 std::span<const uint8_t> data) {
        (void)node, (void)handle, (void)offset, (void)data;
        return fs_error(ENOSYS);
    }
    virtual Result<struct statvfs> statfs(uint64_t node) {
        (void)node;
        return fs_error(ENOSYS);
    }
    virtual Status release(uint64_t node, uint64_t handle) {
        (void)node, (void)handle;
        return fs_error(ENOSYS);
    }
    virtual Status flush(uint64_t node, uint64_t handle) {
        (void)node, (void)handle;
        return fs_error(ENOSYS);
    }
    enum class Sync { All, DataOnly };
    virtual Status fsync(uint64_t node, uint64_t handle, Sync sync) {
        (void)node, (void)handle, (void)sync;
        return fs_error(ENOSYS);
    }
    // With out.size() == 0: returns the value's size. Otherwise fills out (ERANGE if too small).
    virtual Result<size_t> getxattr(uint64_t node, std::string_view name, std::span<uint8_t> out) {
        (void)node, (void)name, (void)out;
        return fs_error(ENOSYS);
    }
    virtual Status setxattr(uint64_t node, std::string_view name, std::span<const uint8_t> value,
                            uint32_t flags) {
        (void)node, (void)name, (void)value, (void)flags;
        return fs_error(ENOSYS);
    }
    // Same size convention as getxattr; the list is NUL-separated names.
    virtual Result<size_t> listxattr(uint64_t node, std::span<uint8_t> out) {
        (void)node, (void)out;
        return fs_error(ENOSYS);
    }
    virtual Status removexattr(uint64_t node, std::string_view name) {
        (void)node, (void)name;
        return fs_error(ENOSYS);
    }
    virtual Result<Opened> opendir(uint64_t node, uint32_t flags) {
        (void)node, (void)flags;
        return fs_error(ENOSYS);
    }
    // Lists entries starting at `offset` (0, or a next_offset handed out earlier) into `sink`
    // until it is full or the directory ends.
    virtual Status readdir(uint64_t node, uint64_t handle, uint64_t offset, DirSink& sink) {
        (void)node, (void)handle, (void)offset, (void)sink;
        return fs_error(ENOSYS);
    }
    virtual Status releasedir(uint64_t node, uint64_t handle) {
        (void)node, (void)handle;
        return fs_error(ENOSYS);
    }
    virtual Status fsyncdir(uint64_t node, uint64_t handle, Sync sync) {
        (void)node, (void)handle, (void)sync;
        return fs_error(ENOSYS);
    }
    // `mask`: F_OK or a combination of R_OK, W_OK, X_OK.
    virtual Status access(uint64_t node, uint32_t mask) {
        (void)node, (void)mask;
        return fs_error(ENOSYS);
    }
    struct Created {
        Entry entry;
        Opened opened;
    };
    virtual Result<Created> create(uint64_t parent, std::string_view name, uint32_t mode,
                                   uint32_t flags, uint32_t umask) {
        (void)parent, (void)name, (void)mode, (void)flags, (void)umask;
        return fs_error(ENOSYS);
    }
    virtual Status fallocate(uint64_t node, uint64_t handle, uint32_t mode, uint64_t offset,
                             uint64_t length) {
        (void)node, (void)handle, (void)mode, (void)offset, (void)length;
        return fs_error(ENOSYS);
    }
    // `whence`: SEEK_SET/CUR/END/DATA/HOLE. Returns the new offset.
    virtual Result<uint64_t> lseek(uint64_t node, uint64_t handle, uint64_t offset,
                                   uint32_t whence) {
        (void)node, (void)handle, (void)offset, (void)whence;
        return fs_error(ENOSYS);
    }
    struct CopyRange {
        uint64_t node_in, handle_in, offset_in;
        uint64_t node_out, handle_out, offset_out;
        uint64_t length;
        uint64_t flags;
    };
    virtual Result<size_t> copy_file_range(const CopyRange& range) {
        (void)range;
        return fs_error(ENOSYS);
    }

private:
    static Error nosys(uint64_t, std::string_view) { return fs_error(ENOSYS); }
};

}  // namespace msb::devices::fs
