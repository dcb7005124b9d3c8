// Frame splitting and the {"v","t","p"} envelope; see frame.h and PROTOCOL.md.
#include "protocol/frame.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "base/byte_copy.h"
#include "protocol/cbor.h"

namespace msb::protocol {

namespace {

struct TypeName {
    MessageType type;
    std::string_view name;
};

constexpr std::array<TypeName, 13> kTypeNames{{
    {MessageType::Ready, "core.ready"},
    {MessageType::Shutdown, "core.shutdown"},
    {MessageType::ExecRequest, "core.exec.request"},
    {MessageType::ExecStarted, "core.exec.started"},
    {MessageType::ExecStdin, "core.exec.stdin"},
    {MessageType::ExecStdout, "core.exec.stdout"},
    {MessageType::ExecStderr, "core.exec.stderr"},
    {MessageType::ExecExited, "core.exec.exited"},
    {MessageType::ExecResize, "core.exec.resize"},
    {MessageType::ExecSignal, "core.exec.signal"},
    {MessageType::FsRequest, "core.fs.request"},
    {MessageType::FsResponse, "core.fs.response"},
    {MessageType::FsData, "core.fs.data"},
}};

uint32_t load_be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void store_be32(uint8_t* p, uint32_t value) {
    p[0] = static_cast<uint8_t>(value >> 24);
    p[1] = static_cast<uint8_t>(value >> 16);
    p[2] = static_cast<uint8_t>(value >> 8);
    p[3] = static_cast<uint8_t>(value);
}

}  // namespace

std::string_view message_type_name(MessageType type) {
    for (const auto& entry : kTypeNames) {
        if (entry.type == type) return entry.name;
    }
    return "core.unknown";
}

std::optional<MessageType> message_type_from_name(std::string_view name) {
    for (const auto& entry : kTypeNames) {
        if (entry.name == name) return entry.type;
    }
    return std::nullopt;
}

uint8_t flags_for_type(MessageType type) {
    switch (type) {
        case MessageType::ExecExited:
        case MessageType::FsResponse:
            return kFlagTerminal;
        case MessageType::ExecRequest:
        case MessageType::FsRequest:
            return kFlagSessionStart;
        case MessageType::Shutdown:
            return kFlagShutdown;
        default:
            return 0;
    }
}

Status check_frame_length(uint32_t len) {
    if (len > kMaxFrameSize) {
        return Error(fmt::format("frame length {} exceeds maximum {}", len, kMaxFrameSize));
    }
    if (len < kFrameHeaderSize) {
        return Error(fmt::format("frame length {} is shorter than the {}-byte header", len,
                                 kFrameHeaderSize));
    }
    return {};
}

Result<std::optional<FrameHeader>> parse_frame_header(std::span<const uint8_t> bytes) {
    if (bytes.size() < kLengthPrefixSize) return std::optional<FrameHeader>();
    FrameHeader header;
    header.len = load_be32(bytes.data());
    TRY(check_frame_length(header.len));
    if (bytes.size() < kFramePrefixSize) return std::optional<FrameHeader>();
    header.id = load_be32(bytes.data() + 4);
    header.flags = bytes[8];
    return std::optional<FrameHeader>(header);
}

// --- FrameDecoder -------------------------------------------------------------------------------

Result<size_t> FrameDecoder::consume(std::span<const uint8_t> input) {
    if (m_error) return *m_error;
    size_t taken = 0;
    // The prefix first: never more than 9 bytes until the length field is validated.
    while (!m_header && taken < input.size()) {
        size_t want = kFramePrefixSize - m_buffer.size();
        if (m_buffer.size() < kLengthPrefixSize) want = kLengthPrefixSize - m_buffer.size();
        size_t n = std::min(want, input.size() - taken);
        reserve_bytes(m_buffer, kFramePrefixSize);
        append_bytes_to(m_buffer, input.subspan(taken, n));
        taken += n;
        auto header = parse_frame_header(m_buffer);
        if (!header.ok()) {
            m_error = header.error();
            return header.error();
        }
        if (header->has_value()) {
            m_header = **header;
        }
    }
    if (m_header && m_buffer.size() < m_header->frame_size()) {
        size_t n = std::min(m_header->frame_size() - m_buffer.size(), input.size() - taken);
        // Grow geometrically but never past this frame's size: a peer that announces 4 MiB and
        // sends a few bytes costs only what it sent. reserve_bytes, not reserve: in a guest on
        // the PVM host the vector's own memmove zeroed 16-byte runs of the frame (byte_copy.h).
        const size_t needed = m_buffer.size() + n;
        if (needed > m_buffer.capacity()) {
            reserve_bytes(m_buffer, std::min(m_header->frame_size(),
                                             std::max(needed, 2 * m_buffer.capacity())));
        }
        append_bytes_to(m_buffer, input.subspan(taken, n));
        taken += n;
    }
    return taken;
}

std::optional<RawFrame> FrameDecoder::pop() {
    if (!m_header || m_buffer.size() < m_header->frame_size()) return std::nullopt;
    RawFrame frame{*m_header, std::move(m_buffer)};
    m_buffer = {};
    m_header.reset();
    return frame;
}

Status FrameDecoder::feed(std::span<const uint8_t> input,
                          const std::function<void(RawFrame&&)>& on_frame) {
    while (true) {
        size_t n = TRY(consume(input));
        input = input.subspan(n);
        bool delivered = false;
        while (auto frame = pop()) {
            on_frame(std::move(*frame));
            delivered = true;
        }
        if (input.empty() || (n == 0 && !delivered)) return {};
    }
}

void FrameDecoder::reset() {
    m_buffer = {};
    m_header.reset();
    m_error.reset();
}

// --- Envelope -----------------------------------------------------------------------------------

Message make_message(MessageType type, uint32_t id, std::vector<uint8_t> payload) {
    return Message{kProtocolVersion, type, id, flags_for_type(type), std::move(payload)};
}

namespace {

// Writes {"v","t","p"} in 0.4.3's key order by hand: the payload is copied once, with memcpy.
void append_envelope(std::vector<uint8_t>& out, const Message& message) {
    using cbor::Major;
    cbor::append_head(out, Major::Map, 3);
    cbor::append_text(out, "v");
    cbor::append_head(out, Major::Unsigned, message.version);
    cbor::append_text(out, "t");
    cbor::append_text(out, message_type_name(message.type));
    cbor::append_text(out, "p");
    cbor::append_bytes(out, message.payload);
}

// Fast path for the common shape (definite map of v/t/p plus ignored extras). nullopt means
// "not that simple": the general parser then decides and reports precisely.
std::optional<Message> decode_envelope_fast(std::span<const uint8_t> body) {
    cbor::FastReader reader(body);
    auto count = reader.map_header();
    if (!count) return std::nullopt;
    std::optional<uint64_t> version;
    std::optional<std::string_view> type_name;
    std::optional<std::span<const uint8_t>> payload;
    for (uint64_t i = 0; i < *count; ++i) {
        auto key = reader.text();
        if (!key) return std::nullopt;
        if (*key == "v") {
            if (!(version = reader.unsigned_int())) return std::nullopt;
        } else if (*key == "t") {
            if (!(type_name = reader.text())) return std::nullopt;
        } else if (*key == "p") {
            if (!(payload = reader.bytes())) return std::nullopt;
        } else if (!reader.skip()) {
            return std::nullopt;
        }
    }
    if (!reader.at_end() || !version || !type_name || !payload || *version > 0xff) {
        return std::nullopt;
    }
    auto type = message_type_from_name(*type_name);
    if (!type) return std::nullopt;
    Message message;
    message.version = static_cast<uint8_t>(*version);
    message.type = *type;
    message.payload = copy_to_vector(*payload);
    return message;
}

}  // namespace

std::vector<uint8_t> encode_envelope(const Message& message) {
    std::vector<uint8_t> out;
    out.reserve(32 + message.payload.size());
    append_envelope(out, message);
    return out;
}

Result<Message> decode_envelope(std::span<const uint8_t> body) {
    if (auto fast = decode_envelope_fast(body)) return std::move(*fast);
    auto parsed = cbor::parse(body);
    if (!parsed.ok()) return parsed.error().with_context("decode envelope");
    const cbor::Json& value = parsed.value();
    if (!value.is_object()) return Error("decode envelope: expected a map");

    Message message;
    auto fail = [](const Error& e) { return e.with_context("decode envelope"); };
    if (auto st = cbor::read_unsigned(value, "v", cbor::Presence::Required, message.version); !st) {
        return fail(st.error());
    }
    std::string type_name;
    if (auto st = cbor::read_string(value, "t", cbor::Presence::Required, type_name); !st) {
        return fail(st.error());
    }
    if (auto st = cbor::read_bytes(value, "p", cbor::Presence::Required, message.payload); !st) {
        return fail(st.error());
    }
    auto type = message_type_from_name(type_name);
    if (!type) return Error(fmt::format("unknown message type: {}", type_name));
    message.type = *type;
    return message;
}

Result<std::vector<uint8_t>> encode_frame(const Message& message) {
    std::vector<uint8_t> frame(kFramePrefixSize);
    frame.reserve(kFramePrefixSize + 32 + message.payload.size());
    append_envelope(frame, message);
    const size_t len = frame.size() - kLengthPrefixSize;
    if (len > kMaxFrameSize) {
        return Error(fmt::format("encode {}: frame length {} exceeds maximum {}",
                                 message_type_name(message.type), len, kMaxFrameSize));
    }
    store_be32(frame.data(), static_cast<uint32_t>(len));
    store_be32(frame.data() + 4, message.id);
    frame[8] = message.flags;
    return frame;
}

Result<Message> decode_message(const RawFrame& frame) {
    if (frame.bytes.size() != frame.header.frame_size() || frame.bytes.size() < kFramePrefixSize) {
        return Error("decode frame: size does not match its length field");
    }
    Message message = TRY(decode_envelope(frame.body()));
    message.id = frame.header.id;
    message.flags = frame.header.flags;
    return message;
}

Result<Message> decode_frame(std::span<const uint8_t> frame_bytes) {
    auto header = TRY(parse_frame_header(frame_bytes));
    if (!header) {
        return Error(fmt::format("decode frame: truncated header ({} of {} bytes)",
                                 frame_bytes.size(), kFramePrefixSize));
    }
    if (frame_bytes.size() < header->frame_size()) {
        return Error(fmt::format("decode frame: truncated frame ({} of {} bytes)",
                                 frame_bytes.size(), header->frame_size()));
    }
    if (frame_bytes.size() > header->frame_size()) {
        return Error(fmt::format("decode frame: {} bytes after the end of the frame",
                                 frame_bytes.size() - header->frame_size()));
    }
    Message message = TRY(decode_envelope(frame_bytes.subspan(kFramePrefixSize)));
    message.id = header->id;
    message.flags = header->flags;
    return message;
}

}  // namespace msb::protocol
