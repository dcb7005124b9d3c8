// Framing and envelope of the agent protocol (docs: /work/shared/design/PROTOCOL.md), byte for
// byte compatible with microsandbox 0.4.3's `microsandbox-protocol` codec.
//
//   offset 0  u32 BE len    bytes that follow the length field (id + flags + body), 5..4 MiB
//   offset 4  u32 BE id     correlation (session) id
//   offset 8  u8     flags  TERMINAL | SESSION_START | SHUTDOWN, derived from the type
//   offset 9  CBOR body     map {"v": 1, "t": "<type>", "p": <byte string: CBOR payload>}
//
// Three levels of use:
//   - the relay forwards frames without decoding bodies: `FrameDecoder` + `RawFrame::header`;
//   - endpoints (agent, SDK) turn a RawFrame into a `Message` (`decode_message`) and its payload
//     into a struct (`decode_payload<ExecRequest>(msg.payload)`, see messages.h);
//   - senders build a whole frame in one call: `encode_message(id, ExecExited{.code = 0})`.
//
//   FrameDecoder decoder;
//   Status st = decoder.feed(bytes_from_socket, [&](RawFrame&& frame) { ... });
//   if (!st.ok()) { /* corrupt stream: drop the connection (or decoder.reset()) */ }
//
// Nothing here throws; every malformed input is an Error naming what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace msb::protocol {

// Protocol version carried in the envelope's "v".
inline constexpr uint8_t kProtocolVersion = 1;
// Upper bound of the length field: everything after the 4-byte length prefix.
inline constexpr uint32_t kMaxFrameSize = 4 * 1024 * 1024;
// Size of the big-endian length prefix.
inline constexpr size_t kLengthPrefixSize = 4;
// id (4) + flags (1): the smallest legal value of the length field.
inline constexpr size_t kFrameHeaderSize = 5;
// Bytes before the CBOR body: length + id + flags.
inline constexpr size_t kFramePrefixSize = kLengthPrefixSize + kFrameHeaderSize;

// Frame flag bits (byte 8).
inline constexpr uint8_t kFlagTerminal = 0x01;      // last frame of a session
inline constexpr uint8_t kFlagSessionStart = 0x02;  // first frame of a new session
inline constexpr uint8_t kFlagShutdown = 0x04;      // asks the sandbox to shut down

enum class MessageType : uint8_t {
    Ready,        // core.ready
    Shutdown,     // core.shutdown
    ExecRequest,  // core.exec.request
    ExecStarted,  // core.exec.started
    ExecStdin,    // core.exec.stdin
    ExecStdout,   // core.exec.stdout
    ExecStderr,   // core.exec.stderr
    ExecExited,   // core.exec.exited
    ExecResize,   // core.exec.resize
    ExecSignal,   // core.exec.signal
    FsRequest,    // core.fs.request
    FsResponse,   // core.fs.response
    FsData,       // core.fs.data
};

// "core.exec.request" etc.
std::string_view message_type_name(MessageType type);
// Inverse of message_type_name; nullopt for a name this version does not know.
std::optional<MessageType> message_type_from_name(std::string_view name);
// exited/fs.response → TERMINAL, exec.request/fs.request → SESSION_START, shutdown → SHUTDOWN.
uint8_t flags_for_type(MessageType type);

// The fixed 9-byte prefix of a frame.
struct FrameHeader {
    uint32_t len = 0;  // bytes after the length field; kFrameHeaderSize ≤ len ≤ kMaxFrameSize
    uint32_t id = 0;
    uint8_t flags = 0;

    // Size of the whole frame including the length prefix.
    size_t frame_size() const { return kLengthPrefixSize + len; }
    size_t body_size() const { return len - kFrameHeaderSize; }
};

// Checks a length field value: an Error ("frame length N exceeds maximum 4194304" /
// "frame length N is shorter than the 5-byte header") unless 5 ≤ len ≤ 4 MiB.
Status check_frame_length(uint32_t len);

// Parses the header at the start of `bytes` without looking at the body (for the relay).
// Returns nullopt when fewer than 9 bytes are available, an Error as soon as the length
// field (first 4 bytes) is out of bounds. The frame is complete once
// bytes.size() >= header.frame_size().
Result<std::optional<FrameHeader>> parse_frame_header(std::span<const uint8_t> bytes);

// One complete frame, as received: the header and the exact bytes (prefix + body).
struct RawFrame {
    FrameHeader header;
    std::vector<uint8_t> bytes;  // size() == header.frame_size()

    // The CBOR body (after the 9-byte prefix).
    std::span<const uint8_t> body() const {
        return std::span<const uint8_t>(bytes).subspan(kFramePrefixSize);
    }
};

// Incremental splitter of a byte stream into frames. It validates the length field before
// buffering anything of the frame's body, and never buffers more than one frame
// (≤ 4 MiB + 4 bytes). After an error the decoder stays failed (every call returns the same
// error) until reset(); a stream that cannot be resynchronised should be dropped.
// Not thread-safe; one decoder per stream.
class FrameDecoder {
public:
    FrameDecoder() = default;
    FrameDecoder(FrameDecoder&&) = default;
    FrameDecoder& operator=(FrameDecoder&&) = default;
    FrameDecoder(const FrameDecoder&) = delete;
    FrameDecoder& operator=(const FrameDecoder&) = delete;

    // Consumes bytes from the front of `input` up to the end of the current frame and returns
    // how many it took (0 while a completed frame waits to be popped). Low-level form of feed().
    Result<size_t> consume(std::span<const uint8_t> input);
    // The completed frame, if any; afterwards the decoder starts on the next frame.
    std::optional<RawFrame> pop();

    // Consumes all of `input`, calling `on_frame` for every frame completed, in order.
    // Stops at the first corrupt length and returns its error (frames before it were
    // delivered).
    Status feed(std::span<const uint8_t> input, const std::function<void(RawFrame&&)>& on_frame);

    // Discards buffered bytes and any error: the next byte is read as a length field.
    void reset();

    // Bytes of the incomplete (or unpopped) frame currently held.
    size_t buffered() const { return m_buffer.size(); }
    bool failed() const { return m_error.has_value(); }

private:
    std::vector<uint8_t> m_buffer;
    std::optional<FrameHeader> m_header;  // set once the 9-byte prefix is in
    std::optional<Error> m_error;
};

// A decoded envelope. `payload` is the CBOR encoding of the type's payload struct.
struct Message {
    uint8_t version = kProtocolVersion;
    MessageType type = MessageType::Ready;
    uint32_t id = 0;
    uint8_t flags = 0;
    std::vector<uint8_t> payload;
};

// Builds a Message with flags derived from the type.
Message make_message(MessageType type, uint32_t id, std::vector<uint8_t> payload);

// The CBOR body {"v","t","p"} of `message` (in this key order, as 0.4.3 writes it).
std::vector<uint8_t> encode_envelope(const Message& message);
// Parses a CBOR body; id/flags are left 0 (they live in the frame header). Errors for
// malformed CBOR, missing/mistyped "v"/"t"/"p", or an unknown type name
// ("unknown message type: core.foo"). Unknown extra keys are ignored.
Result<Message> decode_envelope(std::span<const uint8_t> body);

// The whole frame (prefix + envelope) for `message`, using message.id and message.flags.
// Error if it would exceed kMaxFrameSize.
Result<std::vector<uint8_t>> encode_frame(const Message& message);
// Decodes a complete frame (as popped from FrameDecoder, or as bytes starting at a length
// prefix and holding exactly one frame). id and flags come from the frame header.
Result<Message> decode_message(const RawFrame& frame);
Result<Message> decode_frame(std::span<const uint8_t> frame_bytes);

}  // namespace msb::protocol
