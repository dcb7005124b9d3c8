// Hidden developer commands of `msb` that drive the VMM directly:
//   msb kernel-path     where the guest kernel for this build is cached
//   msb vmm-run ...     boot a kernel + initramfs, stream the serial console, exit with its status
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace msb::cli {

// ${MSB_CACHE:-~/.cache/msb}/kernel/<MSB_KERNEL_KEY>/vmlinux
std::string cached_kernel_path();

// Adds the hidden subcommands to `app`. Their callbacks run when parsed and do not return
// (vmm-run ends the process with the guest's status).
void add_vmm_commands(CLI::App& app);

}  // namespace msb::cli
