// libFuzzer target for everything in msb_protocol that reads peer bytes: the stream splitter
// (fed in chunks whose sizes come from the input), envelope decoding, every payload decoder,
// and the heartbeat JSON parser. Any crash, sanitizer report or exception is a bug.
//   see CMakeLists.txt for the build line; run: protocol_frame_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/heartbeat.h"
#include "protocol/messages.h"

namespace {

using namespace msb::protocol;

void decode_any_payload(MessageType type, std::span<const uint8_t> p) {
    switch (type) {
        case MessageType::Ready:
            (void)decode_payload<Ready>(p);
            break;
        case MessageType::Shutdown:
            (void)decode_payload<Shutdown>(p);
            break;
        case MessageType::ExecRequest:
            (void)decode_payload<ExecRequest>(p);
            break;
        case MessageType::ExecStarted:
            (void)decode_payload<ExecStarted>(p);
            break;
        case MessageType::ExecStdin:
            (void)decode_payload<ExecStdin>(p);
            break;
        case MessageType::ExecStdout:
            (void)decode_payload<ExecStdout>(p);
            break;
        case MessageType::ExecStderr:
            (void)decode_payload<ExecStderr>(p);
            break;
        case MessageType::ExecExited:
            (void)decode_payload<ExecExited>(p);
            break;
        case MessageType::ExecResize:
            (void)decode_payload<ExecResize>(p);
            break;
        case MessageType::ExecSignal:
            (void)decode_payload<ExecSignal>(p);
            break;
        case MessageType::FsRequest: {
            // Decoded requests must re-encode and decode to the same kind.
            auto r = decode_payload<FsRequest>(p);
            if (r.ok()) {
                auto again = decode_payload<FsRequest>(encode_payload(r.value()));
                if (!again.ok() || again->op.kind != r->op.kind) __builtin_trap();
            }
            break;
        }
        case MessageType::FsResponse:
            (void)decode_payload<FsResponse>(p);
            break;
        case MessageType::FsData:
            (void)decode_payload<FsData>(p);
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const uint8_t> input(data, size);

    // 1. As a stream: chunk sizes derived from the first byte.
    FrameDecoder decoder;
    const size_t chunk = size > 0 ? (data[0] % 17) + 1 : 1;
    for (size_t pos = 0; pos < size; pos += chunk) {
        auto piece = input.subspan(pos, std::min(chunk, size - pos));
        auto st = decoder.feed(piece, [](RawFrame&& frame) {
            if (frame.bytes.size() != frame.header.frame_size()) __builtin_trap();
            auto message = decode_message(frame);
            if (message.ok()) decode_any_payload(message->type, message->payload);
        });
        if (!st.ok()) break;
        if (decoder.buffered() > kLengthPrefixSize + kMaxFrameSize) __builtin_trap();
    }

    // 2. As a bare envelope and as every payload type.
    auto envelope = decode_envelope(input);
    if (envelope.ok()) decode_any_payload(envelope->type, envelope->payload);
    for (int t = 0; t <= static_cast<int>(MessageType::FsData); ++t) {
        decode_any_payload(static_cast<MessageType>(t), input);
    }

    // 3. As a heartbeat file.
    (void)parse_heartbeat_json(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
