// Helpers of the SDK and CLI that need no sandbox: name/size/duration/spec parsing, the
// $MSB_HOME layout, liveness of a sandbox process, and log tails across rotated files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "msb/sandbox.h"

namespace msb::sdk {

// 1–63 characters of [a-z0-9_.-], starting with [a-z0-9].
Status validate_name(std::string_view name);

// "512M", "1G", "64K", "1024" (bytes), also "MiB"/"GiB"/"KiB"/"B"; case-insensitive suffixes.
Result<uint64_t> parse_size_bytes(std::string_view text);
// Memory for -m: like parse_size_bytes, but a bare number is MiB; at least 1 MiB.
Result<uint32_t> parse_memory_mib(std::string_view text);
// "30s", "5m", "1h", "2d", "90" (seconds), "500ms" rounds up to 1 s.
Result<uint64_t> parse_duration_secs(std::string_view text);
Result<std::chrono::milliseconds> parse_duration_ms(std::string_view text);

// HOST:GUEST[:ro|:rw]; both absolute paths.
Result<VolumeSpec> parse_volume(std::string_view text);
// PATH[:FORMAT][:ro]; FORMAT raw|qcow2|vmdk (vmdk only with :ro).
Result<DiskImageSpec> parse_disk(std::string_view text);
// PATH[:SIZE]; SIZE as parse_size_bytes (bare number = MiB).
Result<TmpfsSpec> parse_tmpfs(std::string_view text);
// K=V (V may be empty, may contain '='); K non-empty.
Result<std::pair<std::string, std::string>> parse_env(std::string_view text);

// $MSB_HOME or ~/.msb.
std::string msb_home();
std::string db_path(const std::string& home);
std::string sandbox_dir(const std::string& home, const std::string& name);
// <home>/run/<16 hex of a hash of name>.sock; error if it would not fit sun_path (108 bytes).
Result<std::string> agent_socket_path(const std::string& home, const std::string& name);

// True when `pid` is alive, not a zombie, and its command line is an `msb sandbox` process.
bool sandbox_process_alive(pid_t pid);

// The last `lines` lines of base.N … base.1, base (oldest first), e.g. host.log.3 … host.log.
std::vector<std::string> tail_rotated_log(const std::string& base_path, size_t lines);
// Whole content of base.N … base in order.
std::string read_rotated_log(const std::string& base_path);

// A random name "sb-xxxxxxxx".
std::string random_name();

// Config JSON stored in the sandbox row and its inverse.
std::string config_to_json(const SandboxConfig& config);
Result<SandboxConfig> config_from_json(std::string_view json);

}  // namespace msb::sdk
