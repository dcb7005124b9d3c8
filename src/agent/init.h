// Init duties of the agent as the guest's PID 1: early mounts, root assembly and switch, the
// MSB_* mounts, hostname, rlimits, loopback, finding the agent port, and power-off.
//
// The boot recipe (main.cpp) calls these in order; each returns an Error naming the variable
// and value (or path) at fault, and main powers the VM off with the BootExit code of the step.
// Lookups under /sys take the sysfs root as a parameter so that tests can use a fake tree.
#pragma once

#include <string>
#include <vector>

#include "agent/guest_config.h"
#include "base/result.h"

namespace msb::agent {

// Exit statuses of the agent as PID 1 (reported to the VMM through the kernel's exit port).
// 0 is a clean core.shutdown; a main command's own status passes through unchanged.
enum BootExit : int {
    kExitBootConfig = 240,   // /.msb-boot/config.json unreadable or malformed
    kExitBadVariable = 241,  // an MSB_* variable is malformed (or MSB_USER names nobody)
    kExitMount = 242,        // a system mount, the root or an MSB_* mount failed
    kExitSwitchRoot = 243,   // moving into the new root failed
    kExitSetup = 244,        // hostname, rlimits, or the main command's environment
    kExitAgentPort = 245,    // no virtio-console port named "agent" and nothing else to do
    kExitInternal = 246,     // the agent's own event loop failed
};

// Where a block or virtio-fs root is assembled before the switch.
inline constexpr const char* kNewRootPath = "/newroot";
// Staging directory of MSB_FILE_MOUNTS shares (one per tag).
inline constexpr const char* kFileMountStaging = "/run/msb/file-mounts";

// /proc, /sys, /dev (devtmpfs), /dev/pts (newinstance, ptmxmode=0666), /dev/shm. Also points
// fds 0..2 at /dev/console when the kernel could not.
Status mount_early_filesystems();
// /run and /tmp as tmpfs in the final root (after any switch).
Status mount_run_and_tmp();

// Mounts the root named by `config` at kNewRootPath. Returns false when the root stays the
// initramfs (no MSB_BLOCK_ROOT / MSB_ROOT).
Result<bool> mount_new_root(const GuestConfig& config);
// switch_root semantics: move /dev /proc /sys into `new_root`, make it "/" with MS_MOVE +
// chroot (pivot_root cannot leave the initramfs), and stay PID 1.
Status switch_root(const std::string& new_root);

// The virtio-fs runtime share (tag msb_runtime) at /.msb. Returns false (after a log line)
// when the share does not exist; never fails the boot.
bool mount_runtime_share();

// MSB_TMPFS, MSB_DIR_MOUNTS, MSB_FILE_MOUNTS, MSB_DISK_MOUNTS in that order.
Status apply_mounts(const GuestConfig& config, const std::string& sys_root = "/sys");

// sethostname + an /etc/hosts line for it (the latter best effort on a read-only root).
Status apply_hostname(const std::string& hostname);
// setrlimit on PID 1, inherited by every process.
Status apply_rlimits(const std::vector<RlimitSpec>& rlimits);
// ioctl(SIOCSIFFLAGS) IFF_UP on "lo".
Status bring_up_loopback();
// MSB_NET / MSB_NET_IPV4: MTU, MAC, IPv4 address, default route, /etc/resolv.conf (ioctls only).
Status apply_network(const GuestConfig& config);

// "/dev/vportNpM" of the virtio-console port whose sysfs name is `name`.
Result<std::string> find_port_device(const std::string& name, const std::string& sys_root = "/sys");
// "/dev/vdX" of the virtio-blk disk whose serial is `serial`.
Result<std::string> find_disk_by_serial(const std::string& serial,
                                        const std::string& sys_root = "/sys");

// mount(2) of `device` at `target` trying `fstype` or, when absent, the usual disk
// filesystems in turn.
Status mount_probing(const std::string& device, const std::string& target,
                     const std::optional<std::string>& fstype, Access access);

// sync, unmount what can be unmounted, remount / read-only, then _exit(status): as PID 1 the
// kernel reports the status to the VMM (exit port 0x4f0) and the VM ends.
[[noreturn]] void power_off(int status);

}  // namespace msb::agent
