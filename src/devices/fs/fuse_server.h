// FuseServer: decodes FUSE requests (Linux fs/fuse wire protocol, <linux/fuse.h>) and
// dispatches them to a FileSystem.
//
//   FuseServer server(fs);
//   size_t n = server.handle(request_bytes, reply_buffer);   // n == 0: send no reply
//
// A request is the driver→device bytes of one virtio-fs chain (fuse_in_header + arguments);
// the reply is written into the device→driver buffer (fuse_out_header + payload). Every guest
// field is validated before use: the header's `len` against the bytes present, arguments
// against their struct sizes, names for a NUL terminator inside the request, read/write/xattr
// sizes against what was negotiated and against the reply buffer. A malformed request gets an
// error reply (EINVAL, EIO before INIT, ENOSYS for unknown opcodes); a request whose reply
// buffer cannot hold a fuse_out_header is dropped and counted. Nothing is allocated from a
// guest length before it is bounded.
//
// Threads: one thread (the device's event loop) calls handle(); counters may be read anywhere.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/fs/file_system.h"

namespace msb::devices::fs {

class FuseServer {
public:
    // Largest WRITE payload (and READ reply) we negotiate; the request and reply buffers the
    // device provides are bounded by these plus one page of headers.
    static constexpr uint32_t kMaxWrite = 1u << 20;
    static constexpr uint32_t kMaxPages = kMaxWrite / 4096;
    static constexpr size_t kMaxRequest = kMaxWrite + 4096;
    static constexpr size_t kMaxReply = kMaxWrite + 4096;
    // Oldest guest protocol we serve (7.31, Linux 5.4: the first with virtio-fs).
    static constexpr uint32_t kMinMinor = 31;

    struct Options {
        uint64_t entry_timeout_ns = 1'000'000'000;
        uint64_t attr_timeout_ns = 1'000'000'000;
    };

    // `fs` must outlive the server.
    explicit FuseServer(FileSystem& fs) : FuseServer(fs, Options{}) {}
    FuseServer(FileSystem& fs, Options options) : m_fs(fs), m_options(options) {}

    FuseServer(const FuseServer&) = delete;
    FuseServer& operator=(const FuseServer&) = delete;

    // Handles one request. Writes the reply into `reply` and returns its length; 0 means no
    // reply is due (FORGET, BATCH_FORGET) or the request was dropped.
    size_t handle(std::span<const uint8_t> request, std::span<uint8_t> reply);

    // Ends the FUSE session as DESTROY would (device reset): the FileSystem drops its nodes
    // and handles, and the next request must be INIT.
    void reset_session() {
        if (m_initialized) m_fs.destroy();
        m_initialized = false;
    }

    bool initialized() const { return m_initialized; }
    uint32_t negotiated_minor() const { return m_minor; }
    uint64_t requests() const { return m_requests.load(); }
    uint64_t malformed() const { return m_malformed.load(); }
    uint64_t dropped() const { return m_dropped.load(); }

private:
    class Request;
    size_t dispatch(Request& request);

    FileSystem& m_fs;
    Options m_options;
    bool m_initialized = false;
    uint32_t m_minor = 0;
    uint32_t m_max_write = kMaxWrite;
    std::atomic<uint64_t> m_requests{0};
    std::atomic<uint64_t> m_malformed{0};
    std::atomic<uint64_t> m_dropped{0};
};

}  // namespace msb::devices::fs
