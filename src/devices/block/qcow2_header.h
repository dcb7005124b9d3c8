// The qcow2 image header and its extensions (qcow2 specification, docs/interop/qcow2.txt in
// QEMU): decoded from the untrusted first cluster of an image and validated before anything is
// read by the offsets it holds. All fields on disk are big-endian.
//
//   auto header = TRY(parse_qcow2_header(first_cluster_bytes));
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"

namespace msb::devices {

inline constexpr uint32_t kQcow2Magic = 0x514649fb;  // "QFI\xfb"
inline constexpr uint32_t kQcow2MinClusterBits = 9;
inline constexpr uint32_t kQcow2MaxClusterBits = 21;
// Bytes needed to decode every fixed field of a version 3 header (compression type included).
inline constexpr size_t kQcow2HeaderProbeBytes = 112;

// Incompatible feature bits.
inline constexpr uint64_t kQcow2IncompatDirty = 1ull << 0;
inline constexpr uint64_t kQcow2IncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kQcow2IncompatExternalData = 1ull << 2;
inline constexpr uint64_t kQcow2IncompatCompressionType = 1ull << 3;
inline constexpr uint64_t kQcow2IncompatExtendedL2 = 1ull << 4;

// Byte offsets of the fields we rewrite in place.
inline constexpr uint64_t kQcow2RefcountTableOffsetField = 48;  // u64, then u32 clusters at 56
inline constexpr uint64_t kQcow2AutoclearField = 88;            // u64, version 3 only

struct Qcow2Header {
    uint32_t version = 0;
    uint32_t cluster_bits = 0;
    uint64_t size = 0;  // guest-visible bytes
    uint32_t l1_size = 0;
    uint64_t l1_table_offset = 0;
    uint64_t refcount_table_offset = 0;
    uint32_t refcount_table_clusters = 0;
    uint32_t nb_snapshots = 0;
    uint64_t incompatible_features = 0;
    uint64_t compatible_features = 0;
    uint64_t autoclear_features = 0;
    uint32_t refcount_order = 4;  // refcounts are 2^order bits wide
    uint32_t header_length = 72;
    std::string backing_file;                   // empty: none
    std::optional<std::string> backing_format;  // from the backing-format extension

    uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
    uint32_t l2_bits() const { return cluster_bits - 3; }  // 8-byte entries per cluster
};

// Decodes and checks the header found in `first_cluster` (the image's first bytes: at least
// kQcow2HeaderProbeBytes, ideally a whole cluster so that extensions and the backing file name
// can be read). Table sizes are bounded (L1 ≤ 32 MiB, refcount table ≤ 8 MiB) and offsets
// cluster-aligned; whether they lie inside the file is found when they are read. Errors say what
// is wrong with the image (EINVAL for what is not qcow2 or is corrupt, ENOTSUP for features we do
// not implement: encryption, external data files, extended L2 entries, zstd, unknown incompatible
// bits).
Result<Qcow2Header> parse_qcow2_header(std::span<const uint8_t> first_cluster);

uint64_t load_be64(const uint8_t* p);
uint32_t load_be32(const uint8_t* p);
void store_be64(uint8_t* p, uint64_t v);
void store_be32(uint8_t* p, uint32_t v);

}  // namespace msb::devices
