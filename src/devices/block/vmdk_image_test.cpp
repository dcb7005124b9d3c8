// Tests of VmdkDiskImage against qemu-img and qemu-io (Debian qemu-utils) as the oracle: images
// qemu writes read back the same through us, and extent files we fill on the host read the same
// through us as through `qemu-img convert`. Hostile descriptors are refused with errors that
// name the file.
#include "devices/block/vmdk_image.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace msb::devices {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

struct CommandResult {
    int status;
    std::string output;
};

// Runs `command` under /bin/sh; returns its exit status and combined output.
CommandResult run(const std::string& command) {
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return {-1, "popen failed"};
    std::string output;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

void write_file(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), std::streamsize(content.size()));
    ASSERT_TRUE(out.good()) << path;
}

void pwrite_file(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path;
    EXPECT_EQ(::pwrite(fd, bytes.data(), bytes.size(), off_t(offset)), ssize_t(bytes.size()));
    ::close(fd);
}

std::vector<uint8_t> pread_file(const std::string& path, uint64_t offset, size_t length) {
    std::vector<uint8_t> bytes(length);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path;
    if (fd < 0) return {};
    EXPECT_EQ(::pread(fd, bytes.data(), length, off_t(offset)), ssize_t(length)) << path;
    ::close(fd);
    return bytes;
}

std::vector<uint8_t> read_disk(DiskImage& disk, uint64_t offset, size_t length) {
    std::vector<uint8_t> bytes(length, 0xee);
    Status status = disk.read_at(offset, bytes);
    EXPECT_TRUE(status.ok()) << status.error().message();
    return bytes;
}

// A byte pattern that differs between neighbouring sectors and extents.
std::vector<uint8_t> pattern(size_t length, uint8_t seed) {
    std::vector<uint8_t> bytes(length);
    for (size_t i = 0; i < length; ++i) bytes[i] = uint8_t(i * 7 + i / 512 + seed);
    return bytes;
}

// A window of the disk to compare, in bytes.
struct Window {
    uint64_t offset;
    size_t length;
};

class VmdkImageTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (run("command -v qemu-img && command -v qemu-io").status != 0)
            GTEST_FAIL() << "qemu-img and qemu-io are required for the VMDK tests (they are the "
                            "oracle); scripts/setup installs them with the qemu-utils package";
        char name[] = "/tmp/msb-vmdk-XXXXXX";
        ASSERT_NE(::mkdtemp(name), nullptr);
        dir = name;
    }
    void TearDown() override {
        std::error_code ignored;
        if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }

    std::string path(const std::string& name) const { return dir + "/" + name; }

    void qemu(const std::string& command) {
        CommandResult result = run(command);
        ASSERT_EQ(result.status, 0) << command << "\n" << result.output;
    }
    void create(const std::string& name, const std::string& subformat, const std::string& size) {
        qemu("qemu-img create -q -f vmdk -o subformat=" + subformat + " '" + path(name) + "' " +
             size);
    }
    // `write -P <byte> <offset> <length>` through qemu's own VMDK driver.
    void qemu_write(const std::string& name, uint8_t byte, uint64_t offset, uint64_t length) {
        qemu("qemu-io -f vmdk -c 'write -P " + std::to_string(byte) + " " + std::to_string(offset) +
             " " + std::to_string(length) + "' '" + path(name) + "'");
    }
    // Converts the image to raw with qemu-img and returns the raw file's path.
    std::string qemu_convert(const std::string& name) {
        std::string raw = path(name + ".raw");
        qemu("qemu-img convert -f vmdk -O raw '" + path(name) + "' '" + raw + "'");
        return raw;
    }
    void expect_same_as_qemu(const std::string& name, const std::vector<Window>& windows) {
        std::string raw = qemu_convert(name);
        auto disk = VmdkDiskImage::open(path(name));
        ASSERT_TRUE(disk.ok()) << disk.error().message();
        EXPECT_EQ((*disk)->size(), uint64_t(std::filesystem::file_size(raw)));
        for (const Window& w : windows)
            EXPECT_EQ(read_disk(**disk, w.offset, w.length), pread_file(raw, w.offset, w.length))
                << "window at " << w.offset << " of " << w.length << " bytes";
    }
    // Opens `name`, expects failure, and returns the message, which must name the image.
    std::string open_error(const std::string& name) {
        auto disk = VmdkDiskImage::open(path(name));
        EXPECT_FALSE(disk.ok());
        if (disk.ok()) return {};
        EXPECT_NE(disk.error().message().find(path(name)), std::string::npos)
            << disk.error().message();
        return disk.error().message();
    }
    // A descriptor with the usual header and `body` as its extent lines.
    void write_descriptor(const std::string& name, const std::string& body,
                          const std::string& create_type = "monolithicFlat") {
        write_file(path(name),
                   "# Disk DescriptorFile\nversion=1\nCID=12345678\n"
                   "parentCID=ffffffff\ncreateType=\"" +
                       create_type + "\"\n\n# Extent description\n" + body +
                       "\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n");
    }

    std::string dir;
};

TEST_F(VmdkImageTest, ReadsMonolithicFlatWrittenByQemuIo) {
    create("a.vmdk", "monolithicFlat", "8M");
    qemu_write("a.vmdk", 0xab, 1 * kMiB, 64 * kKiB);
    qemu_write("a.vmdk", 0x5c, 8 * kMiB - 4 * kKiB, 4 * kKiB);

    auto disk = MUST(VmdkDiskImage::open(path("a.vmdk")));
    EXPECT_EQ(disk->size(), 8 * kMiB);
    EXPECT_EQ(disk->access(), DiskAccess::ReadOnly);
    std::vector<uint8_t> expected(8 * kMiB, 0);
    std::fill_n(expected.begin() + 1 * kMiB, 64 * kKiB, 0xab);
    std::fill_n(expected.begin() + 8 * kMiB - 4 * kKiB, 4 * kKiB, 0x5c);
    EXPECT_EQ(read_disk(*disk, 0, 8 * kMiB), expected);
    // Unaligned, inside the written range and across its edge.
    EXPECT_EQ(read_disk(*disk, 1 * kMiB - 3, 10),
              std::vector<uint8_t>({0, 0, 0, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab}));
    expect_same_as_qemu("a.vmdk", {{0, 8 * kMiB}});
}

TEST_F(VmdkImageTest, ReadsTwoGbMaxExtentFlatAcrossExtentBoundaries) {
    create("b.vmdk", "twoGbMaxExtentFlat", "5G");
    for (const char* extent : {"b-f001.vmdk", "b-f002.vmdk", "b-f003.vmdk"})
        ASSERT_TRUE(std::filesystem::exists(path(extent))) << extent;
    qemu_write("b.vmdk", 0x22, 0, 4 * kKiB);
    qemu_write("b.vmdk", 0xcd, 2 * kGiB - 4 * kKiB, 8 * kKiB);
    qemu_write("b.vmdk", 0xef, 4 * kGiB - 512, 1 * kKiB);
    qemu_write("b.vmdk", 0x11, 5 * kGiB - 64 * kKiB, 64 * kKiB);

    auto disk = MUST(VmdkDiskImage::open(path("b.vmdk")));
    ASSERT_EQ(disk->size(), 5 * kGiB);
    std::vector<uint8_t> crossing = read_disk(*disk, 2 * kGiB - 4 * kKiB, 8 * kKiB);
    EXPECT_EQ(crossing, std::vector<uint8_t>(8 * kKiB, 0xcd));
    std::vector<uint8_t> around = read_disk(*disk, 2 * kGiB - 6 * kKiB, 12 * kKiB);
    std::vector<uint8_t> expected(12 * kKiB, 0);
    std::fill_n(expected.begin() + 2 * kKiB, 8 * kKiB, 0xcd);
    EXPECT_EQ(around, expected);
    EXPECT_EQ(read_disk(*disk, 4 * kGiB - 512, 1 * kKiB), std::vector<uint8_t>(1 * kKiB, 0xef));
    EXPECT_EQ(read_disk(*disk, 5 * kGiB - 64 * kKiB, 64 * kKiB),
              std::vector<uint8_t>(64 * kKiB, 0x11));
    // The write landed in the extent files where the descriptor says.
    EXPECT_EQ(pread_file(path("b-f001.vmdk"), 2 * kGiB - 4 * kKiB, 4 * kKiB),
              std::vector<uint8_t>(4 * kKiB, 0xcd));
    EXPECT_EQ(pread_file(path("b-f002.vmdk"), 0, 4 * kKiB), std::vector<uint8_t>(4 * kKiB, 0xcd));
    expect_same_as_qemu("b.vmdk", {{0, 64 * kKiB},
                                   {2 * kGiB - 1 * kMiB, 2 * kMiB},
                                   {4 * kGiB - 1 * kMiB, 2 * kMiB},
                                   {5 * kGiB - 1 * kMiB, 1 * kMiB}});
}

TEST_F(VmdkImageTest, MonolithicFlatFilledOnTheHostReadsAsQemuImgConvertDoes) {
    create("a.vmdk", "monolithicFlat", "8M");
    pwrite_file(path("a-flat.vmdk"), 0, pattern(8 * kMiB, 3));
    expect_same_as_qemu("a.vmdk", {{0, 8 * kMiB}, {12345, 54321}});
}

TEST_F(VmdkImageTest, TwoGbMaxExtentFlatFilledOnTheHostReadsAsQemuImgConvertDoes) {
    create("b.vmdk", "twoGbMaxExtentFlat", "5G");
    pwrite_file(path("b-f001.vmdk"), 0, pattern(1 * kMiB, 1));
    pwrite_file(path("b-f001.vmdk"), 2 * kGiB - 1 * kMiB, pattern(1 * kMiB, 2));
    pwrite_file(path("b-f002.vmdk"), 0, pattern(1 * kMiB, 3));
    pwrite_file(path("b-f002.vmdk"), 2 * kGiB - 1 * kMiB, pattern(1 * kMiB, 4));
    pwrite_file(path("b-f003.vmdk"), 0, pattern(1 * kMiB, 5));
    pwrite_file(path("b-f003.vmdk"), 1 * kGiB - 1 * kMiB, pattern(1 * kMiB, 6));
    expect_same_as_qemu("b.vmdk", {{0, 1 * kMiB},
                                   {2 * kGiB - 1 * kMiB, 2 * kMiB},
                                   {2 * kGiB - 1, 2},
                                   {4 * kGiB - 1 * kMiB - 7, 2 * kMiB},
                                   {5 * kGiB - 1 * kMiB, 1 * kMiB}});
}

TEST_F(VmdkImageTest, HandWrittenDescriptorWithOffsetsAbsoluteAndSpacedNamesReadsAsQemuDoes) {
    std::vector<uint8_t> data = pattern(64 * 512, 9);
    write_file(path("data.bin"), std::string(data.begin(), data.end()));
    std::filesystem::create_directory(path("sub dir"));
    write_file(path("sub dir/other.bin"), std::string(8 * 512, '\x77'));
    write_descriptor("d.vmdk", "RW 8 FLAT \"data.bin\" 4\nRW\t16  FLAT \"" + path("data.bin") +
                                   "\" 40\r\nRW 5 FLAT \"sub dir/other.bin\" 3\n");
    auto disk = MUST(VmdkDiskImage::open(path("d.vmdk")));
    ASSERT_EQ(disk->size(), 29u * 512);
    std::vector<uint8_t> expected(data.begin() + 4 * 512, data.begin() + 12 * 512);
    expected.insert(expected.end(), data.begin() + 40 * 512, data.begin() + 56 * 512);
    expected.insert(expected.end(), 5 * 512, 0x77);
    EXPECT_EQ(read_disk(*disk, 0, 29 * 512), expected);
    expect_same_as_qemu("d.vmdk", {{0, 29 * 512}, {8 * 512 - 1, 17 * 512}});
}

// qemu 7.2 skips RDONLY and ZERO extent lines altogether, so here the oracle is the files.
TEST_F(VmdkImageTest, ReadOnlyAndZeroExtentsJoinTheDiskInOrder) {
    std::vector<uint8_t> data = pattern(16 * 512, 1);
    write_file(path("data.bin"), std::string(data.begin(), data.end()));
    write_descriptor(
        "z.vmdk", "RDONLY 4 FLAT \"data.bin\" 2\nRW 3 ZERO\nRW 2 FLAT \"data.bin\"\nRW 1 ZERO\n");
    auto disk = MUST(VmdkDiskImage::open(path("z.vmdk")));
    ASSERT_EQ(disk->size(), 10u * 512);
    std::vector<uint8_t> expected(data.begin() + 2 * 512, data.begin() + 6 * 512);
    expected.insert(expected.end(), 3 * 512, 0);
    expected.insert(expected.end(), data.begin(), data.begin() + 2 * 512);
    expected.insert(expected.end(), 512, 0);
    EXPECT_EQ(read_disk(*disk, 0, 10 * 512), expected);
    // One read from a flat extent through a zero extent into the next flat one.
    EXPECT_EQ(
        read_disk(*disk, 4 * 512 - 100, 3 * 512 + 200),
        std::vector<uint8_t>(expected.begin() + 4 * 512 - 100, expected.begin() + 7 * 512 + 100));
}

TEST_F(VmdkImageTest, OpenDiskImageOpensVmdkReadOnly) {
    create("a.vmdk", "monolithicFlat", "1M");
    auto disk = open_disk_image(path("a.vmdk"), "vmdk", DiskAccess::ReadOnly);
    ASSERT_TRUE(disk.ok()) << disk.error().message();
    EXPECT_EQ((*disk)->size(), 1 * kMiB);
    auto writable = open_disk_image(path("a.vmdk"), "vmdk", DiskAccess::ReadWrite);
    ASSERT_FALSE(writable.ok());
    EXPECT_EQ(writable.error().code(), EROFS);
}

TEST_F(VmdkImageTest, WritesFailWithEROFSAndFlushDoesNothing) {
    create("a.vmdk", "monolithicFlat", "1M");
    auto disk = MUST(VmdkDiskImage::open(path("a.vmdk")));
    std::vector<uint8_t> block(512, 1);
    Status write = disk->write_at(0, block);
    ASSERT_FALSE(write.ok());
    EXPECT_EQ(write.error().code(), EROFS);
    EXPECT_NE(write.error().message().find(path("a.vmdk")), std::string::npos);
    EXPECT_NE(write.error().message().find("qemu-img convert"), std::string::npos);
    EXPECT_EQ(disk->write_zeroes(0, 512).error().code(), EROFS);
    EXPECT_EQ(disk->discard(0, 512).error().code(), EROFS);
    EXPECT_FALSE(disk->supports_discard());
    EXPECT_TRUE(disk->flush().ok());
    EXPECT_EQ(read_disk(*disk, 0, 512), std::vector<uint8_t>(512, 0));
}

TEST_F(VmdkImageTest, ReadPastTheEndIsAnError) {
    create("a.vmdk", "monolithicFlat", "1M");
    auto disk = MUST(VmdkDiskImage::open(path("a.vmdk")));
    std::vector<uint8_t> block(512);
    EXPECT_FALSE(disk->read_at(1 * kMiB - 256, block).ok());
    EXPECT_FALSE(disk->read_at(UINT64_MAX - 100, block).ok());
    EXPECT_TRUE(disk->read_at(1 * kMiB, std::span<uint8_t>()).ok());
}

TEST_F(VmdkImageTest, ExtentFileShrunkAfterOpenFailsTheRead) {
    create("a.vmdk", "monolithicFlat", "1M");
    auto disk = MUST(VmdkDiskImage::open(path("a.vmdk")));
    ASSERT_EQ(::truncate(path("a-flat.vmdk").c_str(), 512), 0);
    std::vector<uint8_t> block(1024);
    Status status = disk->read_at(0, block);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().code(), EIO);
}

TEST_F(VmdkImageTest, RefusesMonolithicSparseCreatedByQemuImg) {
    create("s.vmdk", "monolithicSparse", "8M");
    std::string message = open_error("s.vmdk");
    EXPECT_NE(message.find("sparse VMDK"), std::string::npos) << message;
    EXPECT_NE(message.find("qemu-img convert -O qcow2 " + path("s.vmdk")), std::string::npos)
        << message;
}

TEST_F(VmdkImageTest, RefusesStreamOptimizedCreatedByQemuImg) {
    create("s.vmdk", "streamOptimized", "8M");
    std::string message = open_error("s.vmdk");
    EXPECT_NE(message.find("sparse VMDK"), std::string::npos) << message;
}

TEST_F(VmdkImageTest, RefusesTwoGbMaxExtentSparseCreatedByQemuImg) {
    create("s.vmdk", "twoGbMaxExtentSparse", "3G");
    std::string message = open_error("s.vmdk");
    EXPECT_NE(message.find("sparse VMDK (twoGbMaxExtentSparse)"), std::string::npos) << message;
}

TEST_F(VmdkImageTest, RefusesSparseExtentsInAFlatDescriptor) {
    for (const char* type : {"SPARSE", "VMFSSPARSE", "SESPARSE"}) {
        write_descriptor("s.vmdk", std::string("RW 16 ") + type + " \"s-s001.vmdk\"\n");
        std::string message = open_error("s.vmdk");
        EXPECT_NE(message.find("sparse VMDK"), std::string::npos) << message;
    }
}

TEST_F(VmdkImageTest, RefusesAMissingExtentFile) {
    write_descriptor("m.vmdk", "RW 16 FLAT \"m-flat.vmdk\" 0\n");
    std::string message = open_error("m.vmdk");
    EXPECT_NE(message.find(path("m-flat.vmdk")), std::string::npos) << message;
    EXPECT_NE(message.find("No such file"), std::string::npos) << message;
}

TEST_F(VmdkImageTest, RefusesAnExtentFileTooShortForItsExtent) {
    create("a.vmdk", "monolithicFlat", "8M");
    ASSERT_EQ(::truncate(path("a-flat.vmdk").c_str(), 4 * kMiB), 0);
    std::string message = open_error("a.vmdk");
    EXPECT_NE(message.find("holds 4194304 bytes but the descriptor needs 8388608"),
              std::string::npos)
        << message;
    // The offset counts too: 4 MiB of file cannot hold 2 MiB starting at 3 MiB.
    write_descriptor("o.vmdk", "RW 4096 FLAT \"a-flat.vmdk\" 6144\n");
    message = open_error("o.vmdk");
    EXPECT_NE(message.find("needs 5242880"), std::string::npos) << message;
}

TEST_F(VmdkImageTest, RefusesAFifoAsExtentWithoutBlocking) {
    ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
    write_descriptor("f.vmdk", "RW 16 FLAT \"fifo\" 0\n");
    std::string message = open_error("f.vmdk");
    EXPECT_NE(message.find("not a regular file or block device"), std::string::npos) << message;
    // And as the descriptor itself.
    EXPECT_NE(open_error("fifo").find("not a regular file"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesUnknownExtentTypesAndCreateTypes) {
    write_file(path("x.bin"), std::string(8192, 'x'));
    write_descriptor("u.vmdk", "RW 16 FOO \"x.bin\" 0\n");
    EXPECT_NE(open_error("u.vmdk").find("unknown extent type \"FOO\""), std::string::npos);
    write_descriptor("u.vmdk", "RW 16 VMFSRDM \"x.bin\"\n");
    EXPECT_NE(open_error("u.vmdk").find("raw device VMDK"), std::string::npos);
    write_descriptor("u.vmdk", "RW 16 FLAT \"x.bin\" 0\n", "someNewType");
    EXPECT_NE(open_error("u.vmdk").find("createType \"someNewType\""), std::string::npos);
    write_descriptor("u.vmdk", "RW 16 FLAT \"x.bin\" 0\n", "fullDevice");
    EXPECT_NE(open_error("u.vmdk").find("raw device VMDK (fullDevice)"), std::string::npos);
    write_descriptor("u.vmdk", "NOACCESS 16 FLAT \"x.bin\" 0\n");
    EXPECT_NE(open_error("u.vmdk").find("NOACCESS"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesGarbage) {
    std::vector<uint8_t> noise = pattern(4096, 0);
    write_file(path("g.vmdk"), std::string(noise.begin(), noise.end()));
    EXPECT_NE(open_error("g.vmdk").find("NUL byte"), std::string::npos);
    write_file(path("g.vmdk"), "hello world\n");
    EXPECT_NE(open_error("g.vmdk").find("not a VMDK descriptor"), std::string::npos);
    write_file(path("g.vmdk"), "");
    EXPECT_NE(open_error("g.vmdk").find("not a VMDK descriptor"), std::string::npos);
    write_descriptor("g.vmdk", "RW 16 FLAT \"x.bin\" 0\nthis is not a descriptor line\n");
    EXPECT_NE(open_error("g.vmdk").find("line 9: not a comment"), std::string::npos);
    write_descriptor("g.vmdk", "RW 16 FLAT \"x.bin 0\n");
    EXPECT_NE(open_error("g.vmdk").find("quoted file name"), std::string::npos);
    write_descriptor("g.vmdk", "RW 16 FLAT \"\" 0\n");
    EXPECT_NE(open_error("g.vmdk").find("quoted file name"), std::string::npos);
    write_descriptor("g.vmdk", "RW 16 FLAT \"x.bin\" 0 junk\n");
    EXPECT_NE(open_error("g.vmdk").find("unexpected text"), std::string::npos);
    write_descriptor("g.vmdk", "RW 16 FLAT \"x.bin\" 0x10\n");
    EXPECT_NE(open_error("g.vmdk").find("extent offset"), std::string::npos);
    // A directory is not a descriptor.
    EXPECT_NE(open_error("").find("not a regular file"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesSizesAndOffsetsThatOverflow) {
    write_file(path("x.bin"), std::string(8192, 'x'));
    for (const char* body : {
             "RW 18446744073709551615 FLAT \"x.bin\" 0\n",     // sectors x 512 wraps
             "RW 99999999999999999999999 FLAT \"x.bin\" 0\n",  // not a uint64
             "RW 18014398509481984 ZERO\n",                    // 2^54 sectors: past off_t
             "RW -1 FLAT \"x.bin\" 0\n", "RW 0 FLAT \"x.bin\" 0\n",
             "RW 16 FLAT \"x.bin\" 18014398509481980\n",  // offset + sectors past 2^54
             "RW 16 FLAT \"x.bin\" 18446744073709551615\n",
             "RW 9007199254740992 ZERO\nRW 9007199254740992 ZERO\n",  // sum reaches 2^54
         }) {
        write_descriptor("o.vmdk", body);
        std::string message = open_error("o.vmdk");
        EXPECT_FALSE(message.empty()) << body;
    }
    // Just below the limit is a valid (huge, all-zero) disk.
    write_descriptor("o.vmdk", "RW 9007199254740992 ZERO\nRW 9007199254740991 ZERO\n");
    auto disk = MUST(VmdkDiskImage::open(path("o.vmdk")));
    EXPECT_EQ(disk->size(), (uint64_t(1) << 63) - 512);
    EXPECT_EQ(read_disk(*disk, disk->size() - 4096, 4096), std::vector<uint8_t>(4096, 0));
}

TEST_F(VmdkImageTest, RefusesADescriptorWithoutExtents) {
    write_descriptor("e.vmdk", "");
    EXPECT_NE(open_error("e.vmdk").find("lists no extents"), std::string::npos);
}

TEST_F(VmdkImageTest, AcceptsUpToMaxExtentsAndRefusesMore) {
    std::string body;
    for (size_t i = 0; i < kMaxExtents; ++i)
        body += "RW 1 FLAT \"x.bin\" " + std::to_string(i % 16) + "\n";
    write_file(path("x.bin"), std::string(16 * 512, 'x'));
    write_descriptor("n.vmdk", body);
    auto disk = MUST(VmdkDiskImage::open(path("n.vmdk")));
    EXPECT_EQ(disk->size(), kMaxExtents * 512);
    EXPECT_EQ(read_disk(*disk, 100, 4096), std::vector<uint8_t>(4096, 'x'));
    write_descriptor("n.vmdk", body + "RW 1 ZERO\n");
    EXPECT_NE(open_error("n.vmdk").find("more than 1024 extents"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesADescriptorLargerThan64KiB) {
    write_descriptor("l.vmdk", "RW 16 ZERO\n" + std::string(kMaxDescriptorBytes, '#'));
    EXPECT_NE(open_error("l.vmdk").find("too large for a VMDK descriptor"), std::string::npos);
    // A flat extent given in place of the descriptor: refused after reading 64 KiB of it.
    create("a.vmdk", "monolithicFlat", "1G");
    EXPECT_NE(open_error("a-flat.vmdk").find("too large for a VMDK descriptor"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesNulInsideTheDescriptorButNotNulPadding) {
    write_file(path("x.bin"), std::string(8192, 'x'));
    std::string text =
        "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\n"
        "RW 16 FLAT \"x.bin\" 0\n";
    write_file(path("p.vmdk"), text + std::string(512 - text.size(), '\0'));
    EXPECT_TRUE(VmdkDiskImage::open(path("p.vmdk")).ok());
    write_file(path("p.vmdk"), text + std::string(1, '\0') + "RW 16 ZERO\n");
    EXPECT_NE(open_error("p.vmdk").find("NUL byte"), std::string::npos);
}

TEST_F(VmdkImageTest, RefusesDeltaDisksWithAParent) {
    create("base.vmdk", "monolithicFlat", "1M");
    write_file(path("x.bin"), std::string(8192, 'x'));
    write_file(path("c.vmdk"),
               "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=2\n"
               "createType=\"monolithicFlat\"\n"
               "parentFileNameHint=\"base.vmdk\"\nRW 16 FLAT \"x.bin\" 0\n");
    std::string message = open_error("c.vmdk");
    EXPECT_NE(message.find("delta of a parent disk (base.vmdk)"), std::string::npos) << message;
}

// Parser corner cases, without files.
TEST(VmdkDescriptor, ParsesTheLayoutsVmwareAndQemuWrite) {
    auto descriptor = MUST(parse_vmdk_descriptor(
        "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"UTF-8\"\r\nCID=fffffffe\r\n"
        "parentCID=FFFFFFFF\r\nisNativeSnapshot=\"no\"\r\ncreateType = \"vmfs\"\r\n\r\n"
        "# Extent description\r\nRW 41943040 VMFS \"my disk-flat.vmdk\"\r\n"
        "RDONLY\t8\tFLAT\t\"/dev/sdz\"\t63\r\n  RW 8 ZERO  \r\n\r\n"
        "ddb.uuid = \"60 00 C2 9a\"\r\nddb.thinProvisioned = \"1\"\r\n",
        "t.vmdk"));
    EXPECT_EQ(descriptor.create_type, "vmfs");
    ASSERT_EQ(descriptor.extents.size(), 3u);
    EXPECT_EQ(descriptor.extents[0].kind, VmdkExtent::Kind::Flat);
    EXPECT_EQ(descriptor.extents[0].sectors, 41943040u);
    EXPECT_EQ(descriptor.extents[0].file, "my disk-flat.vmdk");
    EXPECT_EQ(descriptor.extents[0].offset_sectors, 0u);
    EXPECT_EQ(descriptor.extents[1].file, "/dev/sdz");
    EXPECT_EQ(descriptor.extents[1].offset_sectors, 63u);
    EXPECT_EQ(descriptor.extents[2].kind, VmdkExtent::Kind::Zero);
}

TEST(VmdkDescriptor, RefusesWhatItCannotRead) {
    const std::string header = "# Disk DescriptorFile\n";
    for (const char* text : {
             "version=1\ncreateType=\"monolithicFlat\"\nRW 1 ZERO\n",  // no header line
             "# Disk DescriptorFile\nRW 1 ZERO\n",                     // no createType
             "# Disk DescriptorFile\nversion=7\ncreateType=\"monolithicFlat\"\nRW 1 ZERO\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 1\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 1 FLAT\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 1 FLAT x.bin 0\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\n= 1\nRW 1 ZERO\n",
             "# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nR W 1 ZERO\n",
         }) {
        auto result = parse_vmdk_descriptor(text, "t.vmdk");
        ASSERT_FALSE(result.ok()) << text;
        EXPECT_NE(result.error().message().find("disk image t.vmdk"), std::string::npos);
    }
    EXPECT_FALSE(parse_vmdk_descriptor(header + "createType=\"monolithicFlat\"\nRW 1 ZERO\n" +
                                           std::string(kMaxDescriptorBytes, '#'),
                                       "t.vmdk")
                     .ok());
}

}  // namespace
}  // namespace msb::devices
