// Filesystem operations with plain system calls (no <filesystem>: it throws).
#include "agent/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <vector>

namespace msb::agent {

namespace {

using protocol::FsEntryInfo;
using protocol::FsOpKind;
using protocol::FsResponse;
using protocol::FsResponseDataKind;

// Deepest directory tree RemoveDir/Copy descend into; deeper trees fail instead of recursing
// without bound.
constexpr int kMaxTreeDepth = 256;

std::string kind_of(mode_t mode) {
    if (S_ISREG(mode)) return "file";
    if (S_ISDIR(mode)) return "dir";
    if (S_ISLNK(mode)) return "symlink";
    return "other";
}

FsResponse ok_response() {
    FsResponse r;
    r.ok = true;
    return r;
}

FsResponse from_status(const Status& status) {
    return status.ok() ? ok_response() : fs_error(status.error().message());
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

Result<std::vector<std::string>> read_dir_names(const std::string& path) {
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return Error::from_errno("list " + path);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int error = errno;
    ::closedir(dir);
    if (error != 0) return Error::from_errno("list " + path, error);
    return names;
}

Status mkdir_parents(const std::string& path) {
    if (path.empty()) return Error("mkdir: empty path", EINVAL);
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        std::string prefix = path.substr(0, pos);
        if (prefix.empty()) continue;
        if (::mkdir(prefix.c_str(), 0755) < 0 && errno != EEXIST)
            return Error::from_errno("mkdir " + prefix);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0) return Error::from_errno("mkdir " + path);
    if (!S_ISDIR(st.st_mode)) return Error::from_errno("mkdir " + path, ENOTDIR);
    return {};
}

Status remove_tree(const std::string& path, int depth) {
    if (depth > kMaxTreeDepth) return Error::from_errno("remove " + path, ELOOP);
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) return Error::from_errno("remove " + path);
    if (!S_ISDIR(st.st_mode)) {
        if (::unlink(path.c_str()) < 0) return Error::from_errno("remove " + path);
        return {};
    }
    for (const auto& name : TRY(read_dir_names(path)))
        TRY(remove_tree(join(path, name), depth + 1));
    if (::rmdir(path.c_str()) < 0) return Error::from_errno("remove " + path);
    return {};
}

Status copy_file(const std::string& src, const std::string& dst, mode_t mode) {
    int in_raw = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_raw < 0) return Error::from_errno("copy " + src);
    UniqueFd in(in_raw);
    int out_raw = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
    if (out_raw < 0) return Error::from_errno("copy to " + dst);
    UniqueFd out(out_raw);
    std::vector<char> buf(256 * 1024);
    for (;;) {
        ssize_t n = ::read(in.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("copy " + src);
        }
        if (n == 0) break;
        auto written = write_all(out.get(), buf.data(), static_cast<size_t>(n));
        if (!written.ok()) return Error::from_errno("copy to " + dst, written.error().code());
    }
    return {};
}

Status copy_tree(const std::string& src, const std::string& dst, int depth) {
    if (depth > kMaxTreeDepth) return Error::from_errno("copy " + src, ELOOP);
    struct stat st {};
    if (::lstat(src.c_str(), &st) < 0) return Error::from_errno("copy " + src);
    if (S_ISDIR(st.st_mode)) {
        if (::mkdir(dst.c_str(), st.st_mode & 07777) < 0 && errno != EEXIST)
            return Error::from_errno("copy to " + dst);
        for (const auto& name : TRY(read_dir_names(src)))
            TRY(copy_tree(join(src, name), join(dst, name), depth + 1));
        return {};
    }
    if (S_ISLNK(st.st_mode)) {
        std::vector<char> target(PATH_MAX + 1);
        ssize_t n = ::readlink(src.c_str(), target.data(), target.size() - 1);
        if (n < 0) return Error::from_errno("copy " + src);
        target[static_cast<size_t>(n)] = '\0';
        if (::symlink(target.data(), dst.c_str()) < 0) return Error::from_errno("copy to " + dst);
        return {};
    }
    if (!S_ISREG(st.st_mode)) return Error::from_errno("copy " + src, ENOTSUP);
    return copy_file(src, dst, st.st_mode);
}

bool is_inside(const std::string& parent, const std::string& child) {
    if (child.size() <= parent.size()) return child == parent;
    return child.compare(0, parent.size(), parent) == 0 && child[parent.size()] == '/';
}

}  // namespace

FsResponse fs_error(std::string error) {
    FsResponse r;
    r.ok = false;
    r.error = std::move(error);
    return r;
}

Result<FsEntryInfo> stat_entry(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) return Error::from_errno("stat " + path);
    FsEntryInfo info;
    info.path = path;
    info.kind = kind_of(st.st_mode);
    info.size = static_cast<uint64_t>(st.st_size);
    info.mode = st.st_mode;
    info.modified = static_cast<int64_t>(st.st_mtim.tv_sec);
    return info;
}

Result<UniqueFd> open_for_read(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Error::from_errno("read " + path);
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) return Error::from_errno("read " + path);
    if (S_ISDIR(st.st_mode)) return Error::from_errno("read " + path, EISDIR);
    return owned;
}

Result<UniqueFd> open_for_write(const std::string& path, std::optional<uint32_t> mode) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    static_cast<mode_t>(mode.value_or(0644) & 07777));
    if (fd < 0) return Error::from_errno("write " + path);
    UniqueFd owned(fd);
    // O_CREAT applies the mode only to a new file and through the umask; make it exact.
    if (mode && ::fchmod(fd, static_cast<mode_t>(*mode & 07777)) < 0)
        return Error::from_errno("chmod " + path);
    return owned;
}

FsResponse run_fs_op(const protocol::FsOp& op) {
    switch (op.kind) {
        case FsOpKind::Stat: {
            auto info = stat_entry(op.path);
            if (!info.ok()) return fs_error(info.error().message());
            FsResponse r = ok_response();
            r.data_kind = FsResponseDataKind::Stat;
            r.entries.push_back(std::move(info.value()));
            return r;
        }
        case FsOpKind::List: {
            auto names = read_dir_names(op.path);
            if (!names.ok()) return fs_error(names.error().message());
            FsResponse r = ok_response();
            r.data_kind = FsResponseDataKind::List;
            for (const auto& name : names.value()) {
                auto info = stat_entry(join(op.path, name));
                if (info.ok()) r.entries.push_back(std::move(info.value()));  // raced away: skip
            }
            return r;
        }
        case FsOpKind::Mkdir:
            return from_status(mkdir_parents(op.path));
        case FsOpKind::Remove: {
            struct stat st {};
            if (::lstat(op.path.c_str(), &st) < 0)
                return fs_error(Error::from_errno("remove " + op.path).message());
            int rc = S_ISDIR(st.st_mode) ? ::rmdir(op.path.c_str()) : ::unlink(op.path.c_str());
            if (rc < 0) return fs_error(Error::from_errno("remove " + op.path).message());
            return ok_response();
        }
        case FsOpKind::RemoveDir: {
            struct stat st {};
            if (::lstat(op.path.c_str(), &st) < 0)
                return fs_error(Error::from_errno("remove dir " + op.path).message());
            if (!S_ISDIR(st.st_mode))
                return fs_error(Error::from_errno("remove dir " + op.path, ENOTDIR).message());
            return from_status(remove_tree(op.path, 0));
        }
        case FsOpKind::Copy:
            if (is_inside(op.src, op.dst))
                return fs_error(
                    Error::from_errno("copy " + op.src + " into itself", EINVAL).message());
            return from_status(copy_tree(op.src, op.dst, 0));
        case FsOpKind::Rename:
            if (::rename(op.src.c_str(), op.dst.c_str()) < 0)
                return fs_error(Error::from_errno("rename " + op.src + " to " + op.dst).message());
            return ok_response();
        case FsOpKind::Read:
        case FsOpKind::Write:
            break;
    }
    return fs_error("internal: streamed operation routed to run_fs_op");
}

}  // namespace msb::agent
