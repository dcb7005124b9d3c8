// The one-shot filesystem operations of core.fs.request (Stat, List, Mkdir, Remove, RemoveDir,
// Copy, Rename). The streamed ones (Read, Write) live in the service, which owns the flow
// control; they use open_for_read/open_for_write from here.
//
// Every operation returns a protocol::FsResponse: ok=true with data, or ok=false with an error
// text "<op> <path>: <strerror>" — never a crash for any path the host sends.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "protocol/messages.h"

namespace msb::agent {

// Runs a non-streamed operation. REQUIRES: op.kind is not Read or Write.
protocol::FsResponse run_fs_op(const protocol::FsOp& op);

// Metadata of `path` (not following a final symlink).
Result<protocol::FsEntryInfo> stat_entry(const std::string& path);

// Opens a file for streaming out (Read) or in (Write: created with `mode`, default 0644,
// truncated).
Result<UniqueFd> open_for_read(const std::string& path);
Result<UniqueFd> open_for_write(const std::string& path, std::optional<uint32_t> mode);

// An FsResponse with ok=false and `error`.
protocol::FsResponse fs_error(std::string error);

}  // namespace msb::agent
