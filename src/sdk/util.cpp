#include "sdk/util.h"

#include <signal.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

namespace msb::sdk {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Leading decimal number and the rest.
Result<std::pair<uint64_t, std::string>> split_number(std::string_view text,
                                                      std::string_view what) {
    size_t i = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) i++;
    if (i == 0) return Error("invalid " + std::string(what) + " '" + std::string(text) + "'");
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
    if (ec != std::errc() || ptr != text.data() + i)
        return Error("invalid " + std::string(what) + " '" + std::string(text) + "': too large");
    return std::make_pair(value, lower(text.substr(i)));
}

Result<uint64_t> scale(uint64_t value, uint64_t factor, std::string_view text,
                       std::string_view what) {
    if (factor != 0 && value > UINT64_MAX / factor)
        return Error("invalid " + std::string(what) + " '" + std::string(text) + "': too large");
    return value * factor;
}

Result<uint64_t> size_with_default_unit(std::string_view text, uint64_t bare_factor,
                                        std::string_view what) {
    auto [value, suffix] = TRY(split_number(text, what));
    uint64_t factor = 0;
    if (suffix.empty())
        factor = bare_factor;
    else if (suffix == "b")
        factor = 1;
    else if (suffix == "k" || suffix == "kb" || suffix == "kib")
        factor = 1ull << 10;
    else if (suffix == "m" || suffix == "mb" || suffix == "mib")
        factor = 1ull << 20;
    else if (suffix == "g" || suffix == "gb" || suffix == "gib")
        factor = 1ull << 30;
    else if (suffix == "t" || suffix == "tb" || suffix == "tib")
        factor = 1ull << 40;
    else
        return Error("invalid " + std::string(what) + " '" + std::string(text) +
                     "': use a number with K, M or G (e.g. 512M, 1G)");
    return scale(value, factor, text, what);
}

std::vector<std::string> split(std::string_view text, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    while (true) {
        size_t pos = text.find(sep, start);
        out.emplace_back(text.substr(
            start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    return out;
}

}  // namespace

Status validate_name(std::string_view name) {
    if (name.empty()) return Error("invalid sandbox name '': it must not be empty");
    if (name.size() > 63)
        return Error("invalid sandbox name '" + std::string(name) + "': at most 63 characters");
    auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    auto ok_rest = [&](char c) { return ok_first(c) || c == '_' || c == '.' || c == '-'; };
    if (!ok_first(name[0]) || !std::all_of(name.begin() + 1, name.end(), ok_rest))
        return Error(
            "invalid sandbox name '" + std::string(name) +
            "': use lower-case letters, digits, '_', '.', '-', starting with a letter or digit");
    return {};
}

Result<uint64_t> parse_size_bytes(std::string_view text) {
    return size_with_default_unit(text, 1, "size");
}

Result<uint32_t> parse_memory_mib(std::string_view text) {
    uint64_t bytes = TRY(size_with_default_unit(text, 1ull << 20, "memory size"));
    uint64_t mib = bytes >> 20;
    if (mib == 0) return Error("invalid memory size '" + std::string(text) + "': at least 1M");
    if (mib > (1u << 20))
        return Error("invalid memory size '" + std::string(text) + "': at most 1T");
    return static_cast<uint32_t>(mib);
}

Result<std::chrono::milliseconds> parse_duration_ms(std::string_view text) {
    auto [value, suffix] = TRY(split_number(text, "duration"));
    uint64_t factor = 0;
    if (suffix.empty() || suffix == "s")
        factor = 1000;
    else if (suffix == "ms")
        factor = 1;
    else if (suffix == "m")
        factor = 60'000;
    else if (suffix == "h")
        factor = 3'600'000;
    else if (suffix == "d")
        factor = 86'400'000;
    else
        return Error("invalid duration '" + std::string(text) + "': use e.g. 30s, 5m, 1h");
    uint64_t ms = TRY(scale(value, factor, text, "duration"));
    if (ms > (uint64_t{1} << 52))
        return Error("invalid duration '" + std::string(text) + "': too large");
    return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<uint64_t> parse_duration_secs(std::string_view text) {
    auto ms = TRY(parse_duration_ms(text));
    return static_cast<uint64_t>((ms.count() + 999) / 1000);
}

Result<VolumeSpec> parse_volume(std::string_view text) {
    auto parts = split(text, ':');
    auto bad = [&](std::string_view why) {
        return Error("invalid volume '" + std::string(text) + "': " + std::string(why) +
                     " (expected HOST:GUEST[:ro])");
    };
    if (parts.size() < 2 || parts.size() > 3) return bad("wrong number of fields");
    VolumeSpec spec{parts[0], parts[1], Access::ReadWrite};
    if (spec.host.empty() || spec.guest.empty()) return bad("empty path");
    if (spec.guest[0] != '/') return bad("the guest path must be absolute");
    if (parts.size() == 3) {
        if (parts[2] == "ro")
            spec.access = Access::ReadOnly;
        else if (parts[2] != "rw")
            return bad("unknown mode '" + parts[2] + "'");
    }
    return spec;
}

Result<DiskImageSpec> parse_disk(std::string_view text) {
    auto parts = split(text, ':');
    auto bad = [&](std::string_view why) {
        return Error("invalid disk '" + std::string(text) + "': " + std::string(why) +
                     " (expected PATH[:FORMAT][:ro])");
    };
    if (parts.empty() || parts.size() > 3 || parts[0].empty()) return bad("missing path");
    DiskImageSpec spec{parts[0], "raw", Access::ReadWrite};
    for (size_t i = 1; i < parts.size(); i++) {
        if (parts[i] == "ro")
            spec.access = Access::ReadOnly;
        else if (parts[i] == "rw")
            spec.access = Access::ReadWrite;
        else if (i == 1 && (parts[i] == "raw" || parts[i] == "qcow2" || parts[i] == "vmdk"))
            spec.format = parts[i];
        else if (i == 1)
            return bad("unknown disk image format: " + parts[i] + "; use raw, qcow2 or vmdk");
        else
            return bad("unknown field '" + parts[i] + "'");
    }
    return spec;
}

Result<TmpfsSpec> parse_tmpfs(std::string_view text) {
    auto parts = split(text, ':');
    if (parts.size() > 2 || parts[0].empty() || parts[0][0] != '/')
        return Error("invalid tmpfs '" + std::string(text) + "': expected /PATH[:SIZE]");
    TmpfsSpec spec{parts[0], 0};
    if (parts.size() == 2) {
        auto size = size_with_default_unit(parts[1], 1ull << 20, "tmpfs size");
        if (!size.ok())
            return Error("invalid tmpfs '" + std::string(text) + "': " + size.error().message());
        spec.size_bytes = *size;
    }
    return spec;
}

Result<std::pair<std::string, std::string>> parse_env(std::string_view text) {
    size_t eq = text.find('=');
    if (eq == 0 || eq == std::string_view::npos)
        return Error("invalid environment variable '" + std::string(text) +
                     "': expected KEY=VALUE");
    return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

std::string msb_home() {
    if (const char* env = std::getenv("MSB_HOME"); env && *env) return env;
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "/root") + "/.msb";
}

std::string db_path(const std::string& home) { return home + "/msb.db"; }

std::string sandbox_dir(const std::string& home, const std::string& name) {
    return home + "/sandboxes/" + name;
}

Result<std::string> agent_socket_path(const std::string& home, const std::string& name) {
    // FNV-1a 64 of the name: short, stable, collision-free enough for names that are unique.
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : name) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    char hex[17];
    (void)std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    std::string path = home + "/run/" + hex + ".sock";
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return Error("socket path " + path + " is longer than " +
                     std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                     " bytes; set MSB_HOME to a shorter directory");
    return path;
}

bool sandbox_process_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) < 0 && errno != EPERM) return false;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return false;
    size_t close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size()) return false;
    if (line[close + 2] == 'Z' || line[close + 2] == 'X') return false;
    std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    std::string args((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    auto fields = split(args, '\0');
    return fields.size() >= 2 && fields[1] == "sandbox";
}

std::vector<std::string> tail_rotated_log(const std::string& base_path, size_t lines) {
    std::deque<std::string> out;
    std::string all = read_rotated_log(base_path);
    std::istringstream in(all);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
        if (out.size() > lines) out.pop_front();
    }
    return {out.begin(), out.end()};
}

std::string read_rotated_log(const std::string& base_path) {
    std::string all;
    for (int i = 9; i >= 0; i--) {
        std::string path = i == 0 ? base_path : base_path + "." + std::to_string(i);
        std::ifstream f(path, std::ios::binary);
        if (!f) continue;
        all.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        if (!all.empty() && all.back() != '\n') all.push_back('\n');
    }
    return all;
}

std::string random_name() {
    std::random_device rd;
    std::mt19937_64 gen((uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(::getpid()));
    char buf[16];
    (void)std::snprintf(buf, sizeof buf, "sb-%08llx",
                        static_cast<unsigned long long>(gen() & 0xffffffffu));
    return buf;
}

std::string config_to_json(const SandboxConfig& c) {
    nlohmann::json j;
    j["name"] = c.name;
    j["cpus"] = c.cpus;
    j["memory_mib"] = c.memory_mib;
    if (c.rootfs) j["rootfs"] = *c.rootfs;
    if (c.disk)
        j["disk"] = {{"path", c.disk->path},
                     {"format", c.disk->format},
                     {"read_only", c.disk->access == Access::ReadOnly}};
    j["volumes"] = nlohmann::json::array();
    for (const auto& v : c.volumes)
        j["volumes"].push_back(
            {{"host", v.host}, {"guest", v.guest}, {"read_only", v.access == Access::ReadOnly}});
    j["tmpfs"] = nlohmann::json::array();
    for (const auto& t : c.tmpfs)
        j["tmpfs"].push_back({{"path", t.path}, {"size_bytes", t.size_bytes}});
    j["env"] = nlohmann::json::array();
    for (const auto& [k, v] : c.env) j["env"].push_back(k + "=" + v);
    if (c.workdir) j["workdir"] = *c.workdir;
    if (c.user) j["user"] = *c.user;
    if (c.hostname) j["hostname"] = *c.hostname;
    j["idle_timeout_secs"] = c.idle_timeout_secs;
    j["max_duration_secs"] = c.max_duration_secs;
    if (c.kernel) j["kernel"] = *c.kernel;
    j["log_level"] = c.log_level;
    return j.dump();
}

Result<SandboxConfig> config_from_json(std::string_view text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Error("stored sandbox config is not valid JSON");
    SandboxConfig c;
    try {
        c.name = j.value("name", "");
        c.cpus = j.value("cpus", 1u);
        c.memory_mib = j.value("memory_mib", 512u);
        if (j.contains("rootfs")) c.rootfs = j["rootfs"].get<std::string>();
        if (j.contains("disk"))
            c.disk = DiskImageSpec{
                j["disk"].value("path", ""), j["disk"].value("format", "raw"),
                j["disk"].value("read_only", false) ? Access::ReadOnly : Access::ReadWrite};
        for (const auto& v : j.value("volumes", nlohmann::json::array()))
            c.volumes.push_back(
                {v.value("host", ""), v.value("guest", ""),
                 v.value("read_only", false) ? Access::ReadOnly : Access::ReadWrite});
        for (const auto& t : j.value("tmpfs", nlohmann::json::array()))
            c.tmpfs.push_back({t.value("path", ""), t.value("size_bytes", uint64_t{0})});
        for (const auto& e : j.value("env", nlohmann::json::array())) {
            auto kv = parse_env(e.get<std::string>());
            if (kv.ok()) c.env.push_back(*kv);
        }
        if (j.contains("workdir")) c.workdir = j["workdir"].get<std::string>();
        if (j.contains("user")) c.user = j["user"].get<std::string>();
        if (j.contains("hostname")) c.hostname = j["hostname"].get<std::string>();
        c.idle_timeout_secs = j.value("idle_timeout_secs", uint64_t{0});
        c.max_duration_secs = j.value("max_duration_secs", uint64_t{0});
        if (j.contains("kernel")) c.kernel = j["kernel"].get<std::string>();
        c.log_level = j.value("log_level", "info");
    } catch (const std::exception& e) {
        return Error(std::string("stored sandbox config is malformed: ") + e.what());
    }
    return c;
}

}  // namespace msb::sdk
