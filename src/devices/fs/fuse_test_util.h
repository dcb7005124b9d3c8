// Test helpers: building FUSE requests and reading replies as a guest kernel would.
#pragma once

#include <linux/fuse.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace msb::devices::fs::testing {

class RequestBuilder {
public:
    RequestBuilder(uint32_t opcode, uint64_t node, uint64_t unique = 7) {
        fuse_in_header h{};
        h.opcode = opcode;
        h.nodeid = node;
        h.unique = unique;
        append(h);
    }
    template <typename T>
    RequestBuilder& append(const T& value) {
        size_t at = m_bytes.size();
        m_bytes.resize(at + sizeof value);
        std::memcpy(m_bytes.data() + at, &value, sizeof value);
        return *this;
    }
    RequestBuilder& bytes(std::string_view s) {
        size_t at = m_bytes.size();
        m_bytes.resize(at + s.size());
        if (!s.empty()) std::memcpy(m_bytes.data() + at, s.data(), s.size());
        return *this;
    }
    RequestBuilder& name(std::string_view s) {
        bytes(s);
        m_bytes.push_back(0);
        return *this;
    }
    // The request with fuse_in_header.len set to its size (or `len_override`).
    std::vector<uint8_t> build(std::optional<uint32_t> len_override = std::nullopt) const {
        std::vector<uint8_t> out = m_bytes;
        uint32_t len = len_override ? *len_override : static_cast<uint32_t>(out.size());
        std::memcpy(out.data(), &len, sizeof len);
        return out;
    }

private:
    std::vector<uint8_t> m_bytes;
};

struct Reply {
    fuse_out_header header{};
    std::vector<uint8_t> payload;
    template <typename T>
    T as(size_t offset = 0) const {
        T value{};
        if (offset + sizeof(T) <= payload.size())
            std::memcpy(&value, payload.data() + offset, sizeof(T));
        return value;
    }
};

inline Reply parse_reply(const std::vector<uint8_t>& bytes, size_t n) {
    Reply r;
    if (n < sizeof r.header) return r;
    std::memcpy(&r.header, bytes.data(), sizeof r.header);
    r.payload.resize(n - sizeof r.header);
    if (!r.payload.empty())
        std::memcpy(r.payload.data(), bytes.data() + sizeof r.header, r.payload.size());
    return r;
}

inline std::vector<uint8_t> init_request(uint32_t minor = 36, uint32_t flags = ~0u) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = minor;
    in.max_readahead = 65536;
    in.flags = flags;
    return RequestBuilder(FUSE_INIT, 0, 1).append(in).build();
}

}  // namespace msb::devices::fs::testing
