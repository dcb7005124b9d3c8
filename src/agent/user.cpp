// Parsing of passwd(5)/group(5) text and user resolution; see user.h.
#include "agent/user.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "base/unique_fd.h"

namespace msb::agent {

namespace {

constexpr size_t kMaxFileBytes = 4 * 1024 * 1024;

std::vector<std::string_view> fields(std::string_view line, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        size_t end = line.find(sep, start);
        if (end == std::string_view::npos) {
            out.push_back(line.substr(start));
            return out;
        }
        out.push_back(line.substr(start, end - start));
        start = end + 1;
    }
}

std::optional<uint32_t> parse_id(std::string_view text) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (value > 0xFFFFFFFEu) return std::nullopt;  // (uid_t)-1 means "no change"
    return static_cast<uint32_t>(value);
}

// Calls fn(fields) for every well-formed line with at least `min_fields` fields.
template <typename Fn>
void for_each_entry(std::string_view text, size_t min_fields, Fn&& fn) {
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (line.empty() || line[0] == '#') continue;
        auto f = fields(line, ':');
        if (f.size() < min_fields) continue;
        if (fn(f)) return;
    }
}

struct PasswdEntry {
    std::string name;
    uid_t uid;
    gid_t gid;
    std::string home;
    std::string shell;
};

std::optional<PasswdEntry> find_passwd(std::string_view passwd, std::string_view name,
                                       std::optional<uint32_t> uid) {
    std::optional<PasswdEntry> found;
    for_each_entry(passwd, 7, [&](const std::vector<std::string_view>& f) {
        auto entry_uid = parse_id(f[2]);
        auto entry_gid = parse_id(f[3]);
        if (!entry_uid || !entry_gid) return false;
        bool match = uid ? *entry_uid == *uid : f[0] == name;
        if (!match) return false;
        found = PasswdEntry{std::string(f[0]), *entry_uid, *entry_gid, std::string(f[5]),
                            std::string(f[6])};
        return true;
    });
    return found;
}

Result<std::string> read_small_file(const std::string& path) {
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) {
        if (errno == ENOENT) return std::string();
        return Error::from_errno("open " + path);
    }
    UniqueFd fd(raw);
    std::string text;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read " + path);
        }
        if (n == 0) return text;
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxFileBytes) return Error(path + ": too large");
    }
}

}  // namespace

ResolvedUser root_user() {
    ResolvedUser user;
    user.name = "root";
    user.home = "/root";
    user.groups = {0};
    return user;
}

Result<ResolvedUser> resolve_user(const UserSpec& spec, std::string_view passwd,
                                  std::string_view group) {
    ResolvedUser user;
    auto numeric_uid = parse_id(spec.user);
    auto entry = find_passwd(passwd, spec.user, numeric_uid);
    if (entry) {
        user.uid = entry->uid;
        user.gid = entry->gid;
        user.name = entry->name;
        if (!entry->home.empty()) user.home = entry->home;
        if (!entry->shell.empty()) user.shell = entry->shell;
    } else if (numeric_uid) {
        user.uid = *numeric_uid;
        user.gid = 0;
    } else {
        return Error("user \"" + spec.user + "\" not found in /etc/passwd");
    }

    if (spec.group) {
        if (auto gid = parse_id(*spec.group)) {
            user.gid = *gid;
        } else {
            std::optional<gid_t> found;
            for_each_entry(group, 3, [&](const std::vector<std::string_view>& f) {
                auto g = parse_id(f[2]);
                if (f[0] != *spec.group || !g) return false;
                found = *g;
                return true;
            });
            if (!found) return Error("group \"" + *spec.group + "\" not found in /etc/group");
            user.gid = *found;
        }
    }

    user.groups.push_back(user.gid);
    if (!user.name.empty()) {
        for_each_entry(group, 4, [&](const std::vector<std::string_view>& f) {
            auto g = parse_id(f[2]);
            if (!g) return false;
            for (std::string_view member : fields(f[3], ',')) {
                if (member == user.name &&
                    std::find(user.groups.begin(), user.groups.end(), *g) == user.groups.end())
                    user.groups.push_back(*g);
            }
            return false;
        });
    }
    return user;
}

Result<ResolvedUser> resolve_user_in_root(const UserSpec& spec, const std::string& root) {
    std::string base = root == "/" ? "" : root;
    std::string passwd = TRY(read_small_file(base + "/etc/passwd"));
    std::string group = TRY(read_small_file(base + "/etc/group"));
    return resolve_user(spec, passwd, group);
}

}  // namespace msb::agent
