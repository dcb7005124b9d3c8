// CBOR pre-check (RFC 8949 §3) and typed field readers; see cbor.h.
#include "protocol/cbor.h"

#include <fmt/format.h>

#include "base/byte_copy.h"

namespace msb::protocol::cbor {

namespace {

constexpr int kNoChunks = -1;

// One open container (or the implicit top level) while walking the input.
struct Level {
    uint64_t remaining = 0;  // items still expected (definite length)
    uint64_t seen = 0;       // items seen (indefinite length: maps need an even count)
    bool indefinite = false;
    bool is_map = false;
    int chunk_major = kNoChunks;  // indefinite byte/text string: the major type of its chunks
};

Error malformed(std::string_view what, size_t offset) {
    return Error(fmt::format("malformed CBOR at byte {}: {}", offset, what));
}

}  // namespace

Status check(std::span<const uint8_t> input) {
    size_t size = TRY(item_size(input));
    if (size != input.size()) return malformed("trailing bytes after the data item", size);
    return {};
}

Result<size_t> item_size(std::span<const uint8_t> input) {
    std::vector<Level> stack;
    stack.reserve(kMaxDepth + 1);
    stack.push_back(Level{.remaining = 1});
    size_t pos = 0;

    while (!stack.empty()) {
        if (!stack.back().indefinite && stack.back().remaining == 0) {
            stack.pop_back();
            continue;
        }
        if (pos >= input.size()) return malformed("truncated", pos);
        const size_t item_offset = pos;
        const uint8_t initial = input[pos++];
        const int major = initial >> 5;
        const uint8_t info = initial & 0x1f;

        if (initial == 0xff) {  // "break" (§3.2.1)
            const Level& top = stack.back();
            if (!top.indefinite) return malformed("unexpected break", item_offset);
            if (top.is_map && top.seen % 2 != 0)
                return malformed("map key without value", item_offset);
            stack.pop_back();
            continue;
        }

        Level& parent = stack.back();
        if (parent.chunk_major != kNoChunks && (major != parent.chunk_major || info == 31)) {
            return malformed("bad chunk in indefinite-length string", item_offset);
        }
        if (parent.indefinite) {
            ++parent.seen;
        } else {
            --parent.remaining;
        }

        uint64_t argument = 0;
        bool indefinite = false;
        if (info < 24) {
            argument = info;
        } else if (info <= 27) {
            const size_t width = size_t{1} << (info - 24);
            if (input.size() - pos < width) return malformed("truncated argument", item_offset);
            for (size_t i = 0; i < width; ++i) argument = (argument << 8) | input[pos++];
        } else if (info == 31) {
            indefinite = true;
        } else {
            return malformed("reserved additional information", item_offset);
        }

        const size_t left = input.size() - pos;
        switch (major) {
            case 0:  // unsigned integer
                if (indefinite) return malformed("indefinite integer", item_offset);
                break;
            case 1:  // negative integer -1 - argument
                if (indefinite) return malformed("indefinite integer", item_offset);
                if (argument > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                    return malformed("negative integer out of range", item_offset);
                }
                break;
            case 2:  // byte string
            case 3:  // text string
                if (indefinite) {
                    if (stack.size() > kMaxDepth)
                        return malformed("nested too deeply", item_offset);
                    stack.push_back(Level{.indefinite = true, .chunk_major = major});
                } else {
                    if (argument > left)
                        return malformed("string longer than the input", item_offset);
                    pos += static_cast<size_t>(argument);
                }
                break;
            case 4:  // array
            case 5:  // map
                if (stack.size() > kMaxDepth) return malformed("nested too deeply", item_offset);
                if (indefinite) {
                    stack.push_back(Level{.indefinite = true, .is_map = major == 5});
                } else {
                    // Every item takes at least one byte: a count beyond the input is a lie.
                    const uint64_t items = major == 5 ? argument * 2 : argument;
                    if (argument > left || (major == 5 && argument > left / 2)) {
                        return malformed("container longer than the input", item_offset);
                    }
                    stack.push_back(Level{.remaining = items, .is_map = major == 5});
                }
                break;
            case 6:
                return malformed("tags are not supported", item_offset);
            case 7:
                if (indefinite) return malformed("unexpected break", item_offset);
                break;
            default:
                break;
        }
    }
    return pos;
}

void append_head(std::vector<uint8_t>& out, Major major, uint64_t value) {
    const auto type = static_cast<uint8_t>(static_cast<uint8_t>(major) << 5);
    if (value < 24) {
        out.push_back(static_cast<uint8_t>(type | value));
        return;
    }
    int width = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffff ? 4 : 8;
    out.push_back(static_cast<uint8_t>(type | (width == 1   ? 24
                                               : width == 2 ? 25
                                               : width == 4 ? 26
                                                            : 27)));
    for (int i = width - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

void append_text(std::vector<uint8_t>& out, std::string_view text) {
    append_head(out, Major::Text, text.size());
    out.insert(out.end(), text.begin(), text.end());
}

void append_bytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
    append_head(out, Major::Bytes, bytes.size());
    append_bytes_to(out, bytes);
}

std::optional<uint64_t> FastReader::head(Major major) {
    if (m_pos >= m_input.size()) return std::nullopt;
    const uint8_t initial = m_input[m_pos];
    if ((initial >> 5) != static_cast<uint8_t>(major)) return std::nullopt;
    const uint8_t info = initial & 0x1f;
    if (info < 24) {
        ++m_pos;
        return info;
    }
    if (info > 27) return std::nullopt;
    const size_t width = size_t{1} << (info - 24);
    if (m_input.size() - m_pos - 1 < width) return std::nullopt;
    uint64_t value = 0;
    for (size_t i = 1; i <= width; ++i) value = (value << 8) | m_input[m_pos + i];
    m_pos += 1 + width;
    return value;
}

std::optional<uint64_t> FastReader::map_header() { return head(Major::Map); }

std::optional<uint64_t> FastReader::unsigned_int() { return head(Major::Unsigned); }

std::optional<std::string_view> FastReader::text() {
    const size_t start = m_pos;
    auto size = head(Major::Text);
    if (!size || *size > m_input.size() - m_pos) {
        m_pos = start;
        return std::nullopt;
    }
    std::string_view view(reinterpret_cast<const char*>(m_input.data() + m_pos), *size);
    m_pos += *size;
    return view;
}

std::optional<std::span<const uint8_t>> FastReader::bytes() {
    const size_t start = m_pos;
    auto size = head(Major::Bytes);
    if (!size || *size > m_input.size() - m_pos) {
        m_pos = start;
        return std::nullopt;
    }
    auto view = m_input.subspan(m_pos, *size);
    m_pos += *size;
    return view;
}

bool FastReader::skip() {
    auto size = item_size(m_input.subspan(m_pos));
    if (!size.ok()) return false;
    m_pos += size.value();
    return true;
}

Result<Json> parse(std::span<const uint8_t> input) {
    TRY(check(input));
    Json value = Json::from_cbor(input.begin(), input.end(), /*strict=*/true,
                                 /*allow_exceptions=*/false);
    if (value.is_discarded()) return Error("malformed CBOR: rejected by the decoder");
    return value;
}

std::vector<uint8_t> serialize(const Json& value) {
    std::vector<uint8_t> out;
    Json::to_cbor(value, out);
    return out;
}

Json bytes(const std::vector<uint8_t>& data) { return Json::binary(data); }

const Json* find(const Json& object, std::string_view key) {
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
}

Status expect_map(const Json& value, std::string_view what) {
    if (!value.is_object()) return Error(fmt::format("{}: expected a map", what));
    return {};
}

namespace {

// Looks up `key`; Ok(nullptr) when absent and allowed to be.
Result<const Json*> lookup(const Json& object, std::string_view key, Presence presence) {
    const Json* value = find(object, key);
    if (value == nullptr && presence == Presence::Required) {
        return Error(fmt::format("missing field '{}'", key));
    }
    return value;
}

Error wrong_type(std::string_view key, std::string_view expected) {
    return Error(fmt::format("field '{}': expected {}", key, expected));
}

}  // namespace

Status read_u64(const Json& object, std::string_view key, uint64_t max, Presence presence,
                uint64_t& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (!value->is_number_unsigned()) return wrong_type(key, "an unsigned integer");
    uint64_t number = value->get<uint64_t>();
    if (number > max) {
        return Error(fmt::format("field '{}': {} is out of range (max {})", key, number, max));
    }
    out = number;
    return {};
}

Status read_i64(const Json& object, std::string_view key, int64_t min, int64_t max,
                Presence presence, int64_t& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (value->is_number_unsigned()) {
        uint64_t number = value->get<uint64_t>();
        if (number > static_cast<uint64_t>(max)) {
            return Error(fmt::format("field '{}': {} is out of range (max {})", key, number, max));
        }
        out = static_cast<int64_t>(number);
        return {};
    }
    if (!value->is_number_integer()) return wrong_type(key, "an integer");
    int64_t number = value->get<int64_t>();
    if (number < min || number > max) {
        return Error(fmt::format("field '{}': {} is out of range [{}, {}]", key, number, min, max));
    }
    out = number;
    return {};
}

Status read_bool(const Json& object, std::string_view key, Presence presence, bool& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (!value->is_boolean()) return wrong_type(key, "a bool");
    out = value->get<bool>();
    return {};
}

Status read_string(const Json& object, std::string_view key, Presence presence, std::string& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (!value->is_string()) return wrong_type(key, "a text string");
    out = value->get_ref<const std::string&>();
    return {};
}

Status read_optional_string(const Json& object, std::string_view key,
                            std::optional<std::string>& out) {
    const Json* value = find(object, key);
    if (value == nullptr || value->is_null()) {
        out.reset();
        return {};
    }
    if (!value->is_string()) return wrong_type(key, "a text string or null");
    out = value->get_ref<const std::string&>();
    return {};
}

Status read_optional_u32(const Json& object, std::string_view key, std::optional<uint32_t>& out) {
    const Json* value = find(object, key);
    if (value == nullptr || value->is_null()) {
        out.reset();
        return {};
    }
    uint32_t number = 0;
    TRY(read_unsigned(object, key, Presence::Required, number));
    out = number;
    return {};
}

Status read_optional_i64(const Json& object, std::string_view key, std::optional<int64_t>& out) {
    const Json* value = find(object, key);
    if (value == nullptr || value->is_null()) {
        out.reset();
        return {};
    }
    int64_t number = 0;
    TRY(read_signed(object, key, Presence::Required, number));
    out = number;
    return {};
}

Status read_bytes(const Json& object, std::string_view key, Presence presence,
                  std::vector<uint8_t>& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (!value->is_binary()) return wrong_type(key, "a byte string");
    const auto& binary = value->get_binary();
    out.assign(binary.begin(), binary.end());
    return {};
}

Status read_string_list(const Json& object, std::string_view key, Presence presence,
                        std::vector<std::string>& out) {
    const Json* value = TRY(lookup(object, key, presence));
    if (value == nullptr) return {};
    if (!value->is_array()) return wrong_type(key, "an array of text strings");
    std::vector<std::string> list;
    list.reserve(value->size());
    for (const Json& item : *value) {
        if (!item.is_string()) return wrong_type(key, "an array of text strings");
        list.push_back(item.get_ref<const std::string&>());
    }
    out = std::move(list);
    return {};
}

}  // namespace msb::protocol::cbor
