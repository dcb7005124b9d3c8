// Payload types of the agent protocol and the shared constants (PROTOCOL.md), each with a CBOR
// encoding identical to microsandbox 0.4.3 (serde + ciborium): a map whose keys are the field
// names in declaration order, Option::None as null, byte buffers as CBOR byte strings, enums
// externally tagged.
//
//   // send
//   auto frame = encode_message(id, ExecExited{.code = 0});          // Result<vector<uint8_t>>
//   // receive
//   Message msg = TRY(decode_message(raw_frame));
//   if (msg.type == MessageType::ExecRequest) {
//       ExecRequest req = TRY(decode_payload<ExecRequest>(msg.payload));
//   }
//
// Decoding rules (as serde's defaults in 0.4.3): a field marked "default" may be absent and
// then takes its default; other fields are required; unknown keys are ignored; a present field
// of the wrong type or out of range (e.g. rows > 65535) is an error. Decoding never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "protocol/frame.h"

namespace msb::protocol {

// --- Constants shared by host and guest -----------------------------------------------------

// Name of the virtio-console port carrying the protocol.
inline constexpr std::string_view kAgentPortName = "agent";
// virtio-fs tag of the runtime directory, mounted in the guest at kRuntimeMountPoint.
inline constexpr std::string_view kRuntimeFsTag = "msb_runtime";
// virtio-fs tag of a directory root (MSB_ROOT=virtiofs), the name libkrun gives it too.
inline constexpr std::string_view kRootFsTag = "/dev/root";
inline constexpr std::string_view kRuntimeMountPoint = "/.msb";
inline constexpr std::string_view kFileMountsDir = "/.msb/file-mounts";
// Prepended to PATH for guest commands.
inline constexpr std::string_view kScriptsPath = "/.msb/scripts";
// Guest path of the heartbeat file the agent rewrites every second.
inline constexpr std::string_view kHeartbeatPath = "/.msb/heartbeat.json";
inline constexpr std::string_view kHeartbeatFileName = "heartbeat.json";
inline constexpr std::string_view kGuestTlsCaPath = "/.msb/tls/ca.pem";
inline constexpr std::string_view kGuestTlsHostCasPath = "/.msb/tls/host-cas.pem";
// Largest core.fs.data chunk.
inline constexpr size_t kFsChunkSize = 3 * 1024 * 1024;

// Guest configuration variables (host → agent at boot); formats in PROTOCOL.md.
inline constexpr std::string_view kEnvBlockRoot = "MSB_BLOCK_ROOT";
inline constexpr std::string_view kEnvRoot = "MSB_ROOT";  // "virtiofs[:tag]" or "initramfs"
inline constexpr std::string_view kEnvDirMounts = "MSB_DIR_MOUNTS";
inline constexpr std::string_view kEnvFileMounts = "MSB_FILE_MOUNTS";
inline constexpr std::string_view kEnvDiskMounts = "MSB_DISK_MOUNTS";
inline constexpr std::string_view kEnvTmpfs = "MSB_TMPFS";
inline constexpr std::string_view kEnvHostname = "MSB_HOSTNAME";
inline constexpr std::string_view kEnvUser = "MSB_USER";
inline constexpr std::string_view kEnvRlimits = "MSB_RLIMITS";
inline constexpr std::string_view kEnvNet = "MSB_NET";
inline constexpr std::string_view kEnvNetIpv4 = "MSB_NET_IPV4";
inline constexpr std::string_view kEnvNetIpv6 = "MSB_NET_IPV6";
inline constexpr std::string_view kEnvHostAlias = "MSB_HOST_ALIAS";
// msb's own addition: seconds between rewrites of an unchanged heartbeat.json (1–3600; default 1,
// the protocol's "every second"). Changes are written on the next 1 s tick regardless.
inline constexpr std::string_view kEnvHeartbeatRefresh = "MSB_HEARTBEAT_REFRESH";

// --- Payloads (field order = wire order) ----------------------------------------------------

// core.ready (guest → host).
struct Ready {
    static constexpr MessageType kType = MessageType::Ready;
    uint64_t boot_time_ns = 0;   // CLOCK_BOOTTIME at agent start
    uint64_t init_time_ns = 0;   // time spent in init (mounts)
    uint64_t ready_time_ns = 0;  // CLOCK_BOOTTIME when sent
};

// core.shutdown (host → guest). Encoded as an empty payload (0 bytes), as 0.4.3 sends it;
// any payload is accepted when decoding.
struct Shutdown {
    static constexpr MessageType kType = MessageType::Shutdown;
};

struct ExecRlimit {
    std::string resource{};  // lower-case: "nofile", "nproc", "as", ...
    uint64_t soft = 0;
    uint64_t hard = 0;
};

// core.exec.request (host → guest). Every field but `cmd` is "default".
struct ExecRequest {
    static constexpr MessageType kType = MessageType::ExecRequest;
    std::string cmd{};
    std::vector<std::string> args{};
    std::vector<std::string> env{};  // "KEY=VALUE"
    std::optional<std::string> cwd{};
    std::optional<std::string> user{};
    bool tty = false;
    uint16_t rows = 24;
    uint16_t cols = 80;
    std::vector<ExecRlimit> rlimits{};
};

// core.exec.started (guest → host).
struct ExecStarted {
    static constexpr MessageType kType = MessageType::ExecStarted;
    uint32_t pid = 0;
};

// core.exec.stdin (host → guest); empty data closes the process's stdin.
struct ExecStdin {
    static constexpr MessageType kType = MessageType::ExecStdin;
    std::vector<uint8_t> data{};
};

// core.exec.stdout (guest → host).
struct ExecStdout {
    static constexpr MessageType kType = MessageType::ExecStdout;
    std::vector<uint8_t> data{};
};

// core.exec.stderr (guest → host).
struct ExecStderr {
    static constexpr MessageType kType = MessageType::ExecStderr;
    std::vector<uint8_t> data{};
};

// core.exec.exited (guest → host); 128 + signal when killed by a signal.
struct ExecExited {
    static constexpr MessageType kType = MessageType::ExecExited;
    int32_t code = 0;
};

// core.exec.resize (host → guest).
struct ExecResize {
    static constexpr MessageType kType = MessageType::ExecResize;
    uint16_t rows = 0;
    uint16_t cols = 0;
};

// core.exec.signal (host → guest).
struct ExecSignal {
    static constexpr MessageType kType = MessageType::ExecSignal;
    int32_t signal = 0;
};

// The variant of a filesystem operation; the wire name is the enumerator's name.
enum class FsOpKind : uint8_t { Stat, List, Read, Write, Mkdir, Remove, RemoveDir, Copy, Rename };
std::string_view fs_op_kind_name(FsOpKind kind);

// One filesystem operation (externally tagged on the wire: {"Write": {"path": .., "mode": ..}}).
// Fields used per kind: Stat/List/Read/Mkdir/Remove/RemoveDir → path; Write → path, mode
// ("default", null when absent); Copy/Rename → src, dst. Unused fields are ignored.
struct FsOp {
    FsOpKind kind = FsOpKind::Stat;
    std::string path{};
    std::optional<uint32_t> mode{};
    std::string src{};
    std::string dst{};

    static FsOp stat(std::string path) { return {FsOpKind::Stat, std::move(path), {}, {}, {}}; }
    static FsOp list(std::string path) { return {FsOpKind::List, std::move(path), {}, {}, {}}; }
    static FsOp read(std::string path) { return {FsOpKind::Read, std::move(path), {}, {}, {}}; }
    static FsOp write(std::string path, std::optional<uint32_t> mode = std::nullopt) {
        return {FsOpKind::Write, std::move(path), mode, {}, {}};
    }
    static FsOp mkdir(std::string path) { return {FsOpKind::Mkdir, std::move(path), {}, {}, {}}; }
    static FsOp remove(std::string path) { return {FsOpKind::Remove, std::move(path), {}, {}, {}}; }
    static FsOp remove_dir(std::string path) {
        return {FsOpKind::RemoveDir, std::move(path), {}, {}, {}};
    }
    static FsOp copy(std::string src, std::string dst) {
        return {FsOpKind::Copy, {}, {}, std::move(src), std::move(dst)};
    }
    static FsOp rename(std::string src, std::string dst) {
        return {FsOpKind::Rename, {}, {}, std::move(src), std::move(dst)};
    }
};

// core.fs.request (host → guest).
struct FsRequest {
    static constexpr MessageType kType = MessageType::FsRequest;
    FsOp op{};
};

// core.fs.data (both directions); at most kFsChunkSize bytes, empty = end of stream.
struct FsData {
    static constexpr MessageType kType = MessageType::FsData;
    std::vector<uint8_t> data{};
};

// Metadata of one filesystem entry.
struct FsEntryInfo {
    std::string path{};
    std::string kind{};  // "file", "dir", "symlink" or "other"
    uint64_t size = 0;
    uint32_t mode = 0;
    std::optional<int64_t> modified{};  // unix seconds
};

enum class FsResponseDataKind : uint8_t { None, Stat, List };

// core.fs.response (guest → host); the terminal frame of an fs session.
// data_kind None → "data": null; Stat → {"Stat": entries[0]} (entries holds exactly one);
// List → {"List": entries}.
struct FsResponse {
    static constexpr MessageType kType = MessageType::FsResponse;
    bool ok = false;
    std::optional<std::string> error{};                       // "default"
    FsResponseDataKind data_kind = FsResponseDataKind::None;  // "default"
    std::vector<FsEntryInfo> entries{};
};

// --- Codec ------------------------------------------------------------------------------------

// CBOR encoding of a payload (empty for Shutdown).
std::vector<uint8_t> encode_payload(const Ready& payload);
std::vector<uint8_t> encode_payload(const Shutdown& payload);
std::vector<uint8_t> encode_payload(const ExecRequest& payload);
std::vector<uint8_t> encode_payload(const ExecStarted& payload);
std::vector<uint8_t> encode_payload(const ExecStdin& payload);
std::vector<uint8_t> encode_payload(const ExecStdout& payload);
std::vector<uint8_t> encode_payload(const ExecStderr& payload);
std::vector<uint8_t> encode_payload(const ExecExited& payload);
std::vector<uint8_t> encode_payload(const ExecResize& payload);
std::vector<uint8_t> encode_payload(const ExecSignal& payload);
std::vector<uint8_t> encode_payload(const FsRequest& payload);
std::vector<uint8_t> encode_payload(const FsData& payload);
std::vector<uint8_t> encode_payload(const FsResponse& payload);

// Decodes a payload of type P (one of the structs above). Defined for exactly those types.
template <typename P>
Result<P> decode_payload(std::span<const uint8_t> payload);

// A Message of P's type carrying `payload`.
template <typename P>
Message make_message(uint32_t id, const P& payload) {
    return make_message(P::kType, id, encode_payload(payload));
}

// The complete frame for `payload` with correlation id `id` (flags derived from the type).
// Error only when the frame would exceed kMaxFrameSize (e.g. data larger than a chunk).
template <typename P>
Result<std::vector<uint8_t>> encode_message(uint32_t id, const P& payload) {
    return encode_frame(make_message(id, payload));
}

extern template Result<Ready> decode_payload<Ready>(std::span<const uint8_t>);
extern template Result<Shutdown> decode_payload<Shutdown>(std::span<const uint8_t>);
extern template Result<ExecRequest> decode_payload<ExecRequest>(std::span<const uint8_t>);
extern template Result<ExecStarted> decode_payload<ExecStarted>(std::span<const uint8_t>);
extern template Result<ExecStdin> decode_payload<ExecStdin>(std::span<const uint8_t>);
extern template Result<ExecStdout> decode_payload<ExecStdout>(std::span<const uint8_t>);
extern template Result<ExecStderr> decode_payload<ExecStderr>(std::span<const uint8_t>);
extern template Result<ExecExited> decode_payload<ExecExited>(std::span<const uint8_t>);
extern template Result<ExecResize> decode_payload<ExecResize>(std::span<const uint8_t>);
extern template Result<ExecSignal> decode_payload<ExecSignal>(std::span<const uint8_t>);
extern template Result<FsRequest> decode_payload<FsRequest>(std::span<const uint8_t>);
extern template Result<FsData> decode_payload<FsData>(std::span<const uint8_t>);
extern template Result<FsResponse> decode_payload<FsResponse>(std::span<const uint8_t>);

}  // namespace msb::protocol
