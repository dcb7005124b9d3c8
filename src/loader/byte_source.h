// ByteSource: random-access reads from a kernel or initramfs image, so parsers work the same on
// a file (pread, no whole-file copy) and on bytes in memory (tests, generated images).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/guest_memory.h"

namespace msb::loader {

class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual uint64_t size() const = 0;
    // Reads exactly out.size() bytes at `offset`; fails (naming the source) when they are not
    // all there.
    virtual Status read_at(uint64_t offset, std::span<uint8_t> out) const = 0;
    virtual const std::string& name() const = 0;
    // Puts `len` bytes from `offset` into guest RAM at `gpa`, as if copied. Fails when the source
    // or the guest range is too short.
    virtual Status load_into(kvm::GuestMemory& memory, uint64_t gpa, uint64_t offset,
                             uint64_t len) const;
};

class FileSource final : public ByteSource {
public:
    static Result<FileSource> open(const std::string& path);
    uint64_t size() const override { return m_size; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) const override;
    const std::string& name() const override { return m_path; }
    // Maps the whole pages of the range copy-on-write (GuestMemory::map_file) when the file
    // offset and the guest address agree modulo the page size, and copies the partial pages at
    // either end; otherwise copies everything.
    Status load_into(kvm::GuestMemory& memory, uint64_t gpa, uint64_t offset,
                     uint64_t len) const override;

private:
    FileSource(UniqueFd fd, uint64_t size, std::string path)
        : m_fd(std::move(fd)), m_size(size), m_path(std::move(path)) {}
    UniqueFd m_fd;
    uint64_t m_size;
    std::string m_path;
};

class MemorySource final : public ByteSource {
public:
    // `bytes` must outlive this source.
    MemorySource(std::span<const uint8_t> bytes, std::string name)
        : m_bytes(bytes), m_name(std::move(name)) {}
    uint64_t size() const override { return m_bytes.size(); }
    Status read_at(uint64_t offset, std::span<uint8_t> out) const override;
    const std::string& name() const override { return m_name; }

private:
    std::span<const uint8_t> m_bytes;
    std::string m_name;
};

}  // namespace msb::loader
