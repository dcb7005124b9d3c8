// Unit tests for kernel parsing, initramfs placement, the command line and the cpio writer.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "loader/cmdline.h"
#include "loader/cpio.h"
#include "loader/initrd.h"
#include "loader/kernel.h"

namespace msb::loader {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// A minimal valid x86-64 ELF executable with one PT_LOAD segment of `payload` at 16 MiB.
std::vector<uint8_t> make_elf(const std::vector<uint8_t>& payload, uint64_t paddr = 0x1000000,
                              uint64_t memsz = 0) {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = paddr;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = sizeof eh + sizeof ph;
    ph.p_paddr = paddr;
    ph.p_vaddr = paddr;
    ph.p_filesz = payload.size();
    ph.p_memsz = memsz ? memsz : payload.size();
    std::vector<uint8_t> out(sizeof eh + sizeof ph + payload.size());
    std::memcpy(out.data(), &eh, sizeof eh);
    std::memcpy(out.data() + sizeof eh, &ph, sizeof ph);
    if (!payload.empty())
        std::memcpy(out.data() + sizeof eh + sizeof ph, payload.data(), payload.size());
    return out;
}

Elf64_Phdr& phdr_of(std::vector<uint8_t>& elf) {
    return *reinterpret_cast<Elf64_Phdr*>(elf.data() + sizeof(Elf64_Ehdr));
}
Elf64_Ehdr& ehdr_of(std::vector<uint8_t>& elf) {
    return *reinterpret_cast<Elf64_Ehdr*>(elf.data());
}

TEST(ElfKernel, LoadsSegmentsAtTheirPhysicalAddressAndZeroesTheTail) {
    auto elf = make_elf({1, 2, 3, 4}, 0x1000000, 0x2000);
    MemorySource source(elf, "vmlinux");
    auto image = MUST(parse_kernel(source));
    EXPECT_EQ(image.format, KernelFormat::Elf);
    EXPECT_EQ(image.entry, 0x1000000u);
    EXPECT_EQ(image.end, 0x1002000u);
    EXPECT_EQ(image.cmdline_limit, kDefaultCmdlineLimit);
    auto mem = MUST(kvm::GuestMemory::create({{0, 32 * kMiB}}));
    ASSERT_TRUE(mem.write_obj<uint32_t>(0x1000004, 0xdeadbeef).ok());
    ASSERT_TRUE(load_kernel(mem, source, image).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint32_t>(0x1000000)), 0x04030201u);
    EXPECT_EQ(MUST(mem.read_obj<uint32_t>(0x1000004)), 0u);
}

std::filesystem::path write_temp_file(const std::string& name, const std::vector<uint8_t>& bytes) {
    auto path = std::filesystem::temp_directory_path() /
                ("msb-loader-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
}

// Bytes that differ from page to page and from their neighbours.
std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
    std::vector<uint8_t> out(size);
    for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * 7 + (i >> 12) + seed);
    return out;
}

std::vector<uint8_t> guest_bytes(const kvm::GuestMemory& mem, uint64_t gpa, size_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(mem.read(gpa, out).ok());
    return out;
}

TEST(ElfKernel, AFileSegmentLinedUpWithPagesIsMappedAndReadsLikeACopy) {
    // Segment at file offset 0x1010 → guest 0x1000010: a partial first page, two whole pages
    // (mapped from the file), a partial last page, then a zeroed tail.
    auto payload = pattern(3 * 4096, 5);
    auto elf = make_elf({}, 0x1000010, payload.size() + 0x3000);
    elf.resize(0x1010);
    elf.insert(elf.end(), payload.begin(), payload.end());
    elf.resize(elf.size() + 4096, 0xee);  // bytes after the segment must not reach the guest
    phdr_of(elf).p_offset = 0x1010;
    phdr_of(elf).p_filesz = payload.size();
    auto path = write_temp_file("vmlinux", elf);
    auto source = MUST(FileSource::open(path.string()));
    auto image = MUST(parse_kernel(source));
    auto mem = MUST(kvm::GuestMemory::create({{0, 32 * kMiB}}));
    // Whatever was in guest memory before does not survive: not in the file part, not in the
    // tail.
    ASSERT_TRUE(mem.write(0x1000000, std::vector<uint8_t>(0x7000, 0xff)).ok());
    ASSERT_TRUE(load_kernel(mem, source, image).ok());
    EXPECT_EQ(guest_bytes(mem, 0x1000010, payload.size()), payload);
    EXPECT_EQ(guest_bytes(mem, 0x1000010 + payload.size(), 0x3000), std::vector<uint8_t>(0x3000));
    // The whole pages really are the file's, not a copy.
    std::ifstream maps("/proc/self/maps");
    std::string maps_text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    EXPECT_NE(maps_text.find(path.string()), std::string::npos) << maps_text;
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x100000f)), 0xff);  // outside the segment: untouched
    // The guest owns its copy: writing it leaves the file alone.
    ASSERT_TRUE(mem.write_obj<uint32_t>(0x1001000, 0xdeadbeef).ok());
    auto again = MUST(FileSource::open(path.string()));
    std::vector<uint8_t> file_bytes(4);
    ASSERT_TRUE(again.read_at(0x2000, file_bytes).ok());
    EXPECT_EQ(file_bytes, std::vector<uint8_t>(payload.begin() + 0xff0, payload.begin() + 0xff4));
    std::filesystem::remove(path);
}

TEST(ElfKernel, RejectsSegmentsThatShareGuestMemory) {
    auto elf = make_elf(std::vector<uint8_t>(64, 1), 0x1000000, 0x2000);
    // Two program headers appended to the file: the original and one starting inside it.
    Elf64_Phdr headers[2] = {phdr_of(elf), phdr_of(elf)};
    headers[1].p_paddr = 0x1001000;  // inside the first segment's 0x2000 bytes
    ehdr_of(elf).e_phnum = 2;
    ehdr_of(elf).e_phoff = elf.size();
    auto* raw = reinterpret_cast<const uint8_t*>(headers);
    elf.insert(elf.end(), raw, raw + sizeof headers);
    MemorySource source(elf, "vmlinux");
    auto result = parse_kernel(source);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.error().message().find("overlap"), std::string::npos)
        << result.error().message();
    // Moved clear of the first, the same second segment is fine.
    headers[1].p_paddr = 0x1002000;
    std::memcpy(elf.data() + ehdr_of(elf).e_phoff, headers, sizeof headers);
    EXPECT_TRUE(parse_kernel(source).ok());
}

TEST(ElfKernel, RejectsMalformedFiles) {
    auto good = make_elf({1, 2, 3, 4});
    {
        std::vector<uint8_t> truncated(good.begin(), good.begin() + 20);
        EXPECT_FALSE(parse_kernel(MemorySource(truncated, "t")).ok());
    }
    {
        auto bad = good;
        bad[1] = 'X';  // wrong magic: falls to the bzImage parser, which rejects it too
        auto r = parse_kernel(MemorySource(bad, "k"));
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message().find("not a kernel"), std::string::npos)
            << r.error().message();
    }
    {
        auto bad = good;
        bad[EI_CLASS] = ELFCLASS32;
        EXPECT_FALSE(parse_elf(MemorySource(bad, "k")).ok());
    }
    {
        auto bad = good;
        ehdr_of(bad).e_machine = EM_AARCH64;
        EXPECT_FALSE(parse_elf(MemorySource(bad, "k")).ok());
    }
    {
        auto bad = good;
        phdr_of(bad).p_filesz = phdr_of(bad).p_memsz = 4096;  // segment past EOF
        auto r = parse_elf(MemorySource(bad, "k"));
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message().find("past the end"), std::string::npos);
    }
    {
        auto bad = good;
        phdr_of(bad).p_offset = UINT64_MAX - 1;  // offset + size wraps
        EXPECT_FALSE(parse_elf(MemorySource(bad, "k")).ok());
    }
    {
        auto bad = good;
        ehdr_of(bad).e_phnum = 1000;
        EXPECT_FALSE(parse_elf(MemorySource(bad, "k")).ok());
    }
    {
        auto bad = good;
        ehdr_of(bad).e_entry = 0x5000000;  // entry outside every segment
        EXPECT_FALSE(parse_elf(MemorySource(bad, "k")).ok());
    }
}

TEST(ElfKernel, RejectsSegmentsOutsideGuestRam) {
    auto mem = MUST(kvm::GuestMemory::create({{0, 32 * kMiB}}));
    auto high = make_elf({1}, 0x4000000);  // 64 MiB: beyond this 32 MiB guest
    MemorySource high_source(high, "k");
    auto image = MUST(parse_elf(high_source));
    EXPECT_FALSE(load_kernel(mem, high_source, image).ok());
    auto low = make_elf({1}, 0x7000);  // over the zero page
    MemorySource low_source(low, "k");
    image = MUST(parse_elf(low_source));
    EXPECT_FALSE(load_kernel(mem, low_source, image).ok());
}

std::vector<uint8_t> make_bzimage(uint16_t version = 0x020f, size_t kernel_bytes = 4096) {
    const uint8_t setup_sects = 4;
    std::vector<uint8_t> out(size_t{setup_sects + 1u} * 512 + kernel_bytes, 0x90);
    setup_header hdr{};
    hdr.setup_sects = setup_sects;
    hdr.boot_flag = 0xaa55;
    hdr.jump = 0x66eb;  // short jump; byte 0x201 = 0x66 → header ends at 0x268
    hdr.header = 0x53726448;
    hdr.version = version;
    hdr.loadflags = LOADED_HIGH;
    hdr.xloadflags = XLF_KERNEL_64;
    hdr.cmdline_size = 255;
    hdr.initrd_addr_max = 0x7fffffff;
    hdr.init_size = 0x10000;
    std::memcpy(out.data() + 0x1f1, &hdr, sizeof hdr);
    return out;
}

TEST(BzImageKernel, ParsesTheSetupHeaderAndUsesThe64BitEntry) {
    auto bz = make_bzimage();
    MemorySource source(bz, "bzImage");
    auto image = MUST(parse_kernel(source));
    EXPECT_EQ(image.format, KernelFormat::BzImage);
    EXPECT_EQ(image.entry, 0x100200u);
    ASSERT_EQ(image.segments.size(), 1u);
    EXPECT_EQ(image.segments[0].file_offset, 5u * 512);
    EXPECT_EQ(image.segments[0].guest_address, 0x100000u);
    EXPECT_EQ(image.cmdline_limit, 255u);
    EXPECT_EQ(image.end, 0x110000u);
    ASSERT_TRUE(image.header.has_value());
    EXPECT_EQ(image.header->version, 0x020f);
    auto mem = MUST(kvm::GuestMemory::create({{0, 16 * kMiB}}));
    ASSERT_TRUE(load_kernel(mem, source, image).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x100000)), 0x90);
}

TEST(BzImageKernel, RejectsOldProtocolsMissingMagicAndTruncation) {
    auto old = make_bzimage(0x020a);
    EXPECT_FALSE(parse_bzimage(MemorySource(old, "k")).ok());
    auto no_magic = make_bzimage();
    no_magic[0x202] = 'X';
    EXPECT_FALSE(parse_bzimage(MemorySource(no_magic, "k")).ok());
    auto no_64 = make_bzimage();
    reinterpret_cast<setup_header*>(no_64.data() + 0x1f1)->xloadflags = 0;
    EXPECT_FALSE(parse_bzimage(MemorySource(no_64, "k")).ok());
    auto good = make_bzimage();
    std::vector<uint8_t> truncated(good.begin(), good.begin() + 0x200);
    EXPECT_FALSE(parse_bzimage(MemorySource(truncated, "k")).ok());
    std::vector<uint8_t> setup_only(good.begin(), good.begin() + 5L * 512);
    EXPECT_FALSE(parse_bzimage(MemorySource(setup_only, "k")).ok());
    std::vector<uint8_t> empty;
    EXPECT_FALSE(parse_kernel(MemorySource(empty, "k")).ok());
}

TEST(CommandLine, JoinsPartsWithSingleSpaces) {
    CommandLine line;
    ASSERT_TRUE(line.append("console=ttyS0 panic=-1").ok());
    ASSERT_TRUE(line.append("  ").ok());
    ASSERT_TRUE(line.append(" quiet ").ok());
    EXPECT_EQ(line.str(), "console=ttyS0 panic=-1 quiet");
    EXPECT_FALSE(line.append(std::string_view("a\0b", 3)).ok());
}

TEST(CommandLine, RejectsALineLongerThanTheKernelLimit) {
    CommandLine line;
    ASSERT_TRUE(line.append(std::string(100, 'x')).ok());
    EXPECT_TRUE(line.check_limit(100).ok());
    auto r = line.check_limit(99);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "kernel command line is 100 bytes; the limit is 99");
    auto mem = MUST(kvm::GuestMemory::create({{0, 1 * kMiB}}));
    EXPECT_FALSE(line.write(mem, 0x20000, 99).ok());
    ASSERT_TRUE(line.write(mem, 0x20000, 2047).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x20000 + 100)), 0);
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x20000 + 99)), 'x');
}

TEST(Initrd, ConcatenatesImagesFourByteAlignedHighInLowRam) {
    auto mem = MUST(kvm::GuestMemory::create({{0, 64 * kMiB}}));
    auto dir =
        std::filesystem::temp_directory_path() / ("msb-initrd-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream f(dir / "a.cpio", std::ios::binary);
        f << "abcde";  // 5 bytes: the next image must start at offset 8
    }
    std::vector<InitrdImage> images{InitrdImage::file((dir / "a.cpio").string()),
                                    InitrdImage::memory({'X', 'Y'})};
    auto placement = MUST(load_initrds(mem, images, 0x2000000, 64 * kMiB, 0x7fffffff));
    EXPECT_EQ(placement.size, 10u);
    EXPECT_EQ(placement.address % 4096, 0u);
    EXPECT_LE(placement.address + placement.size, 64 * kMiB);
    EXPECT_GT(placement.address, 64 * kMiB - 8192);
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(placement.address)), 'a');
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(placement.address + 5)), 0);
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(placement.address + 8)), 'X');
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(placement.address + 9)), 'Y');
    // Too big to fit above the kernel.
    EXPECT_FALSE(load_initrds(mem, {InitrdImage::memory(std::vector<uint8_t>(8 * kMiB))}, 60 * kMiB,
                              64 * kMiB, 0x7fffffff)
                     .ok());
    EXPECT_FALSE(
        load_initrds(mem, {InitrdImage::file((dir / "missing").string())}, 0, 64 * kMiB, 0x7fffffff)
            .ok());
    std::filesystem::remove_all(dir);
}

TEST(Initrd, AFileSpanningPagesArrivesWholeFollowedByTheNextImage) {
    auto mem = MUST(kvm::GuestMemory::create({{0, 64 * kMiB}}));
    auto first = pattern(3 * 4096 + 5, 9);
    auto path = write_temp_file("big.cpio", first);
    std::vector<InitrdImage> images{InitrdImage::file(path.string()),
                                    InitrdImage::memory({'X', 'Y'})};
    auto placement = MUST(load_initrds(mem, images, 0x2000000, 64 * kMiB, 0x7fffffff));
    EXPECT_EQ(placement.size, first.size() + 3 + 2);
    EXPECT_EQ(guest_bytes(mem, placement.address, first.size()), first);
    EXPECT_EQ(guest_bytes(mem, placement.address + first.size(), 5),
              (std::vector<uint8_t>{0, 0, 0, 'X', 'Y'}));
    std::filesystem::remove(path);
}

TEST(Initrd, HonoursTheKernelsAddressLimit) {
    auto mem = MUST(kvm::GuestMemory::create({{0, 64 * kMiB}}));
    auto placement =
        MUST(load_initrds(mem, {InitrdImage::memory({1, 2, 3})}, 0, 64 * kMiB, 32 * kMiB - 1));
    EXPECT_LT(placement.address + placement.size, 32 * kMiB);
}

std::string run(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return out;
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) out.append(buffer, n);
    ::pclose(p);
    return out;
}

TEST(CpioWriter, ProducesAnArchiveThatCpioListsAndExtracts) {
    CpioWriter cpio;
    ASSERT_TRUE(cpio.add_directory("etc", 0755).ok());
    ASSERT_TRUE(
        cpio.add_file("/etc/msb.conf", std::string_view("hello\n"), 0640, {1000, 1001}).ok());
    ASSERT_TRUE(cpio.add_file("odd", std::string_view("12345"), 0755).ok());  // needs data padding
    ASSERT_TRUE(cpio.add_symlink("etc/link", "msb.conf").ok());
    auto archive = cpio.finish();
    EXPECT_EQ(archive.size() % 4, 0u);

    auto dir = std::filesystem::temp_directory_path() / ("msb-cpio-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "out");
    {
        std::ofstream f(dir / "a.cpio", std::ios::binary);
        f.write(reinterpret_cast<const char*>(archive.data()),
                static_cast<std::streamsize>(archive.size()));
    }
    std::string listing = run("cpio -t --quiet < " + (dir / "a.cpio").string() + " 2>&1");
    EXPECT_EQ(listing, "etc\netc/msb.conf\nodd\netc/link\n");
    std::string verbose =
        run("cpio -tv --numeric-uid-gid --quiet < " + (dir / "a.cpio").string() + " 2>&1");
    EXPECT_NE(verbose.find("-rw-r-----   1 1000     1001"), std::string::npos) << verbose;

    std::string extract =
        run("cd " + (dir / "out").string() + " && cpio -i --quiet -d < ../a.cpio 2>&1");
    EXPECT_EQ(extract, "");
    std::ifstream conf(dir / "out/etc/msb.conf");
    std::string text((std::istreambuf_iterator<char>(conf)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "hello\n");
    EXPECT_EQ(std::filesystem::read_symlink(dir / "out/etc/link"), "msb.conf");
    EXPECT_EQ(std::filesystem::file_size(dir / "out/odd"), 5u);
    struct stat st {};
    ASSERT_EQ(::stat((dir / "out/odd").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    std::filesystem::remove_all(dir);
}

TEST(CpioWriter, RejectsUnsafeNames) {
    CpioWriter cpio;
    EXPECT_FALSE(cpio.add_directory("", 0755).ok());
    EXPECT_FALSE(cpio.add_directory("a/../b", 0755).ok());
    EXPECT_FALSE(cpio.add_file("a//b", std::string_view("x"), 0644).ok());
    EXPECT_FALSE(cpio.add_symlink("a", "").ok());
    EXPECT_TRUE(cpio.add_directory("a/b", 0755).ok());
}

}  // namespace
}  // namespace msb::loader
