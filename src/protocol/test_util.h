// Helpers shared by the protocol tests.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace msb::protocol::testing {

// Decodes `message.payload` as the struct of message.type and encodes that struct again:
// equal bytes mean every field survived (or took the same default).
inline Result<std::vector<uint8_t>> reencode_payload(const Message& message) {
    auto again = [&](auto tag) -> Result<std::vector<uint8_t>> {
        using P = decltype(tag);
        P payload = TRY(decode_payload<P>(message.payload));
        return encode_payload(payload);
    };
    switch (message.type) {
        case MessageType::Ready:
            return again(Ready{});
        case MessageType::Shutdown:
            return again(Shutdown{});
        case MessageType::ExecRequest:
            return again(ExecRequest{});
        case MessageType::ExecStarted:
            return again(ExecStarted{});
        case MessageType::ExecStdin:
            return again(ExecStdin{});
        case MessageType::ExecStdout:
            return again(ExecStdout{});
        case MessageType::ExecStderr:
            return again(ExecStderr{});
        case MessageType::ExecExited:
            return again(ExecExited{});
        case MessageType::ExecResize:
            return again(ExecResize{});
        case MessageType::ExecSignal:
            return again(ExecSignal{});
        case MessageType::FsRequest:
            return again(FsRequest{});
        case MessageType::FsResponse:
            return again(FsResponse{});
        case MessageType::FsData:
            return again(FsData{});
    }
    return Error("unknown type");
}

}  // namespace msb::protocol::testing
