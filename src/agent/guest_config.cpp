// Parsing of the MSB_* boot variables; see guest_config.h for the contract.
#include "agent/guest_config.h"

#include <arpa/inet.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace msb::agent {

namespace {

std::vector<std::string_view> split(std::string_view text, char sep, bool keep_empty) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(sep, start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view part = text.substr(start, end - start);
        if (keep_empty || !part.empty()) out.push_back(part);
        start = end + 1;
    }
    return out;
}

Result<uint64_t> parse_u64(std::string_view text, int base = 10) {
    if (text.empty()) return Error("empty number");
    uint64_t value = 0;
    for (char c : text) {
        int digit;
        if (c >= '0' && c <= '9') {
            digit = c - '0';
        } else {
            return Error("not a number: \"" + std::string(text) + "\"");
        }
        if (digit >= base) return Error("not an octal number: \"" + std::string(text) + "\"");
        if (value > (UINT64_MAX - static_cast<uint64_t>(digit)) / static_cast<uint64_t>(base))
            return Error("number out of range: \"" + std::string(text) + "\"");
        value = value * static_cast<uint64_t>(base) + static_cast<uint64_t>(digit);
    }
    return value;
}

Result<uint64_t> parse_limit_value(std::string_view text) {
    if (text == "unlimited" || text == "infinity") return static_cast<uint64_t>(RLIM_INFINITY);
    return parse_u64(text);
}

Status check_guest_path(std::string_view path, std::string_view what) {
    if (path.empty() || path[0] != '/')
        return Error(std::string(what) + " must be an absolute path: \"" + std::string(path) +
                     "\"");
    if (path.find('\0') != std::string_view::npos)
        return Error(std::string(what) + " contains a NUL byte");
    for (std::string_view component : split(path, '/', false)) {
        if (component == "..")
            return Error(std::string(what) + " must not contain \"..\": \"" + std::string(path) +
                         "\"");
    }
    return {};
}

Status check_name(std::string_view name, std::string_view what) {
    if (name.empty()) return Error(std::string(what) + " is empty");
    if (name.find('\0') != std::string_view::npos)
        return Error(std::string(what) + " contains a NUL byte");
    return {};
}

Result<Access> parse_access(std::string_view text) {
    if (text == "ro") return Access::ReadOnly;
    if (text == "rw") return Access::ReadWrite;
    return Error("expected \"ro\" or \"rw\", got \"" + std::string(text) + "\"");
}

// Splits "key=value"; a bare word yields an empty value and has_value=false.
struct KeyValue {
    std::string_view key;
    std::string_view value;
    bool has_value;
};

KeyValue split_key_value(std::string_view item) {
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return {item, {}, false};
    return {item.substr(0, eq), item.substr(eq + 1), true};
}

Status check_fstype(std::string_view fstype) {
    if (fstype.empty()) return Error("fstype is empty");
    for (char c : fstype) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.')
            return Error("invalid fstype \"" + std::string(fstype) + "\"");
    }
    return {};
}

Status check_hostname(std::string_view name) {
    if (name.empty() || name.size() > 64) return Error("hostname must be 1 to 64 characters");
    for (char c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.')
            return Error("invalid character in hostname");
    }
    return {};
}

Result<NetInterface> parse_net(std::string_view text) {
    NetInterface net;
    for (std::string_view item : split(text, ',', false)) {
        auto kv = split_key_value(item);
        if (!kv.has_value || kv.value.empty())
            return Error("expected key=value, got \"" + std::string(item) + "\"");
        if (kv.key == "iface") {
            if (kv.value.size() >= 16 || kv.value.find('/') != std::string_view::npos)
                return Error("invalid interface name \"" + std::string(kv.value) + "\"");
            net.iface = std::string(kv.value);
        } else if (kv.key == "mac") {
            auto bytes = split(kv.value, ':', true);
            bool valid = bytes.size() == 6;
            for (auto b : bytes)
                valid = valid && b.size() == 2 && std::isxdigit(static_cast<unsigned char>(b[0])) &&
                        std::isxdigit(static_cast<unsigned char>(b[1]));
            if (!valid) return Error("invalid mac \"" + std::string(kv.value) + "\"");
            net.mac = std::string(kv.value);
        } else if (kv.key == "mtu") {
            uint64_t mtu = TRY(parse_u64(kv.value));
            if (mtu < 68 || mtu > 65535) return Error("mtu out of range: " + std::to_string(mtu));
            net.mtu = static_cast<uint32_t>(mtu);
        } else {
            return Error("unknown key \"" + std::string(kv.key) + "\"");
        }
    }
    return net;
}

Result<NetAddress> parse_net_address(std::string_view text, int family) {
    NetAddress out;
    bool have_addr = false;
    unsigned max_prefix = family == AF_INET ? 32 : 128;
    auto check_ip = [family](std::string_view ip) -> Status {
        std::array<unsigned char, 16> buf{};
        std::string s(ip);
        if (::inet_pton(family, s.c_str(), buf.data()) != 1)
            return Error("invalid address \"" + s + "\"");
        return {};
    };
    for (std::string_view item : split(text, ',', false)) {
        auto kv = split_key_value(item);
        if (!kv.has_value || kv.value.empty())
            return Error("expected key=value, got \"" + std::string(item) + "\"");
        if (kv.key == "addr") {
            size_t slash = kv.value.find('/');
            if (slash == std::string_view::npos)
                return Error("addr needs a prefix length (A/N): \"" + std::string(kv.value) + "\"");
            TRY(check_ip(kv.value.substr(0, slash)));
            uint64_t prefix = TRY(parse_u64(kv.value.substr(slash + 1)));
            if (prefix > max_prefix)
                return Error("prefix length out of range: " + std::to_string(prefix));
            out.address = std::string(kv.value.substr(0, slash));
            out.prefix = static_cast<unsigned>(prefix);
            have_addr = true;
        } else if (kv.key == "gw") {
            TRY(check_ip(kv.value));
            out.gateway = std::string(kv.value);
        } else if (kv.key == "dns") {
            TRY(check_ip(kv.value));
            out.dns.emplace_back(kv.value);
        } else {
            return Error("unknown key \"" + std::string(kv.key) + "\"");
        }
    }
    if (!have_addr) return Error("addr= is required");
    return out;
}

}  // namespace

std::optional<std::string> find_env(const std::vector<std::string>& env, std::string_view name) {
    std::optional<std::string> found;
    for (const auto& entry : env) {
        if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
            entry[name.size()] == '=')
            found = entry.substr(name.size() + 1);
    }
    return found;
}

std::optional<int> rlimit_resource(std::string_view name) {
    static constexpr std::pair<std::string_view, int> kNames[] = {
        {"as", RLIMIT_AS},
        {"core", RLIMIT_CORE},
        {"cpu", RLIMIT_CPU},
        {"data", RLIMIT_DATA},
        {"fsize", RLIMIT_FSIZE},
        {"locks", RLIMIT_LOCKS},
        {"memlock", RLIMIT_MEMLOCK},
        {"msgqueue", RLIMIT_MSGQUEUE},
        {"nice", RLIMIT_NICE},
        {"nofile", RLIMIT_NOFILE},
        {"nproc", RLIMIT_NPROC},
        {"rss", RLIMIT_RSS},
        {"rtprio", RLIMIT_RTPRIO},
        {"rttime", RLIMIT_RTTIME},
        {"sigpending", RLIMIT_SIGPENDING},
        {"stack", RLIMIT_STACK},
    };
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view key = lower;
    if (key.rfind("rlimit_", 0) == 0) key.remove_prefix(7);
    for (const auto& [n, r] : kNames)
        if (n == key) return r;
    return std::nullopt;
}

Result<RlimitSpec> parse_rlimit(std::string_view name, uint64_t soft, uint64_t hard) {
    auto resource = rlimit_resource(name);
    if (!resource) return Error("unknown resource \"" + std::string(name) + "\"");
    if (soft > hard)
        return Error("soft limit " + std::to_string(soft) + " exceeds hard limit " +
                     std::to_string(hard) + " for " + std::string(name));
    return RlimitSpec{*resource, std::string(name), soft, hard};
}

Result<std::vector<RlimitSpec>> parse_rlimits(std::string_view text) {
    std::vector<RlimitSpec> out;
    for (std::string_view item : split(text, ';', false)) {
        auto kv = split_key_value(item);
        if (!kv.has_value)
            return Error("expected resource=soft[:hard], got \"" + std::string(item) + "\"");
        auto limits = split(kv.value, ':', true);
        if (limits.size() > 2)
            return Error("expected soft[:hard], got \"" + std::string(kv.value) + "\"");
        uint64_t soft = TRY(parse_limit_value(limits[0]));
        uint64_t hard = limits.size() == 2 ? TRY(parse_limit_value(limits[1])) : soft;
        out.push_back(TRY(parse_rlimit(kv.key, soft, hard)));
    }
    return out;
}

Result<UserSpec> parse_user_spec(std::string_view text) {
    auto parts = split(text, ':', true);
    if (parts.size() > 2) return Error("expected user[:group], got \"" + std::string(text) + "\"");
    TRY(check_name(parts[0], "user"));
    UserSpec spec{std::string(parts[0]), std::nullopt};
    if (parts.size() == 2) {
        TRY(check_name(parts[1], "group"));
        spec.group = std::string(parts[1]);
    }
    return spec;
}

Result<BlockRoot> parse_block_root(std::string_view text) {
    BlockRoot root;
    bool first = true;
    for (std::string_view item : split(text, ',', true)) {
        auto kv = split_key_value(item);
        if (first && !kv.has_value) {
            root.device = std::string(item);  // legacy form: "/dev/vda[,fstype=...]"
        } else if (!kv.has_value) {
            return Error("expected key=value, got \"" + std::string(item) + "\"");
        } else if (kv.key == "kind") {
            if (kv.value != "disk-image")
                return Error("unsupported kind \"" + std::string(kv.value) + "\"");
        } else if (kv.key == "device") {
            root.device = std::string(kv.value);
        } else if (kv.key == "fstype") {
            TRY(check_fstype(kv.value));
            root.fstype = std::string(kv.value);
        } else {
            return Error("unknown key \"" + std::string(kv.key) + "\"");
        }
        first = false;
    }
    if (root.device.rfind("/dev/", 0) != 0 || root.device.size() <= 5)
        return Error("device must be a /dev path, got \"" + root.device + "\"");
    TRY(check_guest_path(root.device, "device"));
    return root;
}

Result<std::vector<TmpfsMount>> parse_tmpfs(std::string_view text) {
    std::vector<TmpfsMount> out;
    for (std::string_view entry : split(text, ';', false)) {
        auto items = split(entry, ',', true);
        TmpfsMount mount;
        mount.path = std::string(items[0]);
        TRY(check_guest_path(mount.path, "path"));
        for (size_t i = 1; i < items.size(); ++i) {
            auto kv = split_key_value(items[i]);
            if (kv.key == "size" && kv.has_value) {
                auto parsed = parse_u64(kv.value);
                if (!parsed.ok()) return parsed.error().with_context("size");
                uint64_t size = parsed.value();
                if (size == 0) return Error("size: must be at least 1 MiB");
                mount.size_mib = size;
            } else if (kv.key == "mode" && kv.has_value) {
                auto parsed = parse_u64(kv.value, 8);
                if (!parsed.ok()) return parsed.error().with_context("mode");
                uint64_t mode = parsed.value();
                if (mode > 07777)
                    return Error("mode: out of range: \"" + std::string(kv.value) + "\"");
                mount.mode = static_cast<uint32_t>(mode);
            } else if (kv.key == "noexec" && !kv.has_value) {
                mount.noexec = true;
            } else if (kv.key == "ro" && !kv.has_value) {
                mount.access = Access::ReadOnly;
            } else {
                return Error("unknown option \"" + std::string(items[i]) + "\"");
            }
        }
        out.push_back(std::move(mount));
    }
    return out;
}

Result<std::vector<DirMount>> parse_dir_mounts(std::string_view text) {
    std::vector<DirMount> out;
    for (std::string_view entry : split(text, ';', false)) {
        auto parts = split(entry, ':', true);
        if (parts.size() < 2 || parts.size() > 3)
            return Error("expected tag:guest_path[:ro], got \"" + std::string(entry) + "\"");
        DirMount mount{std::string(parts[0]), std::string(parts[1]), Access::ReadWrite};
        TRY(check_name(mount.tag, "tag"));
        TRY(check_guest_path(mount.guest_path, "guest path"));
        if (parts.size() == 3) mount.access = TRY(parse_access(parts[2]));
        out.push_back(std::move(mount));
    }
    return out;
}

Result<std::vector<FileMount>> parse_file_mounts(std::string_view text) {
    std::vector<FileMount> out;
    for (std::string_view entry : split(text, ';', false)) {
        auto parts = split(entry, ':', true);
        if (parts.size() < 3 || parts.size() > 4)
            return Error("expected tag:filename:guest_path[:ro], got \"" + std::string(entry) +
                         "\"");
        FileMount mount{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
                        Access::ReadWrite};
        TRY(check_name(mount.tag, "tag"));
        TRY(check_name(mount.filename, "filename"));
        if (mount.filename.find('/') != std::string::npos || mount.filename == "." ||
            mount.filename == "..")
            return Error("filename must be a plain file name: \"" + mount.filename + "\"");
        TRY(check_guest_path(mount.guest_path, "guest path"));
        if (parts.size() == 4) mount.access = TRY(parse_access(parts[3]));
        out.push_back(std::move(mount));
    }
    return out;
}

Result<std::vector<DiskMount>> parse_disk_mounts(std::string_view text) {
    std::vector<DiskMount> out;
    for (std::string_view entry : split(text, ';', false)) {
        auto parts = split(entry, ':', true);
        if (parts.size() < 2 || parts.size() > 4)
            return Error("expected id:guest_path[:fstype][:ro], got \"" + std::string(entry) +
                         "\"");
        DiskMount mount{std::string(parts[0]), std::string(parts[1]), std::nullopt,
                        Access::ReadWrite};
        TRY(check_name(mount.id, "id"));
        if (mount.id.find('/') != std::string::npos)
            return Error("id must not contain '/': \"" + mount.id + "\"");
        TRY(check_guest_path(mount.guest_path, "guest path"));
        if (parts.size() >= 3) {
            if (parts.size() == 3 && (parts[2] == "ro" || parts[2] == "rw")) {
                mount.access = TRY(parse_access(parts[2]));
            } else {
                TRY(check_fstype(parts[2]));
                mount.fstype = std::string(parts[2]);
            }
        }
        if (parts.size() == 4) mount.access = TRY(parse_access(parts[3]));
        out.push_back(std::move(mount));
    }
    return out;
}

Result<GuestConfig> GuestConfig::parse(const std::vector<std::string>& env) {
    GuestConfig config;
    // Wraps a parser so that its error names the variable and the value at fault.
    auto apply = [&env](const char* name, auto&& parser) -> Status {
        auto value = find_env(env, name);
        if (!value) return {};
        Status status = parser(*value);
        if (!status.ok())
            return Error(std::string(name) + "=\"" + *value + "\": " + status.error().message());
        return {};
    };
    TRY(apply("MSB_BLOCK_ROOT", [&](const std::string& v) -> Status {
        config.block_root = TRY(parse_block_root(v));
        return {};
    }));
    TRY(apply("MSB_ROOT", [&](const std::string& v) -> Status {
        std::string_view text = v;
        if (text == "initramfs") return {};
        if (text.rfind("virtiofs", 0) != 0 || (text.size() > 8 && text[8] != ':'))
            return Error("expected \"virtiofs[:tag]\" or \"initramfs\"");
        VirtiofsRoot root;
        if (text.size() > 8) {
            root.tag = std::string(text.substr(9));
            TRY(check_name(root.tag, "tag"));
        }
        if (config.block_root) return Error("conflicts with MSB_BLOCK_ROOT");
        config.virtiofs_root = root;
        return {};
    }));
    TRY(apply("MSB_DIR_MOUNTS", [&](const std::string& v) -> Status {
        config.dir_mounts = TRY(parse_dir_mounts(v));
        return {};
    }));
    TRY(apply("MSB_FILE_MOUNTS", [&](const std::string& v) -> Status {
        config.file_mounts = TRY(parse_file_mounts(v));
        return {};
    }));
    TRY(apply("MSB_DISK_MOUNTS", [&](const std::string& v) -> Status {
        config.disk_mounts = TRY(parse_disk_mounts(v));
        return {};
    }));
    TRY(apply("MSB_TMPFS", [&](const std::string& v) -> Status {
        config.tmpfs = TRY(parse_tmpfs(v));
        return {};
    }));
    TRY(apply("MSB_HOSTNAME", [&](const std::string& v) -> Status {
        TRY(check_hostname(v));
        config.hostname = v;
        return {};
    }));
    TRY(apply("MSB_USER", [&](const std::string& v) -> Status {
        config.user = TRY(parse_user_spec(v));
        return {};
    }));
    TRY(apply("MSB_RLIMITS", [&](const std::string& v) -> Status {
        config.rlimits = TRY(parse_rlimits(v));
        return {};
    }));
    TRY(apply("MSB_HEARTBEAT_REFRESH", [&](const std::string& v) -> Status {
        uint64_t seconds = TRY(parse_u64(v));
        if (seconds < 1 || seconds > 3600) return Error("expected 1 to 3600 seconds");
        config.heartbeat_refresh_s = static_cast<uint32_t>(seconds);
        return {};
    }));
    TRY(apply("MSB_NET", [&](const std::string& v) -> Status {
        config.net = TRY(parse_net(v));
        return {};
    }));
    TRY(apply("MSB_NET_IPV4", [&](const std::string& v) -> Status {
        config.ipv4 = TRY(parse_net_address(v, AF_INET));
        return {};
    }));
    TRY(apply("MSB_NET_IPV6", [&](const std::string& v) -> Status {
        config.ipv6 = TRY(parse_net_address(v, AF_INET6));
        return {};
    }));
    return config;
}

}  // namespace msb::agent
