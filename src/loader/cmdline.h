// Kernel command-line assembly: parts joined by single spaces, checked against the kernel's
// limit (the bzImage header's cmdline_size, or 2047 for a vmlinux) so that an overlong line is
// a clear error instead of a silently truncated boot.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "kvm/guest_memory.h"

namespace msb::loader {

class CommandLine {
public:
    // Appends `part` (skipped when empty after trimming spaces). Fails on NUL bytes.
    Status append(std::string_view part);
    const std::string& str() const { return m_line; }
    size_t size() const { return m_line.size(); }

    // Fails with "kernel command line is N bytes; the limit is M" when too long.
    Status check_limit(uint32_t limit) const;

    // check_limit(limit) then writes the line and its NUL at `address`.
    Status write(const kvm::GuestMemory& memory, uint64_t address, uint32_t limit) const;

private:
    std::string m_line;
};

}  // namespace msb::loader
