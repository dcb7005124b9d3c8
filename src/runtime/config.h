// Config: everything the sandbox process (`msb sandbox`, runtime::enter) needs, as the seed's
// Config + VmConfig, plus the parsers for the `--mount` and `--disk` flag values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "base/result.h"
#include "runtime/policy.h"

namespace msb::runtime {

enum class Access { ReadWrite, ReadOnly };

// `tag:host_path[:ro]` — a host directory shared with the guest over virtio-fs.
struct MountSpec {
    std::string tag;
    std::string host;
    Access access = Access::ReadWrite;

    // Errors: "invalid mount 'x': expected tag:host_path[:ro]" and friends.
    static Result<MountSpec> parse(std::string_view text);
};

// `id:host_path:format[:ro]` — a disk image attached as a virtio-blk device whose serial is id.
struct DiskSpec {
    std::string id;
    std::string host;
    DiskFormat format = DiskFormat::Raw;
    Access access = Access::ReadWrite;

    static Result<DiskSpec> parse(std::string_view text);
};

struct Config {
    // Sandbox identity and state.
    std::string sandbox_name;
    int64_t sandbox_id = 0;
    log::Level log_level = log::Level::Info;
    std::string db_path;
    uint64_t db_connect_timeout_secs = 5;
    std::string log_dir;
    std::string runtime_dir;
    std::string agent_sock;
    bool forward_output = false;
    SandboxPolicy policy;
    uint64_t ready_timeout_secs = 300;
    // Grace for the guest to power off after core.shutdown before the VM is stopped.
    uint64_t shutdown_grace_secs = 10;

    // VM.
    std::string kernel;
    std::string initramfs;
    uint32_t vcpus = 1;
    uint32_t memory_mib = 256;
    std::optional<std::string> rootfs_path;
    std::optional<std::string> rootfs_disk;
    std::optional<std::string> rootfs_disk_format;
    bool rootfs_disk_readonly = false;
    std::vector<MountSpec> mounts;
    std::vector<DiskSpec> disks;
    std::optional<std::string> init_path;
    std::vector<std::string> env;
    std::optional<std::string> workdir;
    std::optional<std::string> exec_path;
    std::vector<std::string> exec_args;
};

// The environment handed to the guest: `config.env`, MSB_BLOCK_ROOT for a disk root, and PATH
// with /.msb/scripts first (the seed's build_vm order). On a PVM host, MSB_HEARTBEAT_REFRESH=30
// unless the caller set it: there each heartbeat write is a few emulated virtio-fs round trips
// and one a second kept an idle guest's vCPU busy (docs/agent.md).
std::vector<std::string> guest_env(const Config& config, bool pvm_host = false);

}  // namespace msb::runtime
