// ByteSource: random-access reads from a kernel or initramfs image, so parsers work the same on
// a file (pread, no whole-file copy) and on bytes in memory (tests, generated images).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::loader {

class ByteSource {
public:
    virtual ~ByteSource() = default;
    virtual uint64_t size() const = 0;
    // Reads exactly out.size() bytes at `offset`; fails (naming the source) when they are not
    // all there.
    virtual Status read_at(uint64_t offset, std::span<uint8_t> out) const = 0;
    virtual const std::string& name() const = 0;
};

class FileSource final : public ByteSource {
public:
    static Result<FileSource> open(const std::string& path);
    uint64_t size() const override { return m_size; }
    Status read_at(uint64_t offset, std::span<uint8_t> out) const override;
    const std::string& name() const override { return m_path; }

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
