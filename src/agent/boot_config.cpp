// BootConfig JSON encoding; nlohmann-json is used through its non-throwing API only.
#include "agent/boot_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

namespace msb::agent {

namespace {

constexpr size_t kMaxConfigBytes = 16 * 1024 * 1024;

Result<std::vector<std::string>> string_array(const nlohmann::json& doc, const char* field) {
    std::vector<std::string> out;
    auto it = doc.find(field);
    if (it == doc.end() || it->is_null()) return out;
    if (!it->is_array()) return Error(std::string("boot config: ") + field + " must be an array");
    for (const auto& item : *it) {
        if (!item.is_string())
            return Error(std::string("boot config: ") + field + " must hold only strings");
        out.push_back(item.get<std::string>());
    }
    return out;
}

Result<std::optional<std::string>> optional_string(const nlohmann::json& doc, const char* field) {
    auto it = doc.find(field);
    if (it == doc.end() || it->is_null()) return std::optional<std::string>();
    if (!it->is_string())
        return Error(std::string("boot config: ") + field + " must be a string or null");
    return std::optional<std::string>(it->get<std::string>());
}

}  // namespace

std::string BootConfig::to_json() const {
    nlohmann::json doc = nlohmann::json::object();
    doc["exec_path"] = exec_path ? nlohmann::json(*exec_path) : nlohmann::json(nullptr);
    doc["exec_args"] = exec_args;
    doc["env"] = env;
    doc["workdir"] = workdir ? nlohmann::json(*workdir) : nlohmann::json(nullptr);
    // `replace` keeps invalid UTF-8 from throwing; such strings are not valid config anyway.
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<BootConfig> BootConfig::from_json(std::string_view text) {
    nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return Error("boot config: not valid JSON");
    if (!doc.is_object()) return Error("boot config: top level must be an object");
    BootConfig config;
    config.exec_path = TRY(optional_string(doc, "exec_path"));
    config.exec_args = TRY(string_array(doc, "exec_args"));
    config.env = TRY(string_array(doc, "env"));
    config.workdir = TRY(optional_string(doc, "workdir"));
    if (config.exec_path && config.exec_path->empty())
        return Error("boot config: exec_path is empty");
    return config;
}

Result<BootConfig> BootConfig::load(const std::string& path) {
    int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) {
        if (errno == ENOENT) return BootConfig{};
        return Error::from_errno("open boot config " + path);
    }
    UniqueFd fd(raw);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read boot config " + path);
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxConfigBytes) return Error("boot config " + path + ": too large");
    }
    return from_json(text);
}

}  // namespace msb::agent
