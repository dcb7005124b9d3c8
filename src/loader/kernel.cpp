// ELF vmlinux and bzImage parsing and loading.
#include "loader/kernel.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace msb::loader {

namespace {

constexpr uint16_t kMaxProgramHeaders = 64;
constexpr uint64_t kOneMiB = 0x100000;
constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint32_t kHdrS = 0x53726448;

bool add_overflows(uint64_t a, uint64_t b) { return a + b < a; }

}  // namespace

Result<KernelImage> parse_elf(const ByteSource& source) {
    const std::string& name = source.name();
    Elf64_Ehdr eh;
    if (source.size() < sizeof eh)
        return Error(name + ": not a kernel (too short for an ELF header)");
    TRY(source.read_at(0, {reinterpret_cast<uint8_t*>(&eh), sizeof eh}));
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Error(name + ": not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Error(name + ": not a 64-bit ELF kernel");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Error(name + ": not a little-endian ELF kernel");
    if (eh.e_machine != EM_X86_64) return Error(name + ": ELF machine is not x86-64");
    if (eh.e_type != ET_EXEC) return Error(name + ": ELF file is not an executable");
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        return Error(name + ": unexpected ELF program header size");
    if (eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders)
        return Error(fmt::format("{}: {} ELF program headers", name, eh.e_phnum));

    std::vector<Elf64_Phdr> headers(eh.e_phnum);
    TRY(source.read_at(eh.e_phoff, {reinterpret_cast<uint8_t*>(headers.data()),
                                    headers.size() * sizeof(Elf64_Phdr)}));

    KernelImage image{KernelFormat::Elf,    eh.e_entry, {}, std::nullopt,
                      kDefaultCmdlineLimit, 0x7fffffff, 0};
    bool entry_inside = false;
    for (const auto& ph : headers) {
        if (ph.p_type != PT_LOAD) continue;
        if (ph.p_filesz > ph.p_memsz)
            return Error(fmt::format("{}: segment at {:#x} has file size above memory size", name,
                                     ph.p_paddr));
        if (add_overflows(ph.p_offset, ph.p_filesz) || ph.p_offset + ph.p_filesz > source.size())
            return Error(fmt::format("{}: segment at {:#x} runs past the end of the file", name,
                                     ph.p_paddr));
        if (add_overflows(ph.p_paddr, ph.p_memsz))
            return Error(
                fmt::format("{}: segment at {:#x} wraps the address space", name, ph.p_paddr));
        image.segments.push_back({ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_memsz});
        image.end = std::max(image.end, ph.p_paddr + ph.p_memsz);
        if (eh.e_entry >= ph.p_paddr && eh.e_entry < ph.p_paddr + ph.p_memsz) entry_inside = true;
    }
    if (image.segments.empty()) return Error(name + ": ELF file has no loadable segment");
    // Segments that share guest memory would depend on load order; no kernel has them.
    std::vector<LoadSegment> sorted = image.segments;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.guest_address < b.guest_address; });
    for (size_t i = 1; i < sorted.size(); ++i)
        if (sorted[i].guest_address < sorted[i - 1].guest_address + sorted[i - 1].memory_size)
            return Error(fmt::format("{}: segments at {:#x} and {:#x} overlap", name,
                                     sorted[i - 1].guest_address, sorted[i].guest_address));
    if (!entry_inside)
        return Error(
            fmt::format("{}: entry point {:#x} is outside every segment", name, eh.e_entry));
    return image;
}

Result<KernelImage> parse_bzimage(const ByteSource& source) {
    const std::string& name = source.name();
    // The setup header runs from 0x1f1 to 0x202 + the byte at 0x201 (boot.rst "Details of
    // header fields"); read the whole struct when the file has it.
    constexpr uint64_t kMinimum = 0x1f1 + sizeof(setup_header);
    if (source.size() < kMinimum)
        return Error(name + ": not a kernel (too short for a setup header)");
    setup_header header;
    TRY(source.read_at(kSetupHeaderOffset, {reinterpret_cast<uint8_t*>(&header), sizeof header}));
    if (header.boot_flag != 0xaa55 || header.header != kHdrS)
        return Error(name + ": not a kernel (no \"HdrS\" setup header)");
    if (header.version < kMinBootProtocol)
        return Error(fmt::format("{}: boot protocol {}.{:02} is older than 2.12", name,
                                 header.version >> 8, header.version & 0xff));
    if (!(header.xloadflags & XLF_KERNEL_64))
        return Error(name + ": bzImage has no 64-bit entry point");
    if (!(header.loadflags & LOADED_HIGH))
        return Error(name + ": bzImage is not a high-loaded kernel");
    // Zero bytes past the header's declared end: they are not header fields in this version.
    uint64_t header_end =
        0x202 + static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(&header)[0x201 - 0x1f1]);
    if (header_end < kSetupHeaderOffset + sizeof header) {
        auto* bytes = reinterpret_cast<uint8_t*>(&header);
        std::memset(bytes + (header_end - kSetupHeaderOffset), 0,
                    kSetupHeaderOffset + sizeof header - header_end);
    }

    uint64_t setup_sectors = header.setup_sects == 0 ? 4 : header.setup_sects;
    uint64_t kernel_offset = (setup_sectors + 1) * 512;
    if (kernel_offset >= source.size())
        return Error(name + ": bzImage has no protected-mode kernel");
    uint64_t kernel_size = source.size() - kernel_offset;
    uint64_t footprint = std::max<uint64_t>(kernel_size, header.init_size);

    KernelImage image{KernelFormat::BzImage,
                      kBzImageLoadAddress + 0x200,
                      {{kernel_offset, kernel_size, kBzImageLoadAddress, kernel_size}},
                      header,
                      header.cmdline_size ? header.cmdline_size : kDefaultCmdlineLimit,
                      header.initrd_addr_max ? header.initrd_addr_max : 0x37ffffff,
                      kBzImageLoadAddress + footprint};
    return image;
}

Result<KernelImage> parse_kernel(const ByteSource& source) {
    uint8_t magic[4] = {};
    if (source.size() >= sizeof magic) TRY(source.read_at(0, magic));
    if (std::memcmp(magic, ELFMAG, SELFMAG) == 0) return parse_elf(source);
    return parse_bzimage(source);
}

Status load_kernel(kvm::GuestMemory& memory, const ByteSource& source,
                   const KernelImage& image) {
    for (const auto& s : image.segments) {
        if (s.guest_address < kOneMiB)
            return Error(
                fmt::format("{}: segment at {:#x} overlaps the boot structures below 1 MiB",
                            source.name(), s.guest_address));
        if (!memory.contains(s.guest_address, s.memory_size))
            return Error(fmt::format("{}: segment {:#x}+{:#x} is outside guest RAM", source.name(),
                                     s.guest_address, s.memory_size));
        TRY(source.load_into(memory, s.guest_address, s.file_offset, s.file_size));
        TRY(memory.zero(s.guest_address + s.file_size, s.memory_size - s.file_size));
    }
    if (image.end > 0 && !memory.contains(image.end - 1, 1))
        return Error(fmt::format("{}: kernel needs memory up to {:#x}, beyond guest RAM",
                                 source.name(), image.end));
    return {};
}

}  // namespace msb::loader
