// Kernel command line.
#include "loader/cmdline.h"

#include <fmt/format.h>

namespace msb::loader {

Status CommandLine::append(std::string_view part) {
    if (part.find('\0') != std::string_view::npos)
        return Error("kernel command line part contains a NUL byte");
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.empty()) return {};
    if (!m_line.empty()) m_line += ' ';
    m_line += part;
    return {};
}

Status CommandLine::check_limit(uint32_t limit) const {
    if (m_line.size() > limit)
        return Error(
            fmt::format("kernel command line is {} bytes; the limit is {}", m_line.size(), limit));
    return {};
}

Status CommandLine::write(const kvm::GuestMemory& memory, uint64_t address, uint32_t limit) const {
    TRY(check_limit(limit));
    std::string with_nul = m_line;
    with_nul.push_back('\0');
    return memory.write(address,
                        {reinterpret_cast<const uint8_t*>(with_nul.data()), with_nul.size()});
}

}  // namespace msb::loader
