// GuestMemory: memfd-backed guest RAM.
#include "kvm/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <string>

namespace msb::kvm {

namespace {
constexpr uint64_t kPageSize = 4096;
}

Result<GuestMemory> GuestMemory::create(const std::vector<MemoryRegion>& regions) {
    if (regions.empty()) return Error("guest memory: no regions");
    uint64_t total = 0;
    uint64_t previous_end = 0;
    for (const auto& r : regions) {
        if (r.size == 0 || r.guest_address % kPageSize || r.size % kPageSize)
            return Error("guest memory: region is empty or not page-aligned");
        if (r.guest_address < previous_end)
            return Error("guest memory: regions overlap or are unsorted");
        if (r.guest_address + r.size < r.guest_address) return Error("guest memory: region wraps");
        previous_end = r.guest_address + r.size;
        total += r.size;
    }

    int raw = ::memfd_create("msb-guest-ram", MFD_CLOEXEC);
    if (raw < 0) return Error::from_errno("memfd_create guest RAM");
    UniqueFd fd(raw);
    if (::ftruncate(fd.get(), static_cast<off_t>(total)) < 0)
        return Error::from_errno("size guest RAM to " + std::to_string(total >> 20) + " MiB");
    // MAP_NORESERVE: pages are only backed once the guest touches them.
    void* base =
        ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
    if (base == MAP_FAILED) return Error::from_errno("map guest RAM");

    std::vector<Mapping> mappings;
    uint64_t offset = 0;
    for (const auto& r : regions) {
        mappings.push_back({r.guest_address, r.size, static_cast<uint8_t*>(base) + offset, offset});
        offset += r.size;
    }
    return GuestMemory(std::move(fd), static_cast<uint8_t*>(base), total, std::move(mappings));
}

GuestMemory::GuestMemory(UniqueFd fd, uint8_t* base, uint64_t total, std::vector<Mapping> mappings)
    : m_fd(std::move(fd)), m_base(base), m_total(total), m_mappings(std::move(mappings)) {}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept
    : m_fd(std::move(other.m_fd)),
      m_base(std::exchange(other.m_base, nullptr)),
      m_total(std::exchange(other.m_total, 0)),
      m_mappings(std::move(other.m_mappings)) {}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
    if (this != &other) {
        if (m_base) ::munmap(m_base, m_total);
        m_fd = std::move(other.m_fd);
        m_base = std::exchange(other.m_base, nullptr);
        m_total = std::exchange(other.m_total, 0);
        m_mappings = std::move(other.m_mappings);
    }
    return *this;
}

GuestMemory::~GuestMemory() {
    if (m_base) ::munmap(m_base, m_total);
}

uint8_t* GuestMemory::host_address(uint64_t gpa, uint64_t len) const {
    for (const auto& m : m_mappings) {
        if (gpa < m.guest_address) continue;
        uint64_t offset = gpa - m.guest_address;
        // Written so that nothing can overflow: offset <= size, then len <= size - offset.
        if (offset > m.size || len > m.size - offset) continue;
        // Safe: [offset, offset + len) was just checked to lie inside this mapping.
        return m.host + offset;
    }
    return nullptr;
}

Status GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
    const uint8_t* p = host_address(gpa, out.size());
    if (!p) return Error("guest memory read out of bounds at " + std::to_string(gpa), EFAULT);
    std::memcpy(out.data(), p, out.size());
    return {};
}

Status GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) const {
    uint8_t* p = host_address(gpa, in.size());
    if (!p) return Error("guest memory write out of bounds at " + std::to_string(gpa), EFAULT);
    std::memcpy(p, in.data(), in.size());
    return {};
}

}  // namespace msb::kvm
