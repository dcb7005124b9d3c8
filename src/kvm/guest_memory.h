// GuestMemory: the guest's RAM, one memfd mapped MAP_SHARED in this process, split into
// regions at guest-physical addresses (the x86 layout leaves a hole below 4 GiB for MMIO).
//
// This and the virtio descriptor reader/writer are the only places that turn guest addresses
// into host pointers; every translation checks that the whole range lies inside one region.
//
//   auto mem = TRY(GuestMemory::create({{0, 128 << 20}}));
//   TRY(mem.write(0x7000, bytes));
//   uint8_t* p = mem.host_address(gpa, len);   // nullptr when out of bounds
//
// Thread-safety: the layout is immutable after create(), and map_file()/zero() are for loading,
// before the VM runs; concurrent access to guest bytes is the guest's business, exactly as on
// hardware.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::kvm {

struct MemoryRegion {
    uint64_t guest_address;
    uint64_t size;
};

class GuestMemory {
public:
    struct Mapping {
        uint64_t guest_address;
        uint64_t size;
        uint8_t* host;         // start of this region in our address space
        uint64_t file_offset;  // offset of this region inside the memfd
    };

    // Creates zeroed RAM for `regions` (page-aligned, non-overlapping, sorted by address).
    static Result<GuestMemory> create(const std::vector<MemoryRegion>& regions);

    GuestMemory(GuestMemory&&) noexcept;
    GuestMemory& operator=(GuestMemory&&) noexcept;
    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    ~GuestMemory();

    // Host pointer for [gpa, gpa + len) if the range lies inside one region, else nullptr.
    // len == 0 is valid inside a region.
    uint8_t* host_address(uint64_t gpa, uint64_t len) const;
    bool contains(uint64_t gpa, uint64_t len) const { return host_address(gpa, len) != nullptr; }

    // Maps `len` bytes of the file `fd` from `file_offset` over guest RAM at `gpa`, copy-on-write
    // (MAP_PRIVATE | MAP_FIXED): the guest reads the host's page cache directly, and a page is
    // copied only when someone writes it. Loading a kernel or initramfs this way costs one mmap
    // instead of a copy into freshly faulted RAM, and sandboxes booting the same file share its
    // unwritten pages. gpa, len and file_offset must be page-aligned, the range inside one
    // region, and the file at least file_offset + len bytes long (rounded up to a page).
    // Those pages are then no longer backed by fd(); the file must not be truncated or changed
    // in place while the VM runs (msb's caches replace files by rename).
    Status map_file(uint64_t gpa, uint64_t len, int fd, uint64_t file_offset);
    // Zeroes [gpa, gpa + len): whole pages of RAM are handed back to the kernel (hole punched
    // in the memfd, so zero pages cost nothing until touched), the rest is cleared in place.
    Status zero(uint64_t gpa, uint64_t len);

    Status read(uint64_t gpa, std::span<uint8_t> out) const;
    Status write(uint64_t gpa, std::span<const uint8_t> in) const;

    template <typename T>
    Result<T> read_obj(uint64_t gpa) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        TRY(read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof value}));
        return value;
    }
    template <typename T>
    Status write_obj(uint64_t gpa, const T& value) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
    }

    const std::vector<Mapping>& mappings() const { return m_mappings; }
    // Total RAM bytes across regions.
    uint64_t size() const { return m_total; }
    // The memfd behind all regions except ranges given to map_file() (shareable with another
    // process, e.g. a vhost back end, once nothing is mapped from files).
    int fd() const { return m_fd.get(); }

private:
    GuestMemory(UniqueFd fd, uint8_t* base, uint64_t total, std::vector<Mapping> mappings);

    UniqueFd m_fd;
    uint8_t* m_base = nullptr;  // one contiguous host mapping of the whole memfd
    uint64_t m_total = 0;
    std::vector<Mapping> m_mappings;
    std::vector<MemoryRegion> m_file_ranges;  // guest ranges given to map_file()
};

}  // namespace msb::kvm
