// Bulk copies of payload bytes (exec output, stdin, file chunks) done with one string move
// instead of glibc's vector-register memcpy.
//
// Why: inside a guest on the PVM host (kvm_pvm, native mode) glibc's SSE/AVX memmove loses
// data — every 64 KiB payload the agent copied into a frame came out with two 16-byte runs of
// zeros near its start (SSE2 variant; 25–27-byte runs with the AVX one), deterministically,
// while the same code on the host, and `rep movsb` in the guest, copy correctly (measured;
// docs/vmm.md). `rep movsb` is also the fast path for these sizes on every CPU with ERMS, so
// the host pays nothing for it.
//
//   append_bytes_to(frame, data);   // frame grows by data.size(), copied with rep movsb
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace msb {

// Copies n bytes; the ranges must not overlap.
inline void copy_bytes(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__x86_64__)
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
#else
    if (n) std::memcpy(dst, src, n);
#endif
}

// Appends `bytes` to `out` (which must not contain them) with copy_bytes.
// Callers that grow `out` step by step reserve with reserve_bytes first, so that resize never
// reallocates.
inline void append_bytes_to(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
    const size_t at = out.size();
    out.resize(at + bytes.size());
    copy_bytes(out.data() + at, bytes.data(), bytes.size());
}

// Raises `out`'s capacity to at least `capacity`, moving its bytes with copy_bytes: the
// standard vector's own reallocation moves them with glibc's memmove, which is the copy that
// loses bytes in the guest.
inline void reserve_bytes(std::vector<uint8_t>& out, size_t capacity) {
    if (capacity <= out.capacity()) return;
    std::vector<uint8_t> grown;
    grown.reserve(capacity);
    append_bytes_to(grown, out);
    out.swap(grown);
}

// A new vector holding a copy of `bytes`.
inline std::vector<uint8_t> copy_to_vector(std::span<const uint8_t> bytes) {
    std::vector<uint8_t> out;
    append_bytes_to(out, bytes);
    return out;
}

}  // namespace msb
