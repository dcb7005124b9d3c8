// qcow2 images: table lookups, compressed clusters, copy-on-write allocation and refcounts.
#include "devices/block/qcow2_image.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace msb::devices {

namespace {

constexpr uint64_t kOffsetMask = 0x00fffffffffffe00;  // bits 9–55 of L1/L2 entries
constexpr uint64_t kRefTableOffsetMask = ~uint64_t{0x1ff};
constexpr uint64_t kCopied = 1ull << 63;  // refcount is exactly 1: write in place
constexpr uint64_t kCompressed = 1ull << 62;
constexpr uint64_t kZero = 1;  // version 3: the cluster reads as zeroes
constexpr uint64_t kMaxFileEnd = uint64_t{1} << 56;
constexpr size_t kRefblockSlots = 4;
constexpr size_t kL2CacheBytes = 4u << 20;
constexpr int kMaxAllocationSkips = 1 << 16;

uint64_t align_up(uint64_t v, uint64_t to) { return (v + to - 1) & ~(to - 1); }

// Refcount entry `index` of a block of (1 << order)-bit entries: whole big-endian bytes from
// 8 bits up, packed from the least significant bit of each byte below that.
uint64_t get_refcount_entry(const std::vector<uint8_t>& block, uint64_t index, uint32_t order) {
    const uint32_t bits = 1u << order;
    if (bits >= 8) {
        const uint32_t bytes = bits / 8;
        uint64_t v = 0;
        for (uint32_t i = 0; i < bytes; i++) v = (v << 8) | block[index * bytes + i];
        return v;
    }
    const uint64_t bit = index * bits;
    return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
}

// Stores the entry; returns the byte range [first, first + count) that changed.
std::pair<uint64_t, uint32_t> set_refcount_entry(std::vector<uint8_t>& block, uint64_t index,
                                                 uint32_t order, uint64_t value) {
    const uint32_t bits = 1u << order;
    if (bits >= 8) {
        const uint32_t bytes = bits / 8;
        for (uint32_t i = 0; i < bytes; i++)
            block[index * bytes + bytes - 1 - i] = static_cast<uint8_t>(value >> (8 * i));
        return {index * bytes, bytes};
    }
    const uint64_t bit = index * bits;
    const uint8_t mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
    block[bit / 8] = static_cast<uint8_t>((block[bit / 8] & ~mask) | ((value << (bit % 8)) & mask));
    return {bit / 8, 1};
}

}  // namespace

Result<std::unique_ptr<Qcow2DiskImage>> Qcow2DiskImage::open(const std::string& path,
                                                             DiskAccess access) {
    int flags = (access == DiskAccess::ReadOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) return Error::from_errno("open disk image " + path);
    return open_fd(std::move(fd), path, access);
}

Result<std::unique_ptr<Qcow2DiskImage>> Qcow2DiskImage::open_fd(UniqueFd fd,
                                                                const std::string& path,
                                                                DiskAccess access, int depth) {
    return open_chain(std::move(fd), path, access, depth, {});
}

// `chain`: the files above this one in a backing chain, by (device, inode).
Result<std::unique_ptr<Qcow2DiskImage>> Qcow2DiskImage::open_chain(UniqueFd fd,
                                                                   const std::string& path,
                                                                   DiskAccess access, int depth,
                                                                   std::vector<FileId> chain) {
    auto context = [&](const Error& e) { return e.with_context("disk image " + path); };
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno("stat disk image " + path);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return Error("disk image " + path + " is not a file or block device", EINVAL);
    // Allocation appends at the end of the file, which a block device does not have.
    if (S_ISBLK(st.st_mode) && access == DiskAccess::ReadWrite)
        return Error("disk image " + path +
                         ": a qcow2 image on a block device can only be attached read-only (:ro)",
                     ENOTSUP);
    const FileId self{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
    if (std::find(chain.begin(), chain.end(), self) != chain.end())
        return Error("disk image " + path + ": the backing chain loops back to this file", ELOOP);
    chain.push_back(self);

    // The header tells the cluster size; extensions and the backing name lie in cluster 0.
    std::vector<uint8_t> first(kQcow2HeaderProbeBytes);
    ssize_t n = ::pread(fd.get(), first.data(), first.size(), 0);
    if (n < 0) return Error::from_errno("read disk image " + path);
    first.resize(static_cast<size_t>(n));
    if (n >= 24) {
        const uint32_t bits = load_be32(first.data() + 20);
        if (bits >= kQcow2MinClusterBits && bits <= kQcow2MaxClusterBits) {
            first.resize(size_t{1} << bits);
            n = ::pread(fd.get(), first.data(), first.size(), 0);
            if (n < 0) return Error::from_errno("read disk image " + path);
            first.resize(static_cast<size_t>(n));
        }
    }
    auto header = parse_qcow2_header(first);
    if (!header.ok()) return context(header.error());

    if (access == DiskAccess::ReadWrite) {
        if (header->nb_snapshots != 0)
            return Error("disk image " + path +
                             " has internal snapshots, which msb cannot write around; attach it "
                             "read-only (:ro) or delete them with `qemu-img snapshot -d`",
                         ENOTSUP);
        if (header->incompatible_features & (kQcow2IncompatDirty | kQcow2IncompatCorrupt))
            return Error("disk image " + path +
                             " is marked dirty or corrupt; repair it with `qemu-img check -r all " +
                             path + "` before writing to it",
                         EINVAL);
    }
    std::unique_ptr<Qcow2DiskImage> image(
        new Qcow2DiskImage(std::move(fd), path, access, std::move(header).value()));
    TRY(image->load(depth, std::move(chain)));
    return image;
}

Qcow2DiskImage::Qcow2DiskImage(UniqueFd fd, std::string path, DiskAccess access, Qcow2Header header)
    : m_fd(std::move(fd)),
      m_path(std::move(path)),
      m_access(access),
      m_header(std::move(header)),
      m_cluster(m_header.cluster_size()) {}

Status Qcow2DiskImage::load(int depth, std::vector<FileId> chain) {
    std::vector<uint8_t> raw(uint64_t{m_header.l1_size} * 8);
    TRY(pread_all(m_header.l1_table_offset, raw, false));
    m_l1.resize(m_header.l1_size);
    for (size_t i = 0; i < m_l1.size(); i++) m_l1[i] = load_be64(raw.data() + 8 * i);

    if (m_access == DiskAccess::ReadWrite) {  // only writes look at refcounts
        raw.assign(uint64_t{m_header.refcount_table_clusters} * m_cluster, 0);
        TRY(pread_all(m_header.refcount_table_offset, raw, false));
        m_reftable.resize(raw.size() / 8);
        for (size_t i = 0; i < m_reftable.size(); i++)
            m_reftable[i] = load_be64(raw.data() + 8 * i);
    }

    struct stat st {};
    if (::fstat(m_fd.get(), &st) < 0) return Error::from_errno("stat disk image " + m_path);
    m_file_end = align_up(static_cast<uint64_t>(st.st_size), m_cluster);
    m_scratch.resize(m_cluster);
    m_l2_cache.resize(std::clamp<size_t>(kL2CacheBytes / m_cluster, 4, 64));
    m_refblock_cache.resize(kRefblockSlots);

    if (!m_header.backing_file.empty()) {
        if (depth + 1 > kMaxBackingDepth)
            return Error(fmt::format("disk image {}: backing chain deeper than {} (a loop?)",
                                     m_path, kMaxBackingDepth),
                         ELOOP);
        std::filesystem::path backing(m_header.backing_file);
        if (backing.is_relative()) backing = std::filesystem::path(m_path).parent_path() / backing;
        const std::string name = backing.string();
        // Never guessed from the file's first bytes: a raw disk a guest wrote could otherwise
        // pose as qcow2 and name any host file as its own backing file.
        if (!m_header.backing_format)
            return Error("disk image " + m_path + ": the format of its backing file " + name +
                             " is not recorded; record it with `qemu-img rebase -u -b " +
                             m_header.backing_file + " -F raw|qcow2 " + m_path + "`",
                         EINVAL);
        const std::string format = *m_header.backing_format;
        auto context = [&](const Error& e) {
            return e.with_context("backing file of disk image " + m_path);
        };
        if (format == "qcow2") {
            UniqueFd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC));
            if (!fd) return context(Error::from_errno("open " + name));
            auto b = open_chain(std::move(fd), name, DiskAccess::ReadOnly, depth + 1, chain);
            if (!b.ok()) return context(b.error());
            m_backing = std::move(b).value();
        } else if (format == "raw") {
            auto b = RawDiskImage::open(name, DiskAccess::ReadOnly);
            if (!b.ok()) return context(b.error());
            m_backing = std::move(b).value();
        } else {
            return Error("disk image " + m_path + ": backing file format '" + format +
                             "' is not supported (qcow2 or raw)",
                         ENOTSUP);
        }
    }

    // Bits we do not maintain (e.g. "bitmaps are consistent") must be cleared by a writer.
    if (m_access == DiskAccess::ReadWrite && m_header.version == 3 &&
        m_header.autoclear_features != 0) {
        uint8_t zero[8] = {};
        TRY(pwrite_all(kQcow2AutoclearField, zero));
        m_header.autoclear_features = 0;
    }
    return {};
}

Error Qcow2DiskImage::corrupt(const std::string& what) const {
    return Error("qcow2 image " + m_path + " is corrupt: " + what +
                     "; check it with `qemu-img check " + m_path + "`",
                 EIO);
}

Status Qcow2DiskImage::pread_all(uint64_t offset, std::span<uint8_t> out,
                                 bool zero_past_end) const {
    const size_t n = TRY(pread_up_to(m_fd.get(), offset, out, "read disk image " + m_path));
    if (n == out.size()) return {};
    if (!zero_past_end)
        return corrupt(fmt::format("metadata at {:#x} lies past the end of the file", offset));
    std::memset(out.data() + n, 0, out.size() - n);
    return {};
}

Status Qcow2DiskImage::pwrite_all(uint64_t offset, std::span<const uint8_t> in) {
    return pwrite_exact(m_fd.get(), offset, in, "write disk image " + m_path);
}

bool Qcow2DiskImage::overlaps_fixed_metadata(uint64_t host) const {
    auto inside = [&](uint64_t start, uint64_t bytes) {
        return host >= start && host - start < align_up(bytes, m_cluster);
    };
    return host < m_cluster || inside(m_header.l1_table_offset, uint64_t{m_header.l1_size} * 8) ||
           inside(m_header.refcount_table_offset,
                  uint64_t{m_header.refcount_table_clusters} * m_cluster);
}

Result<Qcow2DiskImage::CachedTable*> Qcow2DiskImage::cached(std::vector<CachedTable>& cache,
                                                            uint64_t offset) {
    CachedTable* victim = &cache[0];
    for (auto& slot : cache) {
        if (slot.offset == offset) {
            slot.last_use = ++m_use_clock;
            return &slot;
        }
        if (slot.last_use < victim->last_use) victim = &slot;
    }
    victim->offset = 0;
    victim->bytes.resize(m_cluster);
    TRY(pread_all(offset, victim->bytes, false));
    victim->offset = offset;
    victim->last_use = ++m_use_clock;
    return victim;
}

// --- lookups ---------------------------------------------------------------------------------

Result<Qcow2DiskImage::CachedTable*> Qcow2DiskImage::l2_table(uint64_t l1_index, bool allocate) {
    uint64_t offset = m_l1[l1_index] & kOffsetMask;
    if (offset == 0) {
        if (!allocate) return nullptr;
        offset = TRY(allocate_cluster());
        TRY(pwrite_all(offset, std::vector<uint8_t>(m_cluster, 0)));
        uint8_t entry[8];
        store_be64(entry, offset | kCopied);
        TRY(pwrite_all(m_header.l1_table_offset + 8 * l1_index, entry));
        m_l1[l1_index] = offset | kCopied;
    } else if (offset % m_cluster != 0) {
        return corrupt(fmt::format("L2 table offset {:#x} is not cluster-aligned", offset));
    } else if (allocate && (!(m_l1[l1_index] & kCopied) || overlaps_fixed_metadata(offset))) {
        return corrupt(
            fmt::format("L2 table at {:#x} is shared or overlaps the header or tables", offset));
    }
    return cached(m_l2_cache, offset);
}

Result<Qcow2DiskImage::Mapping> Qcow2DiskImage::lookup(uint64_t guest) {
    const uint64_t l1_index = guest >> (m_header.cluster_bits + m_header.l2_bits());
    if (l1_index >= m_l1.size()) return corrupt("offset beyond the L1 table");
    CachedTable* table = TRY(l2_table(l1_index, false));
    if (!table) return Mapping{};
    const uint64_t l2_index = (guest >> m_header.cluster_bits) & ((m_cluster / 8) - 1);
    const uint64_t entry = load_be64(table->bytes.data() + 8 * l2_index);
    if (entry & kCompressed) return Mapping{Mapping::Kind::Compressed, entry};
    if (m_header.version == 3 && (entry & kZero)) return Mapping{Mapping::Kind::Zero, entry};
    const uint64_t host = entry & kOffsetMask;
    if (host == 0) return Mapping{Mapping::Kind::Unallocated, entry};
    if (host % m_cluster != 0)
        return corrupt(fmt::format("data cluster offset {:#x} is not cluster-aligned", host));
    return Mapping{Mapping::Kind::Data, entry};
}

Status Qcow2DiskImage::set_l2_entry(uint64_t guest, uint64_t entry) {
    const uint64_t l1_index = guest >> (m_header.cluster_bits + m_header.l2_bits());
    CachedTable* table = TRY(l2_table(l1_index, true));
    const uint64_t l2_index = (guest >> m_header.cluster_bits) & ((m_cluster / 8) - 1);
    store_be64(table->bytes.data() + 8 * l2_index, entry);
    Status s = pwrite_all(table->offset + 8 * l2_index,
                          std::span<const uint8_t>(table->bytes).subspan(8 * l2_index, 8));
    if (!s.ok()) {
        table->offset = 0;  // the cached table no longer matches the file
        return failed(s.error());
    }
    return {};
}

// Compressed cluster descriptor: the host offset in the low bits, then the number of 512-byte
// sectors beyond the first that the deflate stream touches.
Result<std::span<const uint8_t>> Qcow2DiskImage::decompress(uint64_t entry) {
    if (entry == m_compressed_entry) return std::span<const uint8_t>(m_inflated);
    m_compressed_entry = 0;
    const uint32_t shift = 62 - (m_header.cluster_bits - 8);
    const uint64_t offset = entry & ((uint64_t{1} << shift) - 1);
    const uint64_t sectors = ((entry & ~kCopied & ~kCompressed) >> shift) + 1;
    const uint64_t length = (offset & ~uint64_t{511}) + sectors * 512 - offset;
    std::vector<uint8_t> input(length);  // ≤ 2 clusters: sectors < 2^(cluster_bits - 8)
    TRY(pread_all(offset, input, true));
    m_inflated.resize(m_cluster);
    z_stream z{};
    if (inflateInit2(&z, -12) != Z_OK) return Error("zlib inflateInit2 failed", ENOMEM);
    z.next_in = input.data();
    z.avail_in = static_cast<uInt>(input.size());
    z.next_out = m_inflated.data();
    z.avail_out = static_cast<uInt>(m_inflated.size());
    const int rc = inflate(&z, Z_FINISH);
    const bool full = z.avail_out == 0;
    inflateEnd(&z);
    if (!full || (rc != Z_STREAM_END && rc != Z_BUF_ERROR))
        return corrupt(
            fmt::format("compressed cluster at {:#x} does not inflate to a cluster", offset));
    m_compressed_entry = entry;
    return std::span<const uint8_t>(m_inflated);
}

// --- reads -----------------------------------------------------------------------------------

Status Qcow2DiskImage::read_cluster_part(const Mapping& m, uint64_t guest, std::span<uint8_t> out) {
    const uint64_t in_cluster = guest & (m_cluster - 1);
    switch (m.kind) {
        case Mapping::Kind::Zero:
            std::memset(out.data(), 0, out.size());
            return {};
        case Mapping::Kind::Unallocated: {
            uint64_t from_backing = 0;
            if (m_backing && guest < m_backing->size())
                from_backing = std::min<uint64_t>(out.size(), m_backing->size() - guest);
            if (from_backing) TRY(m_backing->read_at(guest, out.first(from_backing)));
            std::memset(out.data() + from_backing, 0, out.size() - from_backing);
            return {};
        }
        case Mapping::Kind::Data:
            return pread_all((m.entry & kOffsetMask) + in_cluster, out, true);
        case Mapping::Kind::Compressed: {
            auto cluster = TRY(decompress(m.entry));
            std::memcpy(out.data(), cluster.data() + in_cluster, out.size());
            return {};
        }
    }
    return {};
}

Status Qcow2DiskImage::read_guest(uint64_t offset, std::span<uint8_t> out) {
    while (!out.empty()) {
        const uint64_t in_cluster = offset & (m_cluster - 1);
        const size_t n =
            static_cast<size_t>(std::min<uint64_t>(out.size(), m_cluster - in_cluster));
        Mapping m = TRY(lookup(offset));
        TRY(read_cluster_part(m, offset, out.first(n)));
        out = out.subspan(n);
        offset += n;
    }
    return {};
}

Status Qcow2DiskImage::read_at(uint64_t offset, std::span<uint8_t> out) {
    if (offset > size() || out.size() > size() - offset)
        return Error("read disk image " + m_path + ": beyond the end of the disk", EINVAL);
    return read_guest(offset, out);
}

// --- writes ----------------------------------------------------------------------------------

Status Qcow2DiskImage::write_cluster_part(uint64_t guest, std::span<const uint8_t> in) {
    Mapping m = TRY(lookup(guest));
    const uint64_t in_cluster = guest & (m_cluster - 1);
    if (m.kind == Mapping::Kind::Data && (m.entry & kCopied)) {
        const uint64_t host = m.entry & kOffsetMask;
        if (overlaps_fixed_metadata(host))
            return corrupt(fmt::format("data cluster {:#x} overlaps the header or tables", host));
        return pwrite_all(host + in_cluster, in);
    }
    // Copy-on-write: the cluster's current contents with `in` laid over them, in a new cluster.
    std::span<const uint8_t> whole = in;
    if (in.size() < m_cluster) {
        TRY(read_cluster_part(m, guest - in_cluster, m_scratch));
        std::memcpy(m_scratch.data() + in_cluster, in.data(), in.size());
        whole = m_scratch;
    }
    const uint64_t host = TRY(allocate_cluster());
    TRY(pwrite_all(host, whole));
    // Bytes the guest did not write this time (from the backing file, a compressed or shared
    // cluster) must be on disk before the mapping that points at their new home: the guest
    // flushed them long ago.
    const bool carried = in.size() < m_cluster &&
                         (m.kind == Mapping::Kind::Data || m.kind == Mapping::Kind::Compressed ||
                          (m.kind == Mapping::Kind::Unallocated && m_backing));
    if (carried && ::fdatasync(m_fd.get()) < 0)
        return Error::from_errno("fdatasync disk image " + m_path);
    TRY(set_l2_entry(guest, host | kCopied));
    return release(m);
}

Status Qcow2DiskImage::write_at(uint64_t offset, std::span<const uint8_t> in) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("write disk image " + m_path + ": read-only", EROFS);
    if (offset > size() || in.size() > size() - offset)
        return Error("write disk image " + m_path + ": beyond the end of the disk", EINVAL);
    TRY(check_usable());
    while (!in.empty()) {
        const uint64_t in_cluster = offset & (m_cluster - 1);
        const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), m_cluster - in_cluster));
        // A write that failed half-way may have left metadata that the caches and the file
        // disagree on: no further writes.
        if (Status s = write_cluster_part(offset, in.first(n)); !s.ok()) return failed(s.error());
        in = in.subspan(n);
        offset += n;
    }
    return {};
}

// Whole clusters become zero clusters (version 3) or unallocated (version 2 without a backing
// file) and give their space back; anything else gets explicit zeroes.
Status Qcow2DiskImage::zero_range(uint64_t offset, uint64_t length) {
    if (m_access == DiskAccess::ReadOnly)
        return Error("zero disk image " + m_path + ": read-only", EROFS);
    if (offset > size() || length > size() - offset)
        return Error("zero disk image " + m_path + ": beyond the end of the disk", EINVAL);
    TRY(check_usable());
    if (Status s = zero_clusters(offset, length); !s.ok()) return failed(s.error());
    return {};
}

Status Qcow2DiskImage::zero_clusters(uint64_t offset, uint64_t length) {
    std::vector<uint8_t> zeroes;
    while (length > 0) {
        const uint64_t in_cluster = offset & (m_cluster - 1);
        const uint64_t n = std::min<uint64_t>(length, m_cluster - in_cluster);
        Mapping m = TRY(lookup(offset));
        const bool reads_zero =
            m.kind == Mapping::Kind::Zero || (m.kind == Mapping::Kind::Unallocated && !m_backing);
        if (!reads_zero) {
            if (n == m_cluster && (m_header.version == 3 || !m_backing)) {
                TRY(set_l2_entry(offset, m_header.version == 3 ? kZero : 0));
                TRY(release(m));
            } else {
                zeroes.resize(n);
                TRY(write_cluster_part(offset, zeroes));
            }
        }
        offset += n;
        length -= n;
    }
    return {};
}

Status Qcow2DiskImage::discard(uint64_t offset, uint64_t length) {
    return zero_range(offset, length);
}

Status Qcow2DiskImage::write_zeroes(uint64_t offset, uint64_t length) {
    return zero_range(offset, length);
}

Status Qcow2DiskImage::flush() {
    if (m_access == DiskAccess::ReadOnly) return {};
    TRY(check_usable());
    if (::fdatasync(m_fd.get()) < 0)
        return failed(Error::from_errno("fdatasync disk image " + m_path));
    if (!m_pending_frees.empty()) {
        if (Status s = apply_pending_frees(); !s.ok()) return failed(s.error());
    }
    return {};
}

Qcow2DiskImage::~Qcow2DiskImage() {
    if (m_access == DiskAccess::ReadWrite && !m_pending_frees.empty()) (void)flush();
}

Status Qcow2DiskImage::check_usable() const {
    if (m_failed)
        return Error("disk image " + m_path +
                         ": an earlier metadata write failed; the image refuses writes until it "
                         "is reopened (check it with `qemu-img check`)",
                     EIO);
    return {};
}

Error Qcow2DiskImage::failed(Error error) {
    m_failed = true;
    return error;
}

// Drops the reference that a mapping that is going away held on its host clusters.
Status Qcow2DiskImage::release(const Mapping& m) {
    switch (m.kind) {
        case Mapping::Kind::Unallocated:
            return {};
        case Mapping::Kind::Zero:
        case Mapping::Kind::Data: {
            const uint64_t host = m.entry & kOffsetMask;  // a zero cluster may keep its space
            return host == 0 ? Status{} : free_cluster(host >> m_header.cluster_bits);
        }
        case Mapping::Kind::Compressed: {
            if (m.entry == m_compressed_entry) m_compressed_entry = 0;
            const uint32_t shift = 62 - (m_header.cluster_bits - 8);
            const uint64_t offset = m.entry & ((uint64_t{1} << shift) - 1);
            const uint64_t sectors = ((m.entry & ~kCopied & ~kCompressed) >> shift) + 1;
            const uint64_t first = offset & ~uint64_t{511};
            const uint64_t last = first + sectors * 512 - 1;
            for (uint64_t c = first >> m_header.cluster_bits; c <= last >> m_header.cluster_bits;
                 c++)
                TRY(free_cluster(c));
            return {};
        }
    }
    return {};
}

// --- refcounts and allocation ----------------------------------------------------------------

Result<uint64_t> Qcow2DiskImage::refcount(uint64_t cluster_index) {
    const uint32_t block_bits = m_header.cluster_bits + 3 - m_header.refcount_order;
    const uint64_t table_index = cluster_index >> block_bits;
    if (table_index >= m_reftable.size()) return uint64_t{0};
    const uint64_t block = m_reftable[table_index] & kRefTableOffsetMask;
    if (block == 0) return uint64_t{0};
    if (block % m_cluster != 0)
        return corrupt(fmt::format("refcount block offset {:#x} is not cluster-aligned", block));
    CachedTable* t = TRY(cached(m_refblock_cache, block));
    return get_refcount_entry(t->bytes, cluster_index & ((uint64_t{1} << block_bits) - 1),
                              m_header.refcount_order);
}

Status Qcow2DiskImage::set_refcount(uint64_t cluster_index, uint64_t value) {
    const uint32_t block_bits = m_header.cluster_bits + 3 - m_header.refcount_order;
    const uint64_t table_index = cluster_index >> block_bits;
    if (table_index >= m_reftable.size()) TRY(grow_refcount_table(table_index));
    if ((m_reftable[table_index] & kRefTableOffsetMask) == 0)
        TRY(ensure_refcount_block(table_index));
    const uint64_t block = m_reftable[table_index] & kRefTableOffsetMask;
    if (block % m_cluster != 0 || overlaps_fixed_metadata(block))
        return corrupt(fmt::format("refcount block at {:#x} is misplaced", block));
    CachedTable* t = TRY(cached(m_refblock_cache, block));
    auto [first, count] =
        set_refcount_entry(t->bytes, cluster_index & ((uint64_t{1} << block_bits) - 1),
                           m_header.refcount_order, value);
    Status s = pwrite_all(block + first, std::span<const uint8_t>(t->bytes).subspan(first, count));
    if (!s.ok()) {
        t->offset = 0;
        return failed(s.error());
    }
    return {};
}

// A new, zeroed refcount block for table entry `table_index`, at the end of the file. When the
// block falls in the range it covers it counts itself; otherwise its own refcount goes into the
// block that covers it (allocated the same way).
Status Qcow2DiskImage::ensure_refcount_block(uint64_t table_index) {
    const uint32_t block_bits = m_header.cluster_bits + 3 - m_header.refcount_order;
    const uint64_t block = m_file_end;
    if (block >= kMaxFileEnd) return Error("disk image " + m_path + " is full", ENOSPC);
    m_file_end += m_cluster;
    const uint64_t block_cluster = block >> m_header.cluster_bits;
    const bool self_covering = (block_cluster >> block_bits) == table_index;
    std::vector<uint8_t> bytes(m_cluster, 0);
    if (self_covering)
        (void)set_refcount_entry(bytes, block_cluster & ((uint64_t{1} << block_bits) - 1),
                                 m_header.refcount_order, 1);
    TRY(pwrite_all(block, bytes));
    if (!self_covering) TRY(set_refcount(block_cluster, 1));  // counted before it is referenced
    uint8_t entry[8];
    store_be64(entry, block);
    TRY(pwrite_all(m_header.refcount_table_offset + 8 * table_index, entry));
    m_reftable[table_index] = block;
    return {};
}

// Moves the refcount table to a larger one at the end of the file (at least twice the size, and
// large enough to cover its own clusters): writes it, counts its clusters in it, switches the
// header to it, then frees the old one. Until the header switch a failure only leaks.
Status Qcow2DiskImage::grow_refcount_table(uint64_t table_index) {
    const uint32_t block_bits = m_header.cluster_bits + 3 - m_header.refcount_order;
    uint64_t entries = std::max<uint64_t>(m_reftable.size() * 2, table_index + 1);
    uint64_t clusters = 0;
    for (;;) {
        clusters = align_up(entries * 8, m_cluster) / m_cluster;
        const uint64_t end_cluster = (m_file_end >> m_header.cluster_bits) + clusters + 2;
        const uint64_t needed = (end_cluster >> block_bits) + 2;
        if (needed <= clusters * m_cluster / 8) break;
        entries = needed;
    }
    if (clusters * m_cluster > (8u << 20) || clusters > UINT32_MAX)
        return Error("disk image " + m_path + ": the refcount table would exceed 8 MiB", ENOSPC);
    const uint64_t start = m_file_end;
    if (start + clusters * m_cluster >= kMaxFileEnd)
        return Error("disk image " + m_path + " is full", ENOSPC);
    m_file_end += clusters * m_cluster;

    std::vector<uint8_t> bytes(clusters * m_cluster, 0);
    for (size_t i = 0; i < m_reftable.size(); i++) store_be64(bytes.data() + 8 * i, m_reftable[i]);
    TRY(pwrite_all(start, bytes));

    // From here on new refcount blocks are entered in the new table only.
    const uint64_t old_start = m_header.refcount_table_offset;
    const uint64_t old_clusters = m_header.refcount_table_clusters;
    m_header.refcount_table_offset = start;
    m_header.refcount_table_clusters = static_cast<uint32_t>(clusters);
    m_reftable.resize(clusters * m_cluster / 8, 0);
    for (uint64_t i = 0; i < clusters; i++)
        TRY(set_refcount((start >> m_header.cluster_bits) + i, 1));
    uint8_t field[12];
    store_be64(field, start);
    store_be32(field + 8, static_cast<uint32_t>(clusters));
    TRY(pwrite_all(kQcow2RefcountTableOffsetField, field));
    for (uint64_t i = 0; i < old_clusters; i++)
        TRY(free_cluster((old_start >> m_header.cluster_bits) + i));
    return {};
}

// The next cluster at the end of the file whose refcount is 0, now counted once.
Result<uint64_t> Qcow2DiskImage::allocate_cluster() {
    for (int skips = 0; skips < kMaxAllocationSkips; skips++) {
        const uint64_t host = m_file_end;
        if (host >= kMaxFileEnd) return Error("disk image " + m_path + " is full", ENOSPC);
        m_file_end += m_cluster;
        const uint64_t index = host >> m_header.cluster_bits;
        if (TRY(refcount(index)) != 0) continue;  // counted beyond the end of the file
        TRY(set_refcount(index, 1));
        return host;
    }
    return corrupt("refcounts claim clusters far beyond the end of the file");
}

// Queues the drop of one reference. Frees happen after the next fdatasync (flush()): until the
// mapping that replaced this one is on disk, the old cluster must keep its refcount and its
// bytes, whatever order the host writes pages back in.
Status Qcow2DiskImage::free_cluster(uint64_t cluster_index) {
    const uint64_t host = cluster_index << m_header.cluster_bits;
    if (overlaps_fixed_metadata(host))
        return corrupt(
            fmt::format("a mapping being dropped points at {:#x}, the header or a table", host));
    m_pending_frees.push_back(cluster_index);
    if (m_pending_frees.size() >= kMaxPendingFrees) return flush();
    return {};
}

// Drops the queued references; a cluster nobody references any more is punched out of the file.
Status Qcow2DiskImage::apply_pending_frees() {
    std::vector<uint64_t> frees;
    frees.swap(m_pending_frees);
    for (uint64_t cluster_index : frees) {
        const uint64_t count = TRY(refcount(cluster_index));
        if (count == 0)
            return corrupt(fmt::format("cluster {:#x} is referenced but has refcount 0",
                                       cluster_index << m_header.cluster_bits));
        TRY(set_refcount(cluster_index, count - 1));
        if (count == 1)
            (void)::fallocate(m_fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(cluster_index << m_header.cluster_bits),
                              static_cast<off_t>(m_cluster));
    }
    return {};
}

}  // namespace msb::devices
