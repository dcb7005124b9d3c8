// GuestMemory: memfd-backed guest RAM.
#include "kvm/guest_memory.h"

#include <fcntl.h>
#include <linux/falloc.h>
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

Status GuestMemory::map_file(uint64_t gpa, uint64_t len, int fd, uint64_t file_offset) {
    if (gpa % kPageSize || len % kPageSize || file_offset % kPageSize)
        return Error("guest memory: file mapping is not page-aligned", EINVAL);
    if (len == 0) return {};
    uint8_t* host = host_address(gpa, len);
    if (!host)
        return Error("guest memory: file mapping outside guest RAM at " + std::to_string(gpa),
                     EFAULT);
    // Safe: [host, host + len) lies inside our own mapping of guest RAM (checked above), so
    // MAP_FIXED replaces only guest pages, never another mapping of this process.
    void* p = ::mmap(host, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
                     static_cast<off_t>(file_offset));
    if (p != MAP_FAILED) {
        m_file_ranges.push_back({gpa, len});
        return {};
    }
    Error error = Error::from_errno("map file into guest RAM");
    // A failed MAP_FIXED may already have removed the old pages: put the memfd back.
    uint64_t memfd_offset = static_cast<uint64_t>(host - m_base);
    if (::mmap(host, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, m_fd.get(),
               static_cast<off_t>(memfd_offset)) == MAP_FAILED)
        return Error::from_errno("restore guest RAM after a failed file mapping");
    return error;
}

Status GuestMemory::zero(uint64_t gpa, uint64_t len) {
    uint8_t* host = host_address(gpa, len);
    if (!host) return Error("guest memory zero out of bounds at " + std::to_string(gpa), EFAULT);
    uint64_t first = (gpa + kPageSize - 1) & ~(kPageSize - 1);
    uint64_t last = (gpa + len) & ~(kPageSize - 1);
    bool file_backed = false;
    for (const auto& r : m_file_ranges)
        if (first < r.guest_address + r.size && r.guest_address < last) file_backed = true;
    // Punching a hole only clears memfd pages: a range with file pages is cleared by hand.
    if (first >= last || file_backed) {
        std::memset(host, 0, len);
        return {};
    }
    // Safe: [gpa, gpa + len) was checked above and [first, last) lies inside it.
    std::memset(host, 0, first - gpa);
    std::memset(host + (last - gpa), 0, gpa + len - last);
    if (::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(host + (first - gpa) - m_base),
                    static_cast<off_t>(last - first)) < 0)
        std::memset(host + (first - gpa), 0, last - first);
    return {};
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
