// Lifecycle policy and exit-reason mapping; see policy.h.
#include "runtime/policy.h"

#include <fmt/format.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "protocol/messages.h"

namespace msb::runtime {

namespace {

constexpr std::string_view kDefaultGuestPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace

std::string policy_to_json(const SandboxPolicy& policy) {
    nlohmann::ordered_json j;
    j["max_duration_secs"] =
        policy.max_duration_secs ? nlohmann::ordered_json(*policy.max_duration_secs) : nullptr;
    j["idle_timeout_secs"] =
        policy.idle_timeout_secs ? nlohmann::ordered_json(*policy.idle_timeout_secs) : nullptr;
    return j.dump();
}

Result<SandboxPolicy> parse_policy_json(std::string_view json) {
    auto j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Error("sandbox policy: not a JSON object");
    SandboxPolicy policy;
    for (auto [key, out] : {std::pair{"max_duration_secs", &policy.max_duration_secs},
                            std::pair{"idle_timeout_secs", &policy.idle_timeout_secs}}) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) continue;
        if (!it->is_number_unsigned()) {
            return Error(fmt::format("sandbox policy: '{}' must be a non-negative integer", key));
        }
        *out = it->get<uint64_t>();
    }
    return policy;
}

store::TerminationReason termination_reason_for(int exit_code, ExitTrigger trigger) {
    using store::TerminationReason;
    switch (trigger) {
        case ExitTrigger::IdleTimeout:
            return TerminationReason::IdleTimeout;
        case ExitTrigger::MaxDuration:
            return TerminationReason::MaxDurationExceeded;
        case ExitTrigger::Signal:
            return TerminationReason::Signal;
        case ExitTrigger::Drain:
            return TerminationReason::DrainRequested;
        case ExitTrigger::InternalError:
            return TerminationReason::InternalError;
        case ExitTrigger::None:
            break;
    }
    return exit_code == 0 ? TerminationReason::Completed : TerminationReason::Failed;
}

bool ExitTriggerSlot::record(ExitTrigger trigger) {
    uint8_t expected = static_cast<uint8_t>(ExitTrigger::None);
    return m_value.compare_exchange_strong(expected, static_cast<uint8_t>(trigger),
                                           std::memory_order_acq_rel);
}

ExitTrigger ExitTriggerSlot::trigger() const {
    return static_cast<ExitTrigger>(m_value.load(std::memory_order_acquire));
}

Result<DiskFormat> validate_disk_format(std::optional<std::string_view> format) {
    const std::string_view name = format.value_or("raw");
    if (name == "qcow2") return DiskFormat::Qcow2;
    if (name == "raw") return DiskFormat::Raw;
    if (name == "vmdk") return DiskFormat::Vmdk;
    return Error(fmt::format("unknown disk image format: {}", name), EINVAL);
}

std::string_view disk_format_name(DiskFormat format) {
    switch (format) {
        case DiskFormat::Qcow2:
            return "qcow2";
        case DiskFormat::Vmdk:
            return "vmdk";
        case DiskFormat::Raw:
            break;
    }
    return "raw";
}

void append_block_root_env(std::vector<std::string>& env) {
    const std::string prefix = std::string(protocol::kEnvBlockRoot) + "=";
    for (const auto& entry : env) {
        if (entry.starts_with(prefix)) return;
    }
    env.push_back(prefix + "/dev/vda");
}

void prepend_scripts_path(std::vector<std::string>& env) {
    constexpr std::string_view kPrefix = "PATH=";
    const std::string_view scripts = protocol::kScriptsPath;
    for (auto& entry : env) {
        if (!entry.starts_with(kPrefix)) continue;
        std::string_view existing = std::string_view(entry).substr(kPrefix.size());
        size_t start = 0;
        while (start <= existing.size()) {
            size_t end = existing.find(':', start);
            if (end == std::string_view::npos) end = existing.size();
            if (existing.substr(start, end - start) == scripts) return;
            start = end + 1;
        }
        entry = fmt::format("{}{}:{}", kPrefix, scripts, existing);
        return;
    }
    env.push_back(fmt::format("{}{}:{}", kPrefix, scripts, kDefaultGuestPath));
}

}  // namespace msb::runtime
