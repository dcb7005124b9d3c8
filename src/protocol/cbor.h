// CBOR helpers of the protocol codec (internal to msb_protocol): a bounded well-formedness
// pre-check, non-throwing parse/serialise through nlohmann::ordered_json, and typed field
// readers that implement serde's rules (required / default fields, unknown keys ignored).
//
// Why a pre-check before nlohmann: its CBOR reader recurses once per nesting level, so a 4 MiB
// frame of nested one-element arrays would exhaust the stack. check_cbor() walks the input
// iteratively, bounds the depth, and verifies every declared length against the bytes present,
// so nothing downstream can be asked to allocate more than the input's size.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace msb::protocol::cbor {

using Json = nlohmann::ordered_json;

// Deepest nesting accepted (our payloads use at most 4 levels).
inline constexpr size_t kMaxDepth = 16;

// Ok when `input` is exactly one well-formed CBOR data item without tags, nested at most
// kMaxDepth deep, and negative integers fit in int64.
Status check(std::span<const uint8_t> input);

// Size in bytes of the one well-formed data item at the start of `input` (same rules as check(),
// trailing bytes allowed).
Result<size_t> item_size(std::span<const uint8_t> input);

// check() + nlohmann's non-throwing strict parse.
Result<Json> parse(std::span<const uint8_t> input);

// CBOR encoding of `value` (definite lengths, shortest integer forms, as ciborium writes).
std::vector<uint8_t> serialize(const Json& value);

// A byte-string JSON value.
Json bytes(const std::vector<uint8_t>& data);

// --- hand-rolled fast path for the hot, byte-heavy shapes (envelope, {"data": bytes}) -------
// nlohmann copies byte strings one byte at a time; these write/read them with memcpy. Output is
// identical to serialize() (shortest heads, definite lengths).

enum class Major : uint8_t { Unsigned = 0, Negative = 1, Bytes = 2, Text = 3, Array = 4, Map = 5 };

void append_head(std::vector<uint8_t>& out, Major major, uint64_t value);
void append_text(std::vector<uint8_t>& out, std::string_view text);
void append_bytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes);

// Sequential reader over definite-length items. Every method returns nullopt when the next item
// is not what was asked (or is truncated); callers then fall back to the general parser, which
// produces the precise error.
class FastReader {
public:
    explicit FastReader(std::span<const uint8_t> input) : m_input(input) {}
    // The count of a definite-length map.
    std::optional<uint64_t> map_header();
    std::optional<uint64_t> unsigned_int();
    std::optional<std::string_view> text();
    std::optional<std::span<const uint8_t>> bytes();
    // Skips one complete item of any shape.
    bool skip();
    bool at_end() const { return m_pos == m_input.size(); }

private:
    std::optional<uint64_t> head(Major major);
    std::span<const uint8_t> m_input;
    size_t m_pos = 0;
};

// --- field readers ----------------------------------------------------------------------------
// Every reader takes a map value `object` and a key; on error the message names the field.

enum class Presence { Required, Default };

// nullptr when `key` is absent. REQUIRES: object.is_object().
const Json* find(const Json& object, std::string_view key);

Status expect_map(const Json& value, std::string_view what);

Status read_u64(const Json& object, std::string_view key, uint64_t max, Presence presence,
                uint64_t& out);
Status read_i64(const Json& object, std::string_view key, int64_t min, int64_t max,
                Presence presence, int64_t& out);

template <typename T>
Status read_unsigned(const Json& object, std::string_view key, Presence presence, T& out) {
    uint64_t value = out;
    TRY(read_u64(object, key, std::numeric_limits<T>::max(), presence, value));
    out = static_cast<T>(value);
    return {};
}

template <typename T>
Status read_signed(const Json& object, std::string_view key, Presence presence, T& out) {
    int64_t value = out;
    TRY(read_i64(object, key, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
                 presence, value));
    out = static_cast<T>(value);
    return {};
}

Status read_bool(const Json& object, std::string_view key, Presence presence, bool& out);
Status read_string(const Json& object, std::string_view key, Presence presence, std::string& out);
// Absent or null → nullopt.
Status read_optional_string(const Json& object, std::string_view key,
                            std::optional<std::string>& out);
Status read_optional_u32(const Json& object, std::string_view key, std::optional<uint32_t>& out);
Status read_optional_i64(const Json& object, std::string_view key, std::optional<int64_t>& out);
Status read_bytes(const Json& object, std::string_view key, Presence presence,
                  std::vector<uint8_t>& out);
Status read_string_list(const Json& object, std::string_view key, Presence presence,
                        std::vector<std::string>& out);

}  // namespace msb::protocol::cbor
