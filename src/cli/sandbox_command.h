// The hidden `msb sandbox` subcommand: the sandbox process itself (runtime::enter), started by
// the SDK/CLI with the seed's flags. Not meant to be typed by people.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace msb::cli {

// build/guest/initramfs.cpio beside the running msb binary.
std::string default_initramfs_path();

void add_sandbox_command(CLI::App& app);

}  // namespace msb::cli
