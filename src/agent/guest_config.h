// GuestConfig: the MSB_* boot variables of PROTOCOL.md ("Guest configuration variables"),
// parsed and validated before init acts on any of them.
//
//   auto config = GuestConfig::parse(boot.env);      // boot.env: {"K=V", ...}
//   if (!config.ok()) fail("...", config.error());  // message names the variable and value
//
// Parsing is pure (no filesystem access) so that every malformed value is rejected before the
// first mount. A malformed value is never "repaired" into something else than asked: the whole
// configuration fails with one error naming the variable, e.g.
//   MSB_TMPFS="/tmp,size=abc": size: not a number
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace msb::agent {

enum class Access { ReadWrite, ReadOnly };

// MSB_BLOCK_ROOT: the root filesystem is on a block device.
struct BlockRoot {
    std::string device;                 // "/dev/vda"
    std::optional<std::string> fstype;  // probed when absent
};

// MSB_ROOT=virtiofs[:tag]: the root filesystem is a virtio-fs share (default tag "/dev/root").
struct VirtiofsRoot {
    std::string tag = "/dev/root";
};

// MSB_DIR_MOUNTS entry: virtio-fs share `tag` mounted at `guest_path`.
struct DirMount {
    std::string tag;
    std::string guest_path;
    Access access = Access::ReadWrite;
};

// MSB_FILE_MOUNTS entry: file `filename` of virtio-fs share `tag`, bind-mounted at `guest_path`.
struct FileMount {
    std::string tag;
    std::string filename;
    std::string guest_path;
    Access access = Access::ReadWrite;
};

// MSB_DISK_MOUNTS entry: the virtio-blk device whose serial is `id`, mounted at `guest_path`.
struct DiskMount {
    std::string id;
    std::string guest_path;
    std::optional<std::string> fstype;  // probed when absent
    Access access = Access::ReadWrite;
};

// MSB_TMPFS entry.
struct TmpfsMount {
    std::string path;
    std::optional<uint64_t> size_mib;
    bool noexec = false;
    Access access = Access::ReadWrite;
    std::optional<uint32_t> mode;  // octal on the wire
};

// One resource limit ("nofile", "nproc", ... lower-case as in PROTOCOL.md).
struct RlimitSpec {
    int resource = 0;  // RLIMIT_*
    std::string name;
    uint64_t soft = 0;
    uint64_t hard = 0;
};

// MSB_NET: the guest network interface.
struct NetInterface {
    std::string iface = "eth0";
    std::optional<std::string> mac;  // "aa:bb:cc:dd:ee:ff"
    std::optional<uint32_t> mtu;
};

// MSB_NET_IPV4 / MSB_NET_IPV6: address configuration of that interface.
struct NetAddress {
    std::string address;  // without prefix
    unsigned prefix = 0;
    std::optional<std::string> gateway;
    std::vector<std::string> dns;
};

// A user as named in MSB_USER or an exec request: "name", "uid", "name:group", "uid:gid".
// Resolution against /etc/passwd and /etc/group happens later (see user.h).
struct UserSpec {
    std::string user;
    std::optional<std::string> group;
};

struct GuestConfig {
    std::optional<BlockRoot> block_root;
    std::optional<VirtiofsRoot> virtiofs_root;
    std::vector<DirMount> dir_mounts;
    std::vector<FileMount> file_mounts;
    std::vector<DiskMount> disk_mounts;
    std::vector<TmpfsMount> tmpfs;
    std::string hostname = "msb";
    std::optional<UserSpec> user;
    std::vector<RlimitSpec> rlimits;
    std::optional<NetInterface> net;
    std::optional<NetAddress> ipv4;
    std::optional<NetAddress> ipv6;
    // MSB_HEARTBEAT_REFRESH: seconds between rewrites of an unchanged heartbeat.json.
    uint32_t heartbeat_refresh_s = 1;

    // Parses the MSB_* entries of `env` ("K=V" strings; other entries are ignored). The first
    // malformed variable fails the whole parse; the error reads `NAME="value": reason`.
    static Result<GuestConfig> parse(const std::vector<std::string>& env);
};

// Looks `name` up in a "K=V" list (the last definition wins, as with putenv).
std::optional<std::string> find_env(const std::vector<std::string>& env, std::string_view name);

// Individual parsers, exposed for exec requests (user, rlimits) and tests. Errors carry only the
// reason; GuestConfig::parse adds the variable name.
Result<UserSpec> parse_user_spec(std::string_view text);
Result<RlimitSpec> parse_rlimit(std::string_view name, uint64_t soft, uint64_t hard);
Result<std::vector<RlimitSpec>> parse_rlimits(std::string_view text);
Result<BlockRoot> parse_block_root(std::string_view text);
Result<std::vector<TmpfsMount>> parse_tmpfs(std::string_view text);
Result<std::vector<DirMount>> parse_dir_mounts(std::string_view text);
Result<std::vector<FileMount>> parse_file_mounts(std::string_view text);
Result<std::vector<DiskMount>> parse_disk_mounts(std::string_view text);

// "nofile" → RLIMIT_NOFILE; nullopt for an unknown name.
std::optional<int> rlimit_resource(std::string_view name);

}  // namespace msb::agent
