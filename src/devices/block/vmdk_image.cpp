// VMDK descriptor parsing and reads through flat and zero extents. Written here rather than
// taken from a library: Debian has no C/C++ VMDK reader apart from qemu's block layer, and the
// read-only flat subset is a text parser plus an extent table.
#include "devices/block/vmdk_image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_map>

namespace msb::devices {
namespace {

constexpr uint64_t kSectorBytes = 512;
// Every byte offset, in the disk and in an extent file, must fit in off_t.
constexpr uint64_t kMaxBytes = uint64_t(std::numeric_limits<int64_t>::max());
constexpr uint64_t kMaxSectors = kMaxBytes / kSectorBytes;

std::string convert_hint(const std::string& path) {
    return "convert it with `qemu-img convert -O qcow2 " + path + " disk.qcow2`";
}

Error sparse_error(const std::string& path, std::string_view what) {
    return Error("disk image " + path + ": sparse VMDK (" + std::string(what) +
                     ") is not supported; " + convert_hint(path),
                 ENOTSUP);
}

Error raw_device_error(const std::string& path, std::string_view what) {
    return Error("disk image " + path + ": raw device VMDK (" + std::string(what) +
                     ") is not supported; attach the device or file it maps with format raw",
                 ENOTSUP);
}

Error line_error(const std::string& path, size_t line, std::string_view what) {
    return Error("disk image " + path + ": VMDK descriptor line " + std::to_string(line) + ": " +
                     std::string(what) + "; fix that line of the descriptor",
                 EINVAL);
}

std::string_view trim(std::string_view s) {
    size_t begin = s.find_first_not_of(" \t\r");
    if (begin == std::string_view::npos) return {};
    size_t end = s.find_last_not_of(" \t\r");
    return s.substr(begin, end - begin + 1);
}

std::optional<uint64_t> parse_u64(std::string_view s) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return value;
}

// A cursor over one extent line: words separated by blanks, and one quoted file name.
class Tokens {
public:
    explicit Tokens(std::string_view line) : m_rest(line) {}

    bool at_end() {
        skip_blanks();
        return m_rest.empty();
    }
    std::string_view word() {
        skip_blanks();
        size_t n = std::min(m_rest.find_first_of(" \t"), m_rest.size());
        std::string_view w = m_rest.substr(0, n);
        m_rest.remove_prefix(n);
        return w;
    }
    // The text between a pair of double quotes; nullopt when the next word is not quoted or
    // the closing quote is missing. VMDK file names have no escapes.
    std::optional<std::string_view> quoted() {
        skip_blanks();
        if (m_rest.empty() || m_rest.front() != '"') return std::nullopt;
        size_t close = m_rest.find('"', 1);
        if (close == std::string_view::npos) return std::nullopt;
        std::string_view q = m_rest.substr(1, close - 1);
        m_rest.remove_prefix(close + 1);
        return q;
    }

private:
    void skip_blanks() {
        size_t n = std::min(m_rest.find_first_not_of(" \t"), m_rest.size());
        m_rest.remove_prefix(n);
    }

    std::string_view m_rest;
};

// `RW|RDONLY|NOACCESS <sectors> <type> ["<file>" [<offset>]]`. A sparse extent is not an error
// here: its type goes to `sparse`, for the caller to refuse once it knows the createType.
Result<VmdkExtent> parse_extent(std::string_view line, const std::string& path, size_t line_no,
                                std::string& sparse) {
    Tokens tokens(line);
    std::string_view access = tokens.word();
    if (access == "NOACCESS") return line_error(path, line_no, "NOACCESS extents cannot be read");
    std::string_view size_word = tokens.word();
    std::optional<uint64_t> sectors = parse_u64(size_word);
    if (!sectors || *sectors == 0 || *sectors > kMaxSectors)
        return line_error(path, line_no,
                          "extent size \"" + std::string(size_word) +
                              "\" is not a sector count from 1 to 2^54 - 1");
    std::string type(tokens.word());
    VmdkExtent extent{VmdkExtent::Kind::Flat, *sectors, {}, 0};
    if (type == "ZERO") {
        extent.kind = VmdkExtent::Kind::Zero;
    } else if (type == "FLAT" || type == "VMFS") {
        std::optional<std::string_view> file = tokens.quoted();
        if (!file || file->empty())
            return line_error(path, line_no, type + " extent needs a quoted file name");
        extent.file = std::string(*file);
        if (!tokens.at_end()) {
            std::string_view offset_word = tokens.word();
            std::optional<uint64_t> offset = parse_u64(offset_word);
            if (!offset || *offset > kMaxSectors - *sectors)
                return line_error(path, line_no,
                                  "extent offset \"" + std::string(offset_word) +
                                      "\" is not a sector number, or offset + size reaches 2^54");
            extent.offset_sectors = *offset;
        }
    } else if (type == "SPARSE" || type == "VMFSSPARSE" || type == "SESPARSE") {
        sparse = type;
        return extent;
    } else if (type == "VMFSRDM" || type == "VMFSRAW") {
        return raw_device_error(path, type + " extent");
    } else {
        return line_error(path, line_no,
                          "unknown extent type \"" + type + "\" (FLAT, VMFS and ZERO are read)");
    }
    if (!tokens.at_end()) return line_error(path, line_no, "unexpected text after the extent");
    return extent;
}

bool is_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.';
    });
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

// Reads the whole descriptor file, refusing sparse files by their magic and anything longer
// than kMaxDescriptorBytes before holding more than that in memory.
Result<std::string> read_descriptor(const std::string& path) {
    // O_NONBLOCK: a FIFO at `path` must not block open(); it is refused below.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return Error::from_errno("open disk image " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) return Error::from_errno("stat disk image " + path);
    if (!S_ISREG(st.st_mode))
        return Error("disk image " + path +
                         " is not a regular file; a VMDK image is opened through its descriptor "
                         "file (the small .vmdk next to the -flat.vmdk extents)",
                     EINVAL);
    std::string text(kMaxDescriptorBytes + 1, '\0');
    const size_t done = TRY(
        pread_up_to(fd.get(), 0, std::span(reinterpret_cast<uint8_t*>(text.data()), text.size()),
                    "read disk image " + path));
    text.resize(done);
    // VMDK 1.1 §"Hosted Sparse Extent Header" ("KDMV") and §"ESX Server Sparse Extent Header"
    // ("COWD"): the magic numbers of the binary sparse formats, little-endian.
    if (text.starts_with("KDMV")) return sparse_error(path, "monolithicSparse/streamOptimized");
    if (text.starts_with("COWD")) return sparse_error(path, "vmfsSparse");
    if (done > kMaxDescriptorBytes)
        return Error("disk image " + path + ": " + std::to_string(st.st_size) +
                         " bytes is too large for a VMDK descriptor (at most " +
                         std::to_string(kMaxDescriptorBytes / 1024) +
                         " KiB); open the descriptor .vmdk, or attach a flat extent file "
                         "itself with format raw",
                     EINVAL);
    return text;
}

struct OpenedFile {
    UniqueFd fd;
    uint64_t size;
};

Result<OpenedFile> open_extent_file(const std::string& image, const std::string& file) {
    // O_NONBLOCK so that a FIFO named by a hostile descriptor cannot block open(); cleared
    // once the file is known to be a regular file or block device.
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) {
        int code = errno;
        return Error(Error::from_errno("disk image " + image + ": open VMDK extent " + file, code)
                             .message() +
                         "; the extent files named in the descriptor must exist (relative "
                         "names are looked up in the descriptor's folder)",
                     code);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0)
        return Error::from_errno("disk image " + image + ": stat VMDK extent " + file);
    uint64_t size = uint64_t(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd.get(), BLKGETSIZE64, &size) < 0)
        return Error::from_errno("disk image " + image + ": size of VMDK extent " + file);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return Error("disk image " + image + ": VMDK extent " + file +
                         " is not a regular file or block device; fix the descriptor",
                     EINVAL);
    TRY(set_nonblocking(fd.get(), false));
    return OpenedFile{std::move(fd), size};
}

Status pread_all(int fd, uint64_t offset, std::span<uint8_t> out, const std::string& image,
                 const std::string& file) {
    const size_t n =
        TRY(pread_up_to(fd, offset, out, "read disk image " + image + ": extent " + file));
    if (n < out.size())
        return Error("read disk image " + image + ": extent " + file +
                         " ends early (truncated after the image was opened?)",
                     EIO);
    return {};
}

}  // namespace

Result<VmdkDescriptor> parse_vmdk_descriptor(std::string_view text, const std::string& path) {
    if (text.size() > kMaxDescriptorBytes)
        return Error("disk image " + path + ": too large for a VMDK descriptor", EINVAL);
    // qemu and VMware pad a descriptor with NULs to a sector; a NUL inside the text is binary.
    size_t last = text.find_last_not_of('\0');
    text = last == std::string_view::npos ? std::string_view() : text.substr(0, last + 1);
    if (text.find('\0') != std::string_view::npos)
        return Error("disk image " + path +
                         ": NUL byte in the VMDK descriptor, so it is not a text descriptor; "
                         "open the descriptor .vmdk, or attach a flat extent file with format raw",
                     EINVAL);
    if (!text.starts_with("# Disk DescriptorFile"))
        return Error("disk image " + path +
                         ": not a VMDK descriptor (it does not start with "
                         "\"# Disk DescriptorFile\"); check the image format, or open the "
                         "descriptor .vmdk rather than an extent",
                     EINVAL);

    VmdkDescriptor descriptor;
    std::string parent_hint;
    std::string sparse_extent;
    bool has_parent = false;
    size_t line_no = 0;
    for (size_t start = 0; start < text.size();) {
        size_t end = std::min(text.find('\n', start), text.size());
        std::string_view line = trim(text.substr(start, end - start));
        start = end + 1;
        ++line_no;
        if (line.empty() || line.front() == '#') continue;

        std::string_view first = line.substr(0, std::min(line.find_first_of(" \t"), line.size()));
        if (first == "RW" || first == "RDONLY" || first == "NOACCESS") {
            if (descriptor.extents.size() == kMaxExtents)
                return line_error(path, line_no,
                                  "more than " + std::to_string(kMaxExtents) + " extents");
            descriptor.extents.push_back(TRY(parse_extent(line, path, line_no, sparse_extent)));
            continue;
        }

        size_t eq = line.find('=');
        std::string_view key = eq == std::string_view::npos ? line : trim(line.substr(0, eq));
        if (eq == std::string_view::npos || !is_key(key))
            return line_error(path, line_no,
                              "not a comment, `key = value` or extent line (is this a VMDK "
                              "descriptor?)");
        std::string_view value = trim(line.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
            value = value.substr(1, value.size() - 2);
        if (key == "version") {
            if (value != "1" && value != "2" && value != "3")
                return line_error(path, line_no,
                                  "descriptor version " + std::string(value) +
                                      " is not supported (1, 2 and 3 are)");
        } else if (key == "createType") {
            descriptor.create_type = std::string(value);
        } else if (key == "parentCID") {
            has_parent |= !equals_ignoring_case(value, "ffffffff");
        } else if (key == "parentFileNameHint") {
            has_parent = true;
            parent_hint = std::string(value);
        }
    }

    const std::string& type = descriptor.create_type;
    if (type.empty())
        return Error("disk image " + path +
                         ": the VMDK descriptor has no createType line; add "
                         "createType=\"monolithicFlat\" if its extents are FLAT",
                     EINVAL);
    if (type == "monolithicSparse" || type == "twoGbMaxExtentSparse" || type == "streamOptimized" ||
        type == "vmfsSparse" || type == "seSparse")
        return sparse_error(path, type);
    if (type == "fullDevice" || type == "partitionedDevice" || type == "vmfsRaw" ||
        type == "vmfsRawDeviceMap" || type == "vmfsPassthroughRawDeviceMap")
        return raw_device_error(path, type);
    if (!sparse_extent.empty()) return sparse_error(path, sparse_extent + " extent");
    if (type != "monolithicFlat" && type != "twoGbMaxExtentFlat" && type != "vmfs")
        return Error("disk image " + path + ": VMDK createType \"" + type +
                         "\" is not supported (monolithicFlat, twoGbMaxExtentFlat and vmfs "
                         "are); " +
                         convert_hint(path),
                     ENOTSUP);
    if (has_parent)
        return Error("disk image " + path + ": VMDK is a delta of a parent disk" +
                         (parent_hint.empty() ? "" : " (" + parent_hint + ")") +
                         ", which is not supported; " + convert_hint(path) +
                         " to flatten the chain",
                     ENOTSUP);
    if (descriptor.extents.empty())
        return Error("disk image " + path +
                         ": the VMDK descriptor lists no extents; add a line such as "
                         "`RW <sectors> FLAT \"<file>\" 0`",
                     EINVAL);
    uint64_t total = 0;
    for (const VmdkExtent& extent : descriptor.extents) {
        if (extent.sectors > kMaxSectors - total)
            return Error("disk image " + path +
                             ": the VMDK extents add up to 2^54 sectors or more; fix the "
                             "extent sizes in the descriptor",
                         EINVAL);
        total += extent.sectors;
    }
    return descriptor;
}

Result<std::unique_ptr<VmdkDiskImage>> VmdkDiskImage::open(const std::string& path) {
    std::string text = TRY(read_descriptor(path));
    VmdkDescriptor descriptor = TRY(parse_vmdk_descriptor(text, path));

    size_t slash = path.rfind('/');
    std::string folder = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    std::vector<File> files;
    std::vector<uint64_t> file_sizes;
    std::unordered_map<std::string, int> file_index;
    std::vector<Extent> extents;
    uint64_t start = 0;
    for (const VmdkExtent& e : descriptor.extents) {
        // parse_vmdk_descriptor bounded offset + sectors and the sum of sectors to kMaxSectors.
        Extent extent{start, e.sectors * kSectorBytes, -1, e.offset_sectors * kSectorBytes};
        if (e.kind == VmdkExtent::Kind::Flat) {
            std::string file = e.file.front() == '/' ? e.file : folder + e.file;
            auto [it, inserted] = file_index.try_emplace(file, int(files.size()));
            if (inserted) {
                OpenedFile opened = TRY(open_extent_file(path, file));
                files.push_back({file, std::move(opened.fd)});
                file_sizes.push_back(opened.size);
            }
            extent.file = it->second;
            uint64_t needed = extent.file_offset + extent.bytes;
            uint64_t have = file_sizes[size_t(extent.file)];
            if (have < needed)
                return Error("disk image " + path + ": VMDK extent " + file + " holds " +
                                 std::to_string(have) + " bytes but the descriptor needs " +
                                 std::to_string(needed) +
                                 " ((offset + sectors) x 512); the file is truncated or the "
                                 "descriptor is wrong",
                             EINVAL);
        }
        extents.push_back(extent);
        start += extent.bytes;
    }
    return std::unique_ptr<VmdkDiskImage>(
        new VmdkDiskImage(path, std::move(files), std::move(extents), start));
}

Status VmdkDiskImage::read_at(uint64_t offset, std::span<uint8_t> out) {
    if (offset > m_size || out.size() > m_size - offset)
        return Error("read disk image " + m_path + ": range past the end of the disk", EINVAL);
    if (out.empty()) return {};
    // The last extent that starts at or before `offset`; the first starts at 0.
    auto it = std::upper_bound(m_extents.begin(), m_extents.end(), offset,
                               [](uint64_t o, const Extent& e) { return o < e.start; });
    --it;
    size_t done = 0;
    for (; done < out.size(); ++it) {
        uint64_t within = offset + done - it->start;
        size_t n = size_t(std::min<uint64_t>(out.size() - done, it->bytes - within));
        std::span<uint8_t> chunk = out.subspan(done, n);
        if (it->file < 0) {
            std::fill(chunk.begin(), chunk.end(), uint8_t{0});
        } else {
            const File& file = m_files[size_t(it->file)];
            TRY(pread_all(file.fd.get(), it->file_offset + within, chunk, m_path, file.path));
        }
        done += n;
    }
    return {};
}

Status VmdkDiskImage::write_at(uint64_t, std::span<const uint8_t>) {
    return Error("write disk image " + m_path + ": VMDK images are read-only; " +
                     convert_hint(m_path) + " to write to it",
                 EROFS);
}

}  // namespace msb::devices
