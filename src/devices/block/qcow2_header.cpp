// Decoding and validation of the qcow2 header and its extensions.
#include "devices/block/qcow2_header.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace msb::devices {

namespace {

constexpr uint32_t kExtensionEnd = 0;
constexpr uint32_t kExtensionBackingFormat = 0xe2792aca;
constexpr uint32_t kMaxBackingFileName = 1023;
constexpr uint64_t kMaxL1Bytes = 32u << 20;
constexpr uint64_t kMaxRefcountTableBytes = 8u << 20;
// Beyond this the cluster descriptors (bits 9–55) cannot address the data.
constexpr uint64_t kMaxHostOffset = uint64_t{1} << 56;
constexpr uint64_t kKnownIncompatible = kQcow2IncompatDirty | kQcow2IncompatCorrupt |
                                        kQcow2IncompatExternalData | kQcow2IncompatCompressionType |
                                        kQcow2IncompatExtendedL2;

Error invalid(const std::string& what) { return Error("not a valid qcow2 image: " + what, EINVAL); }

Error unsupported(const std::string& what) { return Error(what, ENOTSUP); }

}  // namespace

uint64_t load_be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

uint32_t load_be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void store_be64(uint8_t* p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

void store_be32(uint8_t* p, uint32_t v) {
    for (int i = 3; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

Result<Qcow2Header> parse_qcow2_header(std::span<const uint8_t> bytes) {
    if (bytes.size() < 72) return invalid("file too short for a header");
    const uint8_t* p = bytes.data();
    if (load_be32(p) != kQcow2Magic) return invalid("bad magic");
    Qcow2Header h;
    h.version = load_be32(p + 4);
    if (h.version != 2 && h.version != 3)
        return unsupported(
            fmt::format("qcow2 version {} is not supported (only 2 and 3)", h.version));
    const uint64_t backing_offset = load_be64(p + 8);
    const uint32_t backing_size = load_be32(p + 16);
    h.cluster_bits = load_be32(p + 20);
    h.size = load_be64(p + 24);
    const uint32_t crypt_method = load_be32(p + 32);
    h.l1_size = load_be32(p + 36);
    h.l1_table_offset = load_be64(p + 40);
    h.refcount_table_offset = load_be64(p + 48);
    h.refcount_table_clusters = load_be32(p + 56);
    h.nb_snapshots = load_be32(p + 60);

    if (h.cluster_bits < kQcow2MinClusterBits || h.cluster_bits > kQcow2MaxClusterBits)
        return invalid(fmt::format("cluster_bits {} outside 9..21", h.cluster_bits));
    const uint64_t cluster = h.cluster_size();
    if (bytes.size() > cluster) bytes = bytes.first(cluster);
    if (crypt_method != 0)
        return unsupported(
            "encrypted qcow2 images are not supported; decrypt it with "
            "`qemu-img convert` first");

    if (h.version == 3) {
        if (bytes.size() < 104) return invalid("file too short for a version 3 header");
        h.incompatible_features = load_be64(p + 72);
        h.compatible_features = load_be64(p + 80);
        h.autoclear_features = load_be64(p + 88);
        h.refcount_order = load_be32(p + 96);
        h.header_length = load_be32(p + 100);
        if (h.header_length < 104 || h.header_length > cluster || h.header_length % 8 != 0)
            return invalid(fmt::format("header length {}", h.header_length));
        if (h.header_length > bytes.size()) return invalid("header longer than the data read");
        if (h.refcount_order > 6)
            return invalid(fmt::format("refcount order {} above 6", h.refcount_order));
        if (uint64_t unknown = h.incompatible_features & ~kKnownIncompatible)
            return unsupported(
                fmt::format("the image uses incompatible qcow2 features this version does not know "
                            "(bits {:#x}); convert it with `qemu-img convert -O qcow2`",
                            unknown));
        if (h.incompatible_features & kQcow2IncompatExternalData)
            return unsupported("qcow2 images with an external data file are not supported");
        if (h.incompatible_features & kQcow2IncompatExtendedL2)
            return unsupported(
                "qcow2 images with extended L2 entries (subclusters) are not "
                "supported; convert with `qemu-img convert -O qcow2`");
        if (h.incompatible_features & kQcow2IncompatCompressionType) {
            const uint8_t type = h.header_length > 104 ? p[104] : 0;
            if (type != 0)
                return unsupported(fmt::format(
                    "qcow2 compression type {} (zstd) is not supported, only zlib", type));
        }
    }

    if (h.size > kMaxHostOffset) return invalid(fmt::format("virtual size {} too large", h.size));
    // One L1 entry maps an L2 table's worth of clusters.
    const uint32_t map_bits = h.cluster_bits + h.l2_bits();
    const uint64_t l1_needed = (h.size + (uint64_t{1} << map_bits) - 1) >> map_bits;
    if (h.l1_size < l1_needed)
        return invalid(
            fmt::format("L1 table of {} entries cannot map {} bytes", h.l1_size, h.size));
    if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
        return invalid(fmt::format("L1 table of {} entries is too large", h.l1_size));
    if (h.l1_table_offset % cluster != 0 || h.l1_table_offset >= kMaxHostOffset)
        return invalid(fmt::format("L1 table offset {:#x}", h.l1_table_offset));
    if (h.refcount_table_clusters == 0 ||
        uint64_t{h.refcount_table_clusters} * cluster > kMaxRefcountTableBytes)
        return invalid(fmt::format("refcount table of {} clusters", h.refcount_table_clusters));
    if (h.refcount_table_offset == 0 || h.refcount_table_offset % cluster != 0 ||
        h.refcount_table_offset >= kMaxHostOffset)
        return invalid(fmt::format("refcount table offset {:#x}", h.refcount_table_offset));
    // Neither table may overlap the header (cluster 0) or the other one: writes to one would
    // rewrite the other.
    if (h.l1_size > 0) {
        const uint64_t l1_end = h.l1_table_offset + ((uint64_t{h.l1_size} * 8 + cluster - 1) & ~(cluster - 1));
        const uint64_t rt_end =
            h.refcount_table_offset + uint64_t{h.refcount_table_clusters} * cluster;
        if (h.l1_table_offset < cluster)
            return invalid("the L1 table overlaps the header");
        if (h.l1_table_offset < rt_end && h.refcount_table_offset < l1_end)
            return invalid("the L1 table overlaps the refcount table");
    }

    if (backing_offset != 0) {
        if (backing_size == 0 || backing_size > kMaxBackingFileName)
            return invalid(fmt::format("backing file name of {} bytes", backing_size));
        if (backing_offset > bytes.size() || backing_size > bytes.size() - backing_offset)
            return invalid("backing file name outside the first cluster");
        h.backing_file.assign(reinterpret_cast<const char*>(p + backing_offset), backing_size);
        if (h.backing_file.find('\0') != std::string::npos)
            return invalid("backing file name contains a NUL byte");
    }

    // Extensions: (type, length, data padded to 8 bytes) until the end marker, inside the
    // first cluster.
    for (uint64_t at = h.header_length; at + 8 <= bytes.size();) {
        const uint32_t type = load_be32(p + at);
        const uint32_t length = load_be32(p + at + 4);
        if (type == kExtensionEnd) break;
        const uint64_t padded = (uint64_t{length} + 7) & ~uint64_t{7};
        if (padded > bytes.size() - at - 8)
            return invalid("header extension past the first cluster");
        if (type == kExtensionBackingFormat) {
            if (length == 0 || length > 64) return invalid("backing format name");
            h.backing_format.emplace(reinterpret_cast<const char*>(p + at + 8), length);
        }
        at += 8 + padded;
    }
    return h;
}

}  // namespace msb::devices
