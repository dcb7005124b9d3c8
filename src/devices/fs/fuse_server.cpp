// FUSE request decoding and dispatch (see fuse_server.h for the validation contract).
#include "devices/fs/fuse_server.h"

#include <linux/fuse.h>
#include <linux/limits.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/log.h"

namespace msb::devices::fs {

namespace {

constexpr size_t kXattrSizeMax = 65536;  // XATTR_SIZE_MAX
constexpr size_t kXattrNameMax = 255;    // XATTR_NAME_MAX

fuse_attr to_fuse_attr(const struct stat& st) {
    fuse_attr a{};
    a.ino = st.st_ino;
    a.size = static_cast<uint64_t>(st.st_size);
    a.blocks = static_cast<uint64_t>(st.st_blocks);
    a.atime = static_cast<uint64_t>(st.st_atim.tv_sec);
    a.mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
    a.ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
    a.atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
    a.mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    a.ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
    a.mode = st.st_mode;
    a.nlink = static_cast<uint32_t>(st.st_nlink);
    a.uid = st.st_uid;
    a.gid = st.st_gid;
    a.rdev = static_cast<uint32_t>(st.st_rdev);
    a.blksize = static_cast<uint32_t>(st.st_blksize);
    return a;
}

}  // namespace

// One request being decoded and its reply being built. Argument reads consume the request
// front to back; every read is bounds-checked and copies (the bytes were already copied out of
// guest memory by the device, so they cannot change under us).
class FuseServer::Request {
public:
    Request(const fuse_in_header& header, std::span<const uint8_t> args, std::span<uint8_t> reply)
        : header(header), m_args(args), m_reply(reply) {}

    const fuse_in_header header;

    template <typename T>
    std::optional<T> arg() {
        if (m_args.size() < sizeof(T)) return std::nullopt;
        T value;
        std::memcpy(&value, m_args.data(), sizeof(T));
        m_args = m_args.subspan(sizeof(T));
        return value;
    }
    // Reads up to sizeof(T) bytes (older guests send shorter structs), zero-filling the rest.
    template <typename T>
    std::optional<T> arg_at_least(size_t minimum) {
        if (m_args.size() < minimum) return std::nullopt;
        T value{};
        size_t n = std::min(sizeof(T), m_args.size());
        std::memcpy(&value, m_args.data(), n);
        m_args = m_args.subspan(n);
        return value;
    }
    // A NUL-terminated string of at most `max` bytes lying inside the request.
    std::optional<std::string_view> string(size_t max) {
        const void* nul = std::memchr(m_args.data(), 0, m_args.size());
        if (nul == nullptr) return std::nullopt;
        size_t length = static_cast<size_t>(static_cast<const uint8_t*>(nul) - m_args.data());
        if (length > max) return std::nullopt;
        std::string_view s(reinterpret_cast<const char*>(m_args.data()), length);
        m_args = m_args.subspan(length + 1);
        return s;
    }
    // A directory-entry name: non-empty, no '/', at most kMaxName bytes.
    std::optional<std::string_view> name() {
        auto s = string(kMaxName);
        if (!s || s->empty() || s->find('/') != std::string_view::npos) return std::nullopt;
        return s;
    }
    std::span<const uint8_t> rest() const { return m_args; }

    // Reply space after the out header.
    size_t capacity() const { return m_reply.size() - sizeof(fuse_out_header); }
    std::span<uint8_t> payload() { return m_reply.subspan(sizeof(fuse_out_header)); }

    size_t error(int code) {
        if (code <= 0 || code > 4095) code = EIO;
        return finish(-code, 0);
    }
    size_t error(const Error& e) { return error(e.code()); }
    size_t ok() { return finish(0, 0); }
    // A payload already written into payload().
    size_t ok_written(size_t length) { return finish(0, length); }
    template <typename T>
    size_t ok(const T& value) {
        return ok_bytes({reinterpret_cast<const uint8_t*>(&value), sizeof value});
    }
    size_t ok_bytes(std::span<const uint8_t> bytes) {
        if (bytes.size() > capacity()) return error(EIO);  // the guest's buffer is too small
        std::memcpy(payload().data(), bytes.data(), bytes.size());
        return finish(0, bytes.size());
    }

private:
    size_t finish(int32_t error, size_t length) {
        fuse_out_header out{};
        out.len = static_cast<uint32_t>(sizeof out + length);
        out.error = error;
        out.unique = header.unique;
        std::memcpy(m_reply.data(), &out, sizeof out);
        return out.len;
    }

    std::span<const uint8_t> m_args;
    std::span<uint8_t> m_reply;
};

namespace {

// Writes fuse_dirent / fuse_direntplus records into the reply payload.
class ReplyDirSink final : public DirSink {
public:
    ReplyDirSink(std::span<uint8_t> buffer, FileSystem* plus_fs, uint64_t parent,
                 const fuse_entry_out& (*make_entry)(const Entry&, void*), void* cookie)
        : m_buffer(buffer),
          m_plus_fs(plus_fs),
          m_parent(parent),
          m_make_entry(make_entry),
          m_cookie(cookie) {}

    bool add(std::string_view name, uint64_t inode, uint32_t type, uint64_t next_offset) override {
        if (name.empty() || name.size() > kMaxName) return true;  // skip what FUSE cannot carry
        size_t header = m_plus_fs ? sizeof(fuse_entry_out) + FUSE_NAME_OFFSET : FUSE_NAME_OFFSET;
        size_t record = FUSE_DIRENT_ALIGN(header + name.size());
        if (record > m_buffer.size() - m_used) return false;
        uint8_t* p = m_buffer.data() + m_used;
        std::memset(p, 0, record);
        if (m_plus_fs) {
            fuse_entry_out entry{};
            bool dot = name == "." || name == "..";
            if (!dot) {
                // A lookup that fails (the entry vanished) still lists the name, nodeid 0: the
                // guest then instantiates nothing for it.
                if (auto e = m_plus_fs->lookup(m_parent, name); e.ok()) {
                    entry = m_make_entry(*e, m_cookie);
                    inode = e->attr.st_ino;
                }
            }
            std::memcpy(p, &entry, sizeof entry);
            p += sizeof entry;
        }
        fuse_dirent d{};
        d.ino = inode;
        d.off = next_offset;
        d.namelen = static_cast<uint32_t>(name.size());
        d.type = type;
        std::memcpy(p, &d, FUSE_NAME_OFFSET);
        std::memcpy(p + FUSE_NAME_OFFSET, name.data(), name.size());
        m_used += record;
        return true;
    }

    size_t used() const { return m_used; }

private:
    std::span<uint8_t> m_buffer;
    FileSystem* m_plus_fs;
    uint64_t m_parent;
    const fuse_entry_out& (*m_make_entry)(const Entry&, void*);
    void* m_cookie;
    size_t m_used = 0;
};

struct EntryMaker {
    FuseServer::Options options;
    fuse_entry_out out;
    static const fuse_entry_out& make(const Entry& e, void* cookie) {
        auto* self = static_cast<EntryMaker*>(cookie);
        fuse_entry_out& o = self->out;
        o = {};
        o.nodeid = e.node;
        o.generation = e.generation;
        o.entry_valid = self->options.entry_timeout_ns / 1'000'000'000;
        o.entry_valid_nsec = static_cast<uint32_t>(self->options.entry_timeout_ns % 1'000'000'000);
        o.attr_valid = self->options.attr_timeout_ns / 1'000'000'000;
        o.attr_valid_nsec = static_cast<uint32_t>(self->options.attr_timeout_ns % 1'000'000'000);
        o.attr = to_fuse_attr(e.attr);
        return o;
    }
};

}  // namespace

size_t FuseServer::handle(std::span<const uint8_t> request, std::span<uint8_t> reply) {
    static log::RateLimit limit;
    ++m_requests;
    fuse_in_header header{};
    bool short_header = request.size() < sizeof header;
    if (!short_header) std::memcpy(&header, request.data(), sizeof header);

    // Without room for an out header there is no way to answer (virtio 1.2 §5.11.6).
    bool no_reply_expected =
        !short_header && (header.opcode == FUSE_FORGET || header.opcode == FUSE_BATCH_FORGET);
    if (reply.size() < sizeof(fuse_out_header) && !no_reply_expected) {
        ++m_dropped;
        if (limit.allow()) log::warn("virtio-fs: request without room for a reply dropped");
        return 0;
    }
    if (short_header || header.len < sizeof header || header.len > request.size()) {
        ++m_malformed;
        if (limit.allow())
            log::warn("virtio-fs: malformed request (header len {}, {} bytes present)",
                      short_header ? 0 : header.len, request.size());
        if (no_reply_expected || reply.size() < sizeof(fuse_out_header)) return 0;
        Request r(header, {}, reply);
        return r.error(EINVAL);
    }
    // FORGET and BATCH_FORGET never answer, even to report a malformed request: give them a
    // scratch reply so that nothing is written into the guest's (possibly absent) buffer.
    uint8_t scratch[sizeof(fuse_out_header)];
    if (no_reply_expected) reply = scratch;
    Request r(header, request.subspan(sizeof header, header.len - sizeof header), reply);
    size_t n = dispatch(r);
    if (no_reply_expected) return 0;
    return n;
}

size_t FuseServer::dispatch(Request& r) {
    static log::RateLimit limit;
    auto bad = [&](const char* what) {
        ++m_malformed;
        if (limit.allow())
            log::warn("virtio-fs: malformed {} request (opcode {})", what, r.header.opcode);
        return r.error(EINVAL);
    };
    EntryMaker maker{m_options, {}};
    auto entry_reply = [&](const Result<Entry>& e) {
        if (!e.ok()) return r.error(e.error());
        return r.ok(EntryMaker::make(e.value(), &maker));
    };
    auto attr_reply = [&](const Result<struct stat>& st) {
        if (!st.ok()) return r.error(st.error());
        fuse_attr_out out{};
        out.attr_valid = m_options.attr_timeout_ns / 1'000'000'000;
        out.attr_valid_nsec = static_cast<uint32_t>(m_options.attr_timeout_ns % 1'000'000'000);
        out.attr = to_fuse_attr(st.value());
        return r.ok(out);
    };
    auto status_reply = [&](const Status& s) { return s.ok() ? r.ok() : r.error(s.error()); };
    auto open_reply = [&](const Result<Opened>& o) {
        if (!o.ok()) return r.error(o.error());
        fuse_open_out out{};
        out.fh = o->handle;
        out.open_flags = o->open_flags;
        return r.ok(out);
    };
    // getxattr/listxattr: size 0 asks for the length; otherwise the value, bounded by the
    // guest's size, the reply buffer and XATTR_SIZE_MAX.
    auto xattr_reply = [&](uint32_t size, auto&& call) {
        if (size == 0) {
            Result<size_t> n = call(std::span<uint8_t>{});
            if (!n.ok()) return r.error(n.error());
            fuse_getxattr_out out{};
            out.size = static_cast<uint32_t>(std::min(*n, kXattrSizeMax));
            return r.ok(out);
        }
        size_t bound = std::min({size_t{size}, r.capacity(), kXattrSizeMax});
        Result<size_t> n = call(r.payload().first(bound));
        if (!n.ok()) return r.error(n.error());
        return r.ok_written(std::min(*n, bound));
    };

    const uint64_t node = r.header.nodeid;
    const uint32_t opcode = r.header.opcode;
    log::trace("virtio-fs: request {} opcode {} node {} len {}", r.header.unique, opcode, node,
               r.header.len);
    if (opcode == FUSE_INIT) {
        auto in = r.arg_at_least<fuse_init_in>(16);  // major, minor, max_readahead, flags
        if (!in) return bad("INIT");
        fuse_init_out out{};
        out.major = FUSE_KERNEL_VERSION;
        out.minor = FUSE_KERNEL_MINOR_VERSION;
        if (in->major > FUSE_KERNEL_VERSION) {
            // The guest retries with our major (fuse protocol: reply with only the version).
            return r.ok(out);
        }
        if (in->major < FUSE_KERNEL_VERSION || in->minor < kMinMinor) {
            if (limit.allow())
                log::warn("virtio-fs: guest FUSE protocol {}.{} too old", in->major, in->minor);
            return r.error(EPROTO);
        }
        m_minor = std::min<uint32_t>(in->minor, FUSE_KERNEL_MINOR_VERSION);
        out.minor = m_minor;
        const uint32_t wanted = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS |
                                FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_MAX_PAGES |
                                FUSE_ATOMIC_O_TRUNC;
        // FUSE_EXPORT_SUPPORT and FUSE_POSIX_ACL deliberately off.
        out.flags = in->flags & wanted;
        out.max_readahead = in->max_readahead;
        out.max_background = 64;
        out.congestion_threshold = 48;
        out.max_write = m_max_write;
        out.time_gran = 1;
        out.max_pages = static_cast<uint16_t>(kMaxPages);
        m_fs.init();
        m_initialized = true;
        return r.ok(out);
    }
    if (!m_initialized) return r.error(EIO);

    switch (opcode) {
        case FUSE_DESTROY:
            m_fs.destroy();
            m_initialized = false;
            return r.ok();
        case FUSE_LOOKUP: {
            auto name = r.name();
            if (!name) return bad("LOOKUP");
            return entry_reply(m_fs.lookup(node, *name));
        }
        case FUSE_FORGET: {
            auto in = r.arg<fuse_forget_in>();
            if (!in) return bad("FORGET");
            m_fs.forget(node, in->nlookup);
            return 0;
        }
        case FUSE_BATCH_FORGET: {
            auto in = r.arg<fuse_batch_forget_in>();
            if (!in) return bad("BATCH_FORGET");
            // Only the records actually present are honoured, whatever `count` claims.
            for (uint32_t i = 0; i < in->count; ++i) {
                auto one = r.arg<fuse_forget_one>();
                if (!one) {
                    ++m_malformed;
                    break;
                }
                m_fs.forget(one->nodeid, one->nlookup);
            }
            return 0;
        }
        case FUSE_GETATTR: {
            auto in = r.arg<fuse_getattr_in>();
            if (!in) return bad("GETATTR");
            std::optional<uint64_t> fh;
            if (in->getattr_flags & FUSE_GETATTR_FH) fh = in->fh;
            return attr_reply(m_fs.getattr(node, fh));
        }
        case FUSE_SETATTR: {
            auto in = r.arg<fuse_setattr_in>();
            if (!in) return bad("SETATTR");
            SetAttr a;
            if (in->valid & FATTR_FH) a.handle = in->fh;
            if (in->valid & FATTR_MODE) a.mode = in->mode & 07777;
            if (in->valid & FATTR_UID) a.uid = in->uid;
            if (in->valid & FATTR_GID) a.gid = in->gid;
            if (in->valid & FATTR_SIZE) a.size = in->size;
            log::trace("virtio-fs: SETATTR node {} valid {:#x} size {:#x}", node, in->valid,
                       in->size);
            auto time = [](uint64_t sec, uint32_t nsec, bool now) {
                struct timespec ts {};
                if (now) {
                    ts.tv_nsec = UTIME_NOW;
                } else {
                    ts.tv_sec = static_cast<time_t>(sec);
                    ts.tv_nsec = nsec < 1'000'000'000 ? nsec : 999'999'999;
                }
                return ts;
            };
            if (in->valid & (FATTR_ATIME | FATTR_ATIME_NOW))
                a.atime = time(in->atime, in->atimensec, in->valid & FATTR_ATIME_NOW);
            if (in->valid & (FATTR_MTIME | FATTR_MTIME_NOW))
                a.mtime = time(in->mtime, in->mtimensec, in->valid & FATTR_MTIME_NOW);
            return attr_reply(m_fs.setattr(node, a));
        }
        case FUSE_READLINK: {
            auto target = m_fs.readlink(node);
            if (!target.ok()) return r.error(target.error());
            return r.ok_bytes({reinterpret_cast<const uint8_t*>(target->data()), target->size()});
        }
        case FUSE_SYMLINK: {
            auto name = r.name();
            auto target = name ? r.string(PATH_MAX - 1) : std::nullopt;
            if (!target || target->empty()) return bad("SYMLINK");
            return entry_reply(m_fs.symlink(node, *name, *target));
        }
        case FUSE_MKNOD: {
            auto in = r.arg<fuse_mknod_in>();
            auto name = in ? r.name() : std::nullopt;
            if (!name) return bad("MKNOD");
            return entry_reply(m_fs.mknod(node, *name, in->mode, in->rdev, in->umask));
        }
        case FUSE_MKDIR: {
            auto in = r.arg<fuse_mkdir_in>();
            auto name = in ? r.name() : std::nullopt;
            if (!name) return bad("MKDIR");
            return entry_reply(m_fs.mkdir(node, *name, in->mode, in->umask));
        }
        case FUSE_UNLINK:
        case FUSE_RMDIR: {
            auto name = r.name();
            if (!name) return bad("UNLINK/RMDIR");
            return status_reply(opcode == FUSE_UNLINK ? m_fs.unlink(node, *name)
                                                      : m_fs.rmdir(node, *name));
        }
        case FUSE_RENAME:
        case FUSE_RENAME2: {
            uint64_t new_dir = 0;
            uint32_t flags = 0;
            if (opcode == FUSE_RENAME) {
                auto in = r.arg<fuse_rename_in>();
                if (!in) return bad("RENAME");
                new_dir = in->newdir;
            } else {
                auto in = r.arg<fuse_rename2_in>();
                if (!in) return bad("RENAME2");
                new_dir = in->newdir;
                flags = in->flags;
            }
            auto name = r.name();
            auto new_name = name ? r.name() : std::nullopt;
            if (!new_name) return bad("RENAME");
            return status_reply(m_fs.rename(node, *name, new_dir, *new_name, flags));
        }
        case FUSE_LINK: {
            auto in = r.arg<fuse_link_in>();
            auto name = in ? r.name() : std::nullopt;
            if (!name) return bad("LINK");
            return entry_reply(m_fs.link(in->oldnodeid, node, *name));
        }
        case FUSE_OPEN:
        case FUSE_OPENDIR: {
            auto in = r.arg<fuse_open_in>();
            if (!in) return bad("OPEN");
            return open_reply(opcode == FUSE_OPEN ? m_fs.open(node, in->flags)
                                                  : m_fs.opendir(node, in->flags));
        }
        case FUSE_READ: {
            auto in = r.arg<fuse_read_in>();
            if (!in) return bad("READ");
            if (in->size > m_max_write || in->size > r.capacity()) return bad("READ size");
            auto n = m_fs.read(node, in->fh, in->offset, r.payload().first(in->size));
            if (!n.ok()) return r.error(n.error());
            log::trace("virtio-fs: READ node {} fh {} {:#x}+{:#x} -> {:#x}", node, in->fh,
                       in->offset, in->size, *n);
            return r.ok_written(std::min<size_t>(*n, in->size));
        }
        case FUSE_WRITE: {
            auto in = r.arg<fuse_write_in>();
            if (!in) return bad("WRITE");
            if (in->size > m_max_write || in->size > r.rest().size()) return bad("WRITE size");
            auto n = m_fs.write(node, in->fh, in->offset, r.rest().first(in->size));
            if (!n.ok()) return r.error(n.error());
            log::trace("virtio-fs: WRITE node {} fh {} {:#x}+{:#x} flags {:#x} -> {:#x}", node,
                       in->fh, in->offset, in->size, in->write_flags, *n);
            fuse_write_out out{};
            out.size = static_cast<uint32_t>(std::min<size_t>(*n, in->size));
            return r.ok(out);
        }
        case FUSE_STATFS: {
            auto st = m_fs.statfs(node);
            if (!st.ok()) return r.error(st.error());
            fuse_statfs_out out{};
            out.st.blocks = st->f_blocks;
            out.st.bfree = st->f_bfree;
            out.st.bavail = st->f_bavail;
            out.st.files = st->f_files;
            out.st.ffree = st->f_ffree;
            out.st.bsize = static_cast<uint32_t>(st->f_bsize);
            out.st.namelen = static_cast<uint32_t>(st->f_namemax);
            out.st.frsize = static_cast<uint32_t>(st->f_frsize);
            return r.ok(out);
        }
        case FUSE_RELEASE:
        case FUSE_RELEASEDIR: {
            auto in = r.arg<fuse_release_in>();
            if (!in) return bad("RELEASE");
            return status_reply(opcode == FUSE_RELEASE ? m_fs.release(node, in->fh)
                                                       : m_fs.releasedir(node, in->fh));
        }
        case FUSE_FSYNC:
        case FUSE_FSYNCDIR: {
            auto in = r.arg<fuse_fsync_in>();
            if (!in) return bad("FSYNC");
            auto sync = (in->fsync_flags & FUSE_FSYNC_FDATASYNC) ? FileSystem::Sync::DataOnly
                                                                 : FileSystem::Sync::All;
            return status_reply(opcode == FUSE_FSYNC ? m_fs.fsync(node, in->fh, sync)
                                                     : m_fs.fsyncdir(node, in->fh, sync));
        }
        case FUSE_FLUSH: {
            auto in = r.arg<fuse_flush_in>();
            if (!in) return bad("FLUSH");
            return status_reply(m_fs.flush(node, in->fh));
        }
        case FUSE_GETXATTR: {
            auto in = r.arg<fuse_getxattr_in>();
            auto name = in ? r.string(kXattrNameMax) : std::nullopt;
            if (!name || name->empty()) return bad("GETXATTR");
            return xattr_reply(
                in->size, [&](std::span<uint8_t> out) { return m_fs.getxattr(node, *name, out); });
        }
        case FUSE_LISTXATTR: {
            auto in = r.arg<fuse_getxattr_in>();
            if (!in) return bad("LISTXATTR");
            return xattr_reply(in->size,
                               [&](std::span<uint8_t> out) { return m_fs.listxattr(node, out); });
        }
        case FUSE_SETXATTR: {
            // FUSE_SETXATTR_EXT is not negotiated: the 8-byte compat fuse_setxattr_in.
            struct SetxattrIn {
                uint32_t size;
                uint32_t flags;
            };
            static_assert(sizeof(SetxattrIn) == FUSE_COMPAT_SETXATTR_IN_SIZE);
            auto in = r.arg<SetxattrIn>();
            auto name = in ? r.string(kXattrNameMax) : std::nullopt;
            if (!name || name->empty()) return bad("SETXATTR");
            if (in->size > kXattrSizeMax || in->size > r.rest().size()) return bad("SETXATTR size");
            return status_reply(m_fs.setxattr(node, *name, r.rest().first(in->size), in->flags));
        }
        case FUSE_REMOVEXATTR: {
            auto name = r.string(kXattrNameMax);
            if (!name || name->empty()) return bad("REMOVEXATTR");
            return status_reply(m_fs.removexattr(node, *name));
        }
        case FUSE_READDIR:
        case FUSE_READDIRPLUS: {
            auto in = r.arg<fuse_read_in>();
            if (!in) return bad("READDIR");
            size_t bound = std::min<size_t>({in->size, r.capacity(), m_max_write});
            ReplyDirSink sink(r.payload().first(bound),
                              opcode == FUSE_READDIRPLUS ? &m_fs : nullptr, node, &EntryMaker::make,
                              &maker);
            Status s = m_fs.readdir(node, in->fh, in->offset, sink);
            // Entries already listed (and, for READDIRPLUS, looked up) must reach the guest.
            if (!s.ok() && sink.used() == 0) return r.error(s.error());
            return r.ok_written(sink.used());
        }
        case FUSE_ACCESS: {
            auto in = r.arg<fuse_access_in>();
            if (!in) return bad("ACCESS");
            return status_reply(m_fs.access(node, in->mask));
        }
        case FUSE_CREATE: {
            auto in = r.arg<fuse_create_in>();
            auto name = in ? r.name() : std::nullopt;
            if (!name) return bad("CREATE");
            auto c = m_fs.create(node, *name, in->mode, in->flags, in->umask);
            if (!c.ok()) return r.error(c.error());
            struct {
                fuse_entry_out entry;
                fuse_open_out open;
            } out{};
            static_assert(sizeof out == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
            out.entry = EntryMaker::make(c->entry, &maker);
            out.open.fh = c->opened.handle;
            out.open.open_flags = c->opened.open_flags;
            return r.ok(out);
        }
        case FUSE_FALLOCATE: {
            auto in = r.arg<fuse_fallocate_in>();
            if (!in) return bad("FALLOCATE");
            return status_reply(m_fs.fallocate(node, in->fh, in->mode, in->offset, in->length));
        }
        case FUSE_LSEEK: {
            auto in = r.arg<fuse_lseek_in>();
            if (!in) return bad("LSEEK");
            auto off = m_fs.lseek(node, in->fh, in->offset, in->whence);
            if (!off.ok()) return r.error(off.error());
            fuse_lseek_out out{};
            out.offset = *off;
            return r.ok(out);
        }
        case FUSE_COPY_FILE_RANGE: {
            auto in = r.arg<fuse_copy_file_range_in>();
            if (!in) return bad("COPY_FILE_RANGE");
            FileSystem::CopyRange range{
                node, in->fh_in, in->off_in, in->nodeid_out, in->fh_out, in->off_out,
                // fuse_write_out.size is 32 bits.
                std::min<uint64_t>(in->len, UINT32_MAX & ~0xfffu), in->flags};
            auto n = m_fs.copy_file_range(range);
            if (!n.ok()) return r.error(n.error());
            fuse_write_out out{};
            out.size = static_cast<uint32_t>(std::min<uint64_t>(*n, range.length));
            return r.ok(out);
        }
        default:
            if (limit.allow()) log::debug("virtio-fs: unsupported opcode {}", opcode);
            return r.error(ENOSYS);
    }
}

}  // namespace msb::devices::fs
