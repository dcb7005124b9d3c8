// newc cpio writer.
#include "loader/cpio.h"

#include <sys/stat.h>

#include <fmt/format.h>

namespace msb::loader {

namespace {

constexpr uint32_t kPermissionMask = 07777;

void pad4(std::vector<uint8_t>& out) {
    while (out.size() % 4) out.push_back(0);
}

Result<std::string> clean_name(std::string_view name) {
    while (!name.empty() && name.front() == '/') name.remove_prefix(1);
    if (name.empty()) return Error("cpio: empty entry name");
    if (name.find('\0') != std::string_view::npos) return Error("cpio: entry name contains NUL");
    size_t start = 0;
    while (start <= name.size()) {
        size_t end = name.find('/', start);
        if (end == std::string_view::npos) end = name.size();
        std::string_view part = name.substr(start, end - start);
        if (part.empty() || part == "..")
            return Error(fmt::format("cpio: invalid entry name \"{}\"", name));
        start = end + 1;
    }
    return std::string(name);
}

}  // namespace

Status CpioWriter::add(std::string_view raw_name, uint32_t mode, std::span<const uint8_t> data,
                       CpioOwner owner) {
    std::string name = TRY(clean_name(raw_name));
    if (data.size() > UINT32_MAX) return Error("cpio: entry " + name + " is larger than 4 GiB");
    // c_ino c_mode c_uid c_gid c_nlink c_mtime c_filesize c_devmajor c_devminor c_rdevmajor
    // c_rdevminor c_namesize c_check, each eight hex digits.
    std::string header = fmt::format(
        "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        m_next_inode++, mode, owner.uid, owner.gid, S_ISDIR(mode) ? 2 : 1, 0, data.size(), 0, 0, 0,
        0, name.size() + 1, 0);
    m_out.insert(m_out.end(), header.begin(), header.end());
    m_out.insert(m_out.end(), name.begin(), name.end());
    m_out.push_back(0);
    pad4(m_out);
    m_out.insert(m_out.end(), data.begin(), data.end());
    pad4(m_out);
    return {};
}

Status CpioWriter::add_directory(std::string_view name, uint32_t mode, CpioOwner owner) {
    return add(name, S_IFDIR | (mode & kPermissionMask), {}, owner);
}

Status CpioWriter::add_file(std::string_view name, std::span<const uint8_t> data, uint32_t mode,
                            CpioOwner owner) {
    return add(name, S_IFREG | (mode & kPermissionMask), data, owner);
}

Status CpioWriter::add_file(std::string_view name, std::string_view text, uint32_t mode,
                            CpioOwner owner) {
    return add_file(name, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, mode,
                    owner);
}

Status CpioWriter::add_symlink(std::string_view name, std::string_view target, CpioOwner owner) {
    if (target.empty() || target.find('\0') != std::string_view::npos)
        return Error("cpio: invalid symlink target for " + std::string(name));
    return add(name, S_IFLNK | 0777,
               {reinterpret_cast<const uint8_t*>(target.data()), target.size()}, owner);
}

std::vector<uint8_t> CpioWriter::finish() {
    m_next_inode = 0;  // the trailer conventionally has inode 0
    MUST(add("TRAILER!!!", 0, {}, {}));
    m_next_inode = 1;
    std::vector<uint8_t> out = std::move(m_out);
    m_out.clear();
    return out;
}

}  // namespace msb::loader
