// BootConfig: the per-boot configuration the sandbox process hands to the guest agent.
//
// Channel: the sandbox process appends a small newc cpio to the base initramfs holding one file,
// kBootConfigPath, whose content is the JSON written by BootConfig::to_json():
//   {"exec_path": str|null, "exec_args": [str], "env": ["K=V", ...], "workdir": str|null}
// `env` carries the MSB_* variables of PROTOCOL.md among the ordinary ones; unlike the kernel
// command line it has no length limit. The kernel unpacks both archives into the initramfs
// before starting /init, so the agent simply reads the file.
//
//   std::string json = BootConfig{.exec_path = "/bin/sh", .env = {"MSB_HOSTNAME=box"}}.to_json();
//   // ... cpio entry ".msb-boot/config.json" with `json` as content ...
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace msb::agent {

inline constexpr const char* kBootConfigPath = "/.msb-boot/config.json";
// The same path relative to the archive root, as a cpio entry names it.
inline constexpr const char* kBootConfigCpioName = ".msb-boot/config.json";

struct BootConfig {
    std::optional<std::string> exec_path;  // main command; none = serve until core.shutdown
    std::vector<std::string> exec_args;    // argv[1..]
    std::vector<std::string> env;          // "K=V", MSB_* included
    std::optional<std::string> workdir;

    std::string to_json() const;
    // Missing fields take their defaults; wrong types are errors naming the field.
    static Result<BootConfig> from_json(std::string_view text);
    // Reads and parses `path`; a missing file yields the default (empty) configuration.
    static Result<BootConfig> load(const std::string& path = kBootConfigPath);
};

}  // namespace msb::agent
