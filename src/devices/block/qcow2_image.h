// Qcow2DiskImage: a qcow2 image (versions 2 and 3), read and written in place.
//
// Guest offsets map through a two-level table: the L1 table (kept in memory) points at L2
// tables (a small LRU cache, written through), whose entries point at data clusters, mark a
// cluster as reading zeroes (version 3), or hold zlib-compressed data (read; a write moves the
// cluster out to a new, uncompressed one). Unallocated clusters read from the backing file —
// opened read-only, qcow2 or raw as the image records (never guessed), up to kMaxBackingDepth
// deep and never looping — or as zeroes. Read-only images do not load the refcount table.
//
// Writes allocate clusters at the end of the file, with their refcounts set before the L2 entry
// that points at them; refcount blocks and a larger refcount table are counted before anything
// refers to them. Copy-on-write data carried over from an older cluster is synced before the
// new mapping is written; references dropped by copy-on-write, discard or write-zeroes are
// applied only after the next fdatasync (flush()), and a cluster whose refcount reaches 0 is
// punched out. So a process crash can only leak clusters; a host crash between two guest flushes
// can also leave a new cluster's refcount unwritten (`qemu-img check -r all` repairs both). After
// a failed write the image refuses further writes. Nothing is written on the header, the L1
// table or the refcount table, or freed there, whatever an L2 entry says.
//
// Refused with an error that says what to do: encryption, unknown incompatible features,
// external data files, extended L2 entries, zstd; and, for writing only, internal snapshots,
// and images marked dirty or corrupt (`qemu-img check -r all` repairs those).
//
// Not thread-safe: one block device thread uses it.
//
//   auto disk = TRY(devices::Qcow2DiskImage::open("/x/data.qcow2",
//   devices::DiskAccess::ReadWrite));
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "devices/block/disk_image.h"
#include "devices/block/qcow2_header.h"

namespace msb::devices {

class Qcow2DiskImage final : public DiskImage {
public:
    static constexpr int kMaxBackingDepth = 16;
    // Dropped references wait for the next flush; this many force one.
    static constexpr size_t kMaxPendingFrees = 4096;

    static Result<std::unique_ptr<Qcow2DiskImage>> open(const std::string& path, DiskAccess access);
    // The same over an open file; `path` names it in errors and resolves a relative backing
    // file name. `depth` counts the images above this one in a backing chain.
    static Result<std::unique_ptr<Qcow2DiskImage>> open_fd(UniqueFd fd, const std::string& path,
                                                           DiskAccess access, int depth = 0);

    uint64_t size() const override { return m_header.size; }
    DiskAccess access() const override { return m_access; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) override;
    Status write_at(uint64_t offset, std::span<const uint8_t> in) override;
    Status flush() override;
    bool supports_discard() const override { return m_access == DiskAccess::ReadWrite; }
    Status discard(uint64_t offset, uint64_t length) override;
    Status write_zeroes(uint64_t offset, uint64_t length) override;

    const Qcow2Header& header() const { return m_header; }
    uint64_t discard_granularity() const override { return m_cluster; }

    ~Qcow2DiskImage() override;  // applies pending frees (after an fdatasync)
    Qcow2DiskImage(const Qcow2DiskImage&) = delete;
    Qcow2DiskImage& operator=(const Qcow2DiskImage&) = delete;

private:
    struct CachedTable {
        uint64_t offset = 0;  // host offset of the cluster; 0: empty slot
        uint64_t last_use = 0;
        std::vector<uint8_t> bytes;  // the cluster as on disk (big-endian)
    };
    // Where a guest cluster's bytes come from.
    struct Mapping {
        enum class Kind { Unallocated, Zero, Data, Compressed } kind = Kind::Unallocated;
        uint64_t entry = 0;  // the raw L2 entry (0 when the L1 entry is empty)
    };

    using FileId = std::pair<uint64_t, uint64_t>;  // (st_dev, st_ino)

    Qcow2DiskImage(UniqueFd fd, std::string path, DiskAccess access, Qcow2Header header);
    static Result<std::unique_ptr<Qcow2DiskImage>> open_chain(UniqueFd fd, const std::string& path,
                                                              DiskAccess access, int depth,
                                                              std::vector<FileId> chain);
    Status load(int depth, std::vector<FileId> chain);

    Status read_guest(uint64_t offset, std::span<uint8_t> out);
    Status read_cluster_part(const Mapping& m, uint64_t guest, std::span<uint8_t> out);
    Status write_cluster_part(uint64_t guest, std::span<const uint8_t> in);
    Status zero_range(uint64_t offset, uint64_t length);
    Status zero_clusters(uint64_t offset, uint64_t length);

    Result<Mapping> lookup(uint64_t guest);
    Result<CachedTable*> l2_table(uint64_t l1_index, bool allocate);
    Status set_l2_entry(uint64_t guest, uint64_t entry);
    Status release(const Mapping& m);
    Result<std::span<const uint8_t>> decompress(uint64_t entry);

    Result<uint64_t> refcount(uint64_t cluster_index);
    Status set_refcount(uint64_t cluster_index, uint64_t value);
    Status ensure_refcount_block(uint64_t table_index);
    Status grow_refcount_table(uint64_t table_index);
    Result<uint64_t> allocate_cluster();
    Status free_cluster(uint64_t cluster_index);
    Status apply_pending_frees();
    Status check_usable() const;
    Error failed(Error error);

    Result<CachedTable*> cached(std::vector<CachedTable>& cache, uint64_t offset);
    Status pread_all(uint64_t offset, std::span<uint8_t> out, bool zero_past_end) const;
    Status pwrite_all(uint64_t offset, std::span<const uint8_t> in);
    bool overlaps_fixed_metadata(uint64_t host) const;
    Error corrupt(const std::string& what) const;

    UniqueFd m_fd;
    std::string m_path;
    DiskAccess m_access;
    Qcow2Header m_header;
    uint64_t m_cluster = 0;
    std::unique_ptr<DiskImage> m_backing;
    std::vector<uint64_t> m_l1;        // host-endian, as on disk
    std::vector<uint64_t> m_reftable;  // host-endian
    uint64_t m_file_end = 0;           // cluster-aligned: where the next allocation goes
    std::vector<CachedTable> m_l2_cache;
    std::vector<CachedTable> m_refblock_cache;
    uint64_t m_use_clock = 0;
    uint64_t m_compressed_entry = 0;  // which compressed cluster m_inflated holds (0: none)
    std::vector<uint8_t> m_inflated;
    std::vector<uint8_t> m_scratch;  // one cluster
    std::vector<uint64_t> m_pending_frees;  // cluster indices, applied by flush()
    bool m_failed = false;                  // a write failed: metadata may be inconsistent
};

}  // namespace msb::devices
