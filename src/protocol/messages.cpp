// Payload encoders/decoders; field order and names follow microsandbox 0.4.3's serde structs
// (crates/protocol/lib/{core,exec,fs}.rs), see messages.h.
#include "protocol/messages.h"

#include <fmt/format.h>

#include <array>

#include "base/byte_copy.h"
#include "protocol/cbor.h"

namespace msb::protocol {

using cbor::Json;
using cbor::Presence;

namespace {

constexpr std::array<std::string_view, 9> kFsOpNames{
    "Stat", "List", "Read", "Write", "Mkdir", "Remove", "RemoveDir", "Copy", "Rename"};

Json optional_string(const std::optional<std::string>& value) {
    return value ? Json(*value) : Json(nullptr);
}

Json entry_to_json(const FsEntryInfo& entry) {
    Json j = Json::object();
    j["path"] = entry.path;
    j["kind"] = entry.kind;
    j["size"] = entry.size;
    j["mode"] = entry.mode;
    j["modified"] = entry.modified ? Json(*entry.modified) : Json(nullptr);
    return j;
}

// {"data": bytes}, the shape of every byte-carrying payload, written by hand (memcpy).
std::vector<uint8_t> encode_data_payload(const std::vector<uint8_t>& data) {
    std::vector<uint8_t> out;
    out.reserve(16 + data.size());
    cbor::append_head(out, cbor::Major::Map, 1);
    cbor::append_text(out, "data");
    cbor::append_bytes(out, data);
    return out;
}

// Fast decode of {"data": bytes} (extra keys skipped); nullopt → use the general parser.
std::optional<std::vector<uint8_t>> decode_data_payload_fast(std::span<const uint8_t> payload) {
    cbor::FastReader reader(payload);
    auto count = reader.map_header();
    if (!count) return std::nullopt;
    std::optional<std::span<const uint8_t>> data;
    for (uint64_t i = 0; i < *count; ++i) {
        auto key = reader.text();
        if (!key) return std::nullopt;
        if (*key == "data") {
            if (!(data = reader.bytes())) return std::nullopt;
        } else if (!reader.skip()) {
            return std::nullopt;
        }
    }
    if (!reader.at_end() || !data) return std::nullopt;
    return copy_to_vector(*data);
}

template <typename P>
constexpr bool kIsDataPayload = std::is_same_v<P, ExecStdin> || std::is_same_v<P, ExecStdout> ||
                                std::is_same_v<P, ExecStderr> || std::is_same_v<P, FsData>;

// --- readers: one per struct, filling `out` from a parsed map --------------------------------

Status read(const Json& j, Ready& out) {
    TRY(cbor::read_unsigned(j, "boot_time_ns", Presence::Required, out.boot_time_ns));
    TRY(cbor::read_unsigned(j, "init_time_ns", Presence::Required, out.init_time_ns));
    TRY(cbor::read_unsigned(j, "ready_time_ns", Presence::Required, out.ready_time_ns));
    return {};
}

Status read(const Json& j, ExecRlimit& out) {
    TRY(cbor::expect_map(j, "rlimit"));
    TRY(cbor::read_string(j, "resource", Presence::Required, out.resource));
    TRY(cbor::read_unsigned(j, "soft", Presence::Required, out.soft));
    TRY(cbor::read_unsigned(j, "hard", Presence::Required, out.hard));
    return {};
}

Status read(const Json& j, ExecRequest& out) {
    TRY(cbor::read_string(j, "cmd", Presence::Required, out.cmd));
    TRY(cbor::read_string_list(j, "args", Presence::Default, out.args));
    TRY(cbor::read_string_list(j, "env", Presence::Default, out.env));
    TRY(cbor::read_optional_string(j, "cwd", out.cwd));
    TRY(cbor::read_optional_string(j, "user", out.user));
    TRY(cbor::read_bool(j, "tty", Presence::Default, out.tty));
    TRY(cbor::read_unsigned(j, "rows", Presence::Default, out.rows));
    TRY(cbor::read_unsigned(j, "cols", Presence::Default, out.cols));
    if (const Json* rlimits = cbor::find(j, "rlimits")) {
        if (!rlimits->is_array()) return Error("field 'rlimits': expected an array");
        out.rlimits.clear();
        for (const Json& item : *rlimits) {
            ExecRlimit limit;
            auto st = read(item, limit);
            if (!st) return st.error().with_context("field 'rlimits'");
            out.rlimits.push_back(std::move(limit));
        }
    }
    return {};
}

Status read(const Json& j, ExecStarted& out) {
    return cbor::read_unsigned(j, "pid", Presence::Required, out.pid);
}
Status read(const Json& j, ExecStdin& out) {
    return cbor::read_bytes(j, "data", Presence::Required, out.data);
}
Status read(const Json& j, ExecStdout& out) {
    return cbor::read_bytes(j, "data", Presence::Required, out.data);
}
Status read(const Json& j, ExecStderr& out) {
    return cbor::read_bytes(j, "data", Presence::Required, out.data);
}
Status read(const Json& j, ExecExited& out) {
    return cbor::read_signed(j, "code", Presence::Required, out.code);
}
Status read(const Json& j, ExecResize& out) {
    TRY(cbor::read_unsigned(j, "rows", Presence::Required, out.rows));
    TRY(cbor::read_unsigned(j, "cols", Presence::Required, out.cols));
    return {};
}
Status read(const Json& j, ExecSignal& out) {
    return cbor::read_signed(j, "signal", Presence::Required, out.signal);
}
Status read(const Json& j, FsData& out) {
    return cbor::read_bytes(j, "data", Presence::Required, out.data);
}

// An externally tagged enum value: a map with exactly one entry {variant: content}.
Result<std::pair<std::string_view, const Json*>> read_variant(const Json& j,
                                                              std::string_view what) {
    if (!j.is_object() || j.size() != 1) {
        return Error(fmt::format("field '{}': expected a map with one variant", what));
    }
    auto it = j.begin();
    return std::pair<std::string_view, const Json*>(it.key(), &it.value());
}

Status read(const Json& j, FsRequest& out) {
    const Json* op = cbor::find(j, "op");
    if (op == nullptr) return Error("missing field 'op'");
    auto [variant_name, content] = TRY(read_variant(*op, "op"));
    const std::string_view name = variant_name;  // clang 14 cannot capture structured bindings
    std::optional<FsOpKind> kind;
    for (size_t i = 0; i < kFsOpNames.size(); ++i) {
        if (kFsOpNames[i] == name) kind = static_cast<FsOpKind>(i);
    }
    if (!kind) return Error(fmt::format("field 'op': unknown variant '{}'", name));
    auto op_error = [&](const Error& e) { return e.with_context(fmt::format("op {}", name)); };
    if (!content->is_object()) return op_error(Error("expected a map"));
    FsOp result;
    result.kind = *kind;
    Status st;
    switch (*kind) {
        case FsOpKind::Copy:
        case FsOpKind::Rename:
            st = cbor::read_string(*content, "src", Presence::Required, result.src);
            if (st) st = cbor::read_string(*content, "dst", Presence::Required, result.dst);
            break;
        case FsOpKind::Write:
            st = cbor::read_string(*content, "path", Presence::Required, result.path);
            if (st) st = cbor::read_optional_u32(*content, "mode", result.mode);
            break;
        default:
            st = cbor::read_string(*content, "path", Presence::Required, result.path);
            break;
    }
    if (!st) return op_error(st.error());
    out.op = std::move(result);
    return {};
}

Status read(const Json& j, FsEntryInfo& out) {
    TRY(cbor::expect_map(j, "entry"));
    TRY(cbor::read_string(j, "path", Presence::Required, out.path));
    TRY(cbor::read_string(j, "kind", Presence::Required, out.kind));
    TRY(cbor::read_unsigned(j, "size", Presence::Required, out.size));
    TRY(cbor::read_unsigned(j, "mode", Presence::Required, out.mode));
    TRY(cbor::read_optional_i64(j, "modified", out.modified));
    return {};
}

Status read(const Json& j, FsResponse& out) {
    TRY(cbor::read_bool(j, "ok", Presence::Required, out.ok));
    TRY(cbor::read_optional_string(j, "error", out.error));
    out.data_kind = FsResponseDataKind::None;
    out.entries.clear();
    const Json* data = cbor::find(j, "data");
    if (data == nullptr || data->is_null()) return {};
    auto [name, content] = TRY(read_variant(*data, "data"));
    if (name == "Stat") {
        FsEntryInfo entry;
        auto st = read(*content, entry);
        if (!st) return st.error().with_context("data Stat");
        out.data_kind = FsResponseDataKind::Stat;
        out.entries.push_back(std::move(entry));
    } else if (name == "List") {
        if (!content->is_array()) return Error("data List: expected an array");
        std::vector<FsEntryInfo> entries;
        entries.reserve(content->size());
        for (const Json& item : *content) {
            FsEntryInfo entry;
            auto st = read(item, entry);
            if (!st) return st.error().with_context("data List");
            entries.push_back(std::move(entry));
        }
        out.data_kind = FsResponseDataKind::List;
        out.entries = std::move(entries);
    } else {
        return Error(fmt::format("field 'data': unknown variant '{}'", name));
    }
    return {};
}

}  // namespace

std::string_view fs_op_kind_name(FsOpKind kind) {
    auto index = static_cast<size_t>(kind);
    if (index >= kFsOpNames.size()) return "Unknown";
    return kFsOpNames[index];
}

// --- encoders
// -------------------------------------------------------------------------------------

std::vector<uint8_t> encode_payload(const Ready& payload) {
    Json j = Json::object();
    j["boot_time_ns"] = payload.boot_time_ns;
    j["init_time_ns"] = payload.init_time_ns;
    j["ready_time_ns"] = payload.ready_time_ns;
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const Shutdown&) { return {}; }

std::vector<uint8_t> encode_payload(const ExecRequest& payload) {
    Json j = Json::object();
    j["cmd"] = payload.cmd;
    j["args"] = payload.args;
    j["env"] = payload.env;
    j["cwd"] = optional_string(payload.cwd);
    j["user"] = optional_string(payload.user);
    j["tty"] = payload.tty;
    j["rows"] = payload.rows;
    j["cols"] = payload.cols;
    Json rlimits = Json::array();
    for (const auto& limit : payload.rlimits) {
        Json l = Json::object();
        l["resource"] = limit.resource;
        l["soft"] = limit.soft;
        l["hard"] = limit.hard;
        rlimits.push_back(std::move(l));
    }
    j["rlimits"] = std::move(rlimits);
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const ExecStarted& payload) {
    Json j = Json::object();
    j["pid"] = payload.pid;
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const ExecStdin& payload) {
    return encode_data_payload(payload.data);
}
std::vector<uint8_t> encode_payload(const ExecStdout& payload) {
    return encode_data_payload(payload.data);
}
std::vector<uint8_t> encode_payload(const ExecStderr& payload) {
    return encode_data_payload(payload.data);
}
std::vector<uint8_t> encode_payload(const FsData& payload) {
    return encode_data_payload(payload.data);
}

std::vector<uint8_t> encode_payload(const ExecExited& payload) {
    Json j = Json::object();
    j["code"] = payload.code;
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const ExecResize& payload) {
    Json j = Json::object();
    j["rows"] = payload.rows;
    j["cols"] = payload.cols;
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const ExecSignal& payload) {
    Json j = Json::object();
    j["signal"] = payload.signal;
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const FsRequest& payload) {
    const FsOp& op = payload.op;
    Json content = Json::object();
    switch (op.kind) {
        case FsOpKind::Copy:
        case FsOpKind::Rename:
            content["src"] = op.src;
            content["dst"] = op.dst;
            break;
        case FsOpKind::Write:
            content["path"] = op.path;
            content["mode"] = op.mode ? Json(*op.mode) : Json(nullptr);
            break;
        default:
            content["path"] = op.path;
            break;
    }
    Json variant = Json::object();
    variant[std::string(fs_op_kind_name(op.kind))] = std::move(content);
    Json j = Json::object();
    j["op"] = std::move(variant);
    return cbor::serialize(j);
}

std::vector<uint8_t> encode_payload(const FsResponse& payload) {
    Json j = Json::object();
    j["ok"] = payload.ok;
    j["error"] = optional_string(payload.error);
    Json data(nullptr);
    if (payload.data_kind == FsResponseDataKind::Stat && !payload.entries.empty()) {
        data = Json::object();
        data["Stat"] = entry_to_json(payload.entries.front());
    } else if (payload.data_kind == FsResponseDataKind::List) {
        Json list = Json::array();
        for (const auto& entry : payload.entries) list.push_back(entry_to_json(entry));
        data = Json::object();
        data["List"] = std::move(list);
    }
    j["data"] = std::move(data);
    return cbor::serialize(j);
}

// --- decoders
// -------------------------------------------------------------------------------------

template <typename P>
Result<P> decode_payload(std::span<const uint8_t> payload) {
    const std::string_view type = message_type_name(P::kType);
    P out;
    if constexpr (kIsDataPayload<P>) {
        if (auto data = decode_data_payload_fast(payload)) {
            out.data = std::move(*data);
            return out;
        }
    }
    if constexpr (std::is_same_v<P, Shutdown>) {
        (void)payload;  // 0.4.3 sends no payload; whatever comes is ignored.
        return out;
    } else {
        auto parsed = cbor::parse(payload);
        if (!parsed.ok()) return parsed.error().with_context(fmt::format("decode {}", type));
        if (!parsed->is_object()) return Error(fmt::format("decode {}: expected a map", type));
        auto st = read(parsed.value(), out);
        if (!st.ok()) return st.error().with_context(fmt::format("decode {}", type));
        return out;
    }
}

template Result<Ready> decode_payload<Ready>(std::span<const uint8_t>);
template Result<Shutdown> decode_payload<Shutdown>(std::span<const uint8_t>);
template Result<ExecRequest> decode_payload<ExecRequest>(std::span<const uint8_t>);
template Result<ExecStarted> decode_payload<ExecStarted>(std::span<const uint8_t>);
template Result<ExecStdin> decode_payload<ExecStdin>(std::span<const uint8_t>);
template Result<ExecStdout> decode_payload<ExecStdout>(std::span<const uint8_t>);
template Result<ExecStderr> decode_payload<ExecStderr>(std::span<const uint8_t>);
template Result<ExecExited> decode_payload<ExecExited>(std::span<const uint8_t>);
template Result<ExecResize> decode_payload<ExecResize>(std::span<const uint8_t>);
template Result<ExecSignal> decode_payload<ExecSignal>(std::span<const uint8_t>);
template Result<FsRequest> decode_payload<FsRequest>(std::span<const uint8_t>);
template Result<FsData> decode_payload<FsData>(std::span<const uint8_t>);
template Result<FsResponse> decode_payload<FsResponse>(std::span<const uint8_t>);

}  // namespace msb::protocol
