// libFuzzer target: FUSE request decoding. Each input is split into requests served by one
// FuseServer (so session state such as INIT carries across them) over a FileSystem that
// answers every operation successfully, reaching every reply encoder.
//
// Input layout, repeated: u16 reply buffer size, u16 request length, request bytes.
#include <linux/fuse.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/fs/fuse_server.h"

namespace {

using namespace msb::devices::fs;

class AnswerEverything final : public FileSystem {
public:
    Entry entry() {
        Entry e;
        e.node = 2;
        e.attr.st_mode = S_IFREG | 0644;
        return e;
    }
    msb::Result<Entry> lookup(uint64_t, std::string_view name) override {
        if (name.size() % 3 == 0) return fs_error(ENOENT);
        return entry();
    }
    msb::Result<struct stat> getattr(uint64_t, std::optional<uint64_t>) override {
        return entry().attr;
    }
    msb::Result<struct stat> setattr(uint64_t, const SetAttr&) override { return entry().attr; }
    msb::Result<std::string> readlink(uint64_t) override { return std::string(5000, 'l'); }
    msb::Result<Entry> symlink(uint64_t, std::string_view, std::string_view) override {
        return entry();
    }
    msb::Result<Entry> mkdir(uint64_t, std::string_view, uint32_t, uint32_t) override {
        return entry();
    }
    msb::Result<Opened> open(uint64_t, uint32_t) override { return Opened{1, 0}; }
    msb::Result<Opened> opendir(uint64_t, uint32_t) override { return Opened{1, 0}; }
    msb::Result<size_t> read(uint64_t, uint64_t, uint64_t, std::span<uint8_t> out) override {
        std::memset(out.data(), 'r', out.size());
        return out.size();
    }
    msb::Result<size_t> write(uint64_t, uint64_t, uint64_t,
                              std::span<const uint8_t> data) override {
        size_t sum = 0;
        for (uint8_t b : data) sum += b;  // touch every byte
        return data.size() + (sum & 0);
    }
    msb::Result<size_t> getxattr(uint64_t, std::string_view, std::span<uint8_t> out) override {
        if (out.empty()) return size_t{100};
        std::memset(out.data(), 'x', out.size());
        return out.size();
    }
    msb::Result<size_t> listxattr(uint64_t, std::span<uint8_t> out) override {
        if (out.empty()) return size_t{100};  // the size query (a null span)
        std::memset(out.data(), 0, out.size());
        return out.size();
    }
    msb::Status readdir(uint64_t, uint64_t, uint64_t offset, DirSink& sink) override {
        for (uint64_t i = offset; i < offset + 300; ++i)
            if (!sink.add(std::string(i % 256 + 1, 'd'), i, 8, i + 1)) break;
        return {};
    }
    msb::Result<Created> create(uint64_t, std::string_view, uint32_t, uint32_t, uint32_t) override {
        return Created{entry(), Opened{1, 0}};
    }
    msb::Result<size_t> copy_file_range(const CopyRange& range) override { return range.length; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    AnswerEverything fs;
    FuseServer server(fs);
    std::vector<uint8_t> reply;
    while (size >= 4) {
        uint16_t reply_size, request_size;
        std::memcpy(&reply_size, data, 2);
        std::memcpy(&request_size, data + 2, 2);
        data += 4, size -= 4;
        size_t n = std::min<size_t>(request_size, size);
        // Exact-size heap buffers, so ASan sees any read or write past either end.
        std::vector<uint8_t> request(data, data + n);
        reply.assign(reply_size, 0);
        size_t written = server.handle(request, reply);
        if (written > reply.size()) __builtin_trap();
        if (written >= sizeof(fuse_out_header)) {
            fuse_out_header out;
            std::memcpy(&out, reply.data(), sizeof out);
            if (out.len != written || out.error > 0 || out.error < -4095) __builtin_trap();
        }
        data += n, size -= n;
    }
    return 0;
}
