// `msb sandbox --name … --sandbox-id … --db-path … [-- args…]` → runtime::enter().
#include "cli/sandbox_command.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/vmm_commands.h"
#include "runtime/sandbox.h"

namespace msb::cli {

std::string default_initramfs_path() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return "guest/initramfs.cpio";
    return (exe.parent_path() / "guest" / "initramfs.cpio").string();
}

void add_sandbox_command(CLI::App& app) {
    auto config = std::make_shared<runtime::Config>();
    auto mounts = std::make_shared<std::vector<std::string>>();
    auto disks = std::make_shared<std::vector<std::string>>();
    auto max_duration = std::make_shared<uint64_t>(0);
    auto idle_timeout = std::make_shared<uint64_t>(0);
    auto log_level = std::make_shared<std::string>("info");

    auto* cmd = app.add_subcommand("sandbox", "Run a sandbox process (started by msb itself)");
    cmd->group("");  // hidden
    cmd->add_option("--name", config->sandbox_name, "Sandbox name")->required();
    cmd->add_option("--sandbox-id", config->sandbox_id, "Sandbox row id in the store")->required();
    cmd->add_option("--db-path", config->db_path, "SQLite store")->required();
    cmd->add_option("--db-connect-timeout-secs", config->db_connect_timeout_secs);
    cmd->add_option("--log-dir", config->log_dir, "Directory for host.log and guest.log")
        ->required();
    cmd->add_option("--runtime-dir", config->runtime_dir, "Directory shared as /.msb")->required();
    cmd->add_option("--agent-sock", config->agent_sock, "Unix socket for clients")->required();
    cmd->add_flag("--forward", config->forward_output, "Also copy the host log to stderr");
    cmd->add_option("--max-duration", *max_duration, "Seconds before the sandbox is stopped");
    cmd->add_option("--idle-timeout", *idle_timeout, "Seconds of inactivity before it is stopped");
    cmd->add_option("--ready-timeout", config->ready_timeout_secs,
                    "Seconds to wait for core.ready");
    cmd->add_option("--sandbox-log-level", *log_level, "host.log verbosity");
    cmd->add_option("--kernel", config->kernel, "Guest kernel (default: the cached build)");
    cmd->add_option("--initramfs", config->initramfs, "Base initramfs (default: beside msb)");
    cmd->add_option("--vcpus", config->vcpus);
    cmd->add_option("--memory-mib", config->memory_mib);
    cmd->add_option("--rootfs-path", config->rootfs_path);
    cmd->add_option("--rootfs-disk", config->rootfs_disk);
    cmd->add_option("--rootfs-disk-format", config->rootfs_disk_format);
    cmd->add_flag("--rootfs-disk-readonly", config->rootfs_disk_readonly);
    cmd->add_option("--mount", *mounts, "tag:host_path[:ro]");
    cmd->add_option("--disk", *disks, "id:host_path:format[:ro]");
    cmd->add_option("--init-path", config->init_path);
    cmd->add_option("--env", config->env, "KEY=VALUE for the guest");
    cmd->add_option("--workdir", config->workdir);
    cmd->add_option("--exec-path", config->exec_path, "Main command of the sandbox");
    cmd->add_option("args", config->exec_args, "Arguments of the main command (after --)");

    cmd->callback([=] {
        auto fail = [](const std::string& message) {
            std::cerr << "msb sandbox: " << message << "\n";
            std::exit(2);
        };
        for (const auto& m : *mounts) {
            auto spec = runtime::MountSpec::parse(m);
            if (!spec.ok()) fail(spec.error().message());
            config->mounts.push_back(std::move(spec).value());
        }
        for (const auto& d : *disks) {
            auto spec = runtime::DiskSpec::parse(d);
            if (!spec.ok()) fail(spec.error().message());
            config->disks.push_back(std::move(spec).value());
        }
        if (config->rootfs_disk_format) {
            auto format = runtime::validate_disk_format(*config->rootfs_disk_format);
            if (!format.ok()) fail(format.error().message());
        }
        auto level = log::parse_level(*log_level);
        if (!level) fail("unknown log level '" + *log_level + "'");
        config->log_level = *level;
        if (*max_duration) config->policy.max_duration_secs = *max_duration;
        if (*idle_timeout) config->policy.idle_timeout_secs = *idle_timeout;
        if (config->kernel.empty()) config->kernel = cached_kernel_path();
        if (config->initramfs.empty()) config->initramfs = default_initramfs_path();
        runtime::enter(std::move(*config));
    });
}

}  // namespace msb::cli
