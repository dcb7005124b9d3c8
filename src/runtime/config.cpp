// Flag value parsers and the guest environment.
#include "runtime/config.h"

#include <algorithm>

#include "protocol/messages.h"

namespace msb::runtime {

namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (;;) {
        size_t pos = text.find(sep, start);
        parts.push_back(text.substr(start, pos - start));
        if (pos == std::string_view::npos) return parts;
        start = pos + 1;
    }
}

// Guest-visible identifiers: the virtio-fs tag (36 bytes in config space) and the virtio-blk
// serial (20 bytes) have hard limits; ':' and ';' separate fields in MSB_* variables.
Status check_identifier(std::string_view what, std::string_view text, std::string_view value,
                        size_t max) {
    if (value.empty() || value.size() > max)
        return Error("invalid " + std::string(what) + " '" + std::string(text) + "': the " +
                         (what == "mount" ? "tag" : "id") + " must be 1-" + std::to_string(max) +
                         " characters",
                     EINVAL);
    for (char c : value)
        if (c == ';' || c == ',' || c == '=' || static_cast<unsigned char>(c) < 0x21 ||
            static_cast<unsigned char>(c) > 0x7e)
            return Error("invalid " + std::string(what) + " '" + std::string(text) +
                             "': only printable characters other than ; , = are allowed",
                         EINVAL);
    return {};
}

}  // namespace

Result<MountSpec> MountSpec::parse(std::string_view text) {
    auto parts = split(text, ':');
    MountSpec spec;
    if (parts.size() == 3 && parts[2] == "ro") {
        spec.access = Access::ReadOnly;
        parts.pop_back();
    }
    if (parts.size() != 2 || parts[1].empty())
        return Error("invalid mount '" + std::string(text) + "': expected tag:host_path[:ro]",
                     EINVAL);
    TRY(check_identifier("mount", text, parts[0], 36));
    spec.tag = parts[0];
    spec.host = parts[1];
    return spec;
}

Result<DiskSpec> DiskSpec::parse(std::string_view text) {
    auto parts = split(text, ':');
    DiskSpec spec;
    if (parts.size() == 4 && parts[3] == "ro") {
        spec.access = Access::ReadOnly;
        parts.pop_back();
    }
    if (parts.size() != 3 || parts[1].empty())
        return Error("invalid disk '" + std::string(text) + "': expected id:host_path:format[:ro]",
                     EINVAL);
    TRY(check_identifier("disk", text, parts[0], 20));
    auto format = validate_disk_format(parts[2]);
    if (!format.ok())
        return std::move(format).error().with_context("invalid disk '" + std::string(text) + "'");
    spec.id = parts[0];
    spec.host = parts[1];
    spec.format = format.value();
    return spec;
}

std::vector<std::string> guest_env(const Config& config, bool pvm_host) {
    std::vector<std::string> env = config.env;
    const std::string refresh = std::string(protocol::kEnvHeartbeatRefresh) + "=";
    if (pvm_host && std::none_of(env.begin(), env.end(), [&](const std::string& entry) {
            return entry.starts_with(refresh);
        }))
        env.push_back(refresh + "30");
    if (config.rootfs_disk) append_block_root_env(env);
    if (config.rootfs_path) {
        const std::string prefix = std::string(protocol::kEnvRoot) + "=";
        bool present = false;
        for (const auto& entry : env) present = present || entry.starts_with(prefix);
        if (!present) env.push_back(prefix + "virtiofs");
    }
    prepend_scripts_path(env);
    return env;
}

}  // namespace msb::runtime
