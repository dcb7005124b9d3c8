#include "kvm/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace msb::kvm {
namespace {

TEST(GuestMemory, TranslatesInsideRegionsOnly) {
    auto mem = MUST(GuestMemory::create({{0, 0x10000}, {0x100000, 0x10000}}));
    EXPECT_EQ(mem.size(), 0x20000u);
    EXPECT_NE(mem.host_address(0, 0x10000), nullptr);
    EXPECT_EQ(mem.host_address(0, 0x10001), nullptr);  // runs past the first region
    EXPECT_EQ(mem.host_address(0x10000, 1), nullptr);  // in the hole
    EXPECT_NE(mem.host_address(0x10fff0, 0x10), nullptr);
    EXPECT_EQ(mem.host_address(0x10fff0, 0x11), nullptr);
    EXPECT_EQ(mem.host_address(UINT64_MAX, 2), nullptr);  // would wrap
    EXPECT_EQ(mem.host_address(0x100000, UINT64_MAX), nullptr);
}

TEST(GuestMemory, ReadsBackWhatItWrites) {
    auto mem = MUST(GuestMemory::create({{0, 0x10000}}));
    ASSERT_TRUE(mem.write_obj<uint64_t>(0x1000, 0x1122334455667788ULL).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint64_t>(0x1000)), 0x1122334455667788ULL);
    EXPECT_FALSE(mem.read_obj<uint64_t>(0xfffc).ok());
    EXPECT_FALSE(mem.write_obj<uint32_t>(0x10000, 1).ok());
}

TEST(GuestMemory, RejectsBadLayouts) {
    EXPECT_FALSE(GuestMemory::create({}).ok());
    EXPECT_FALSE(GuestMemory::create({{0, 100}}).ok());
    EXPECT_FALSE(GuestMemory::create({{0x2000, 0x1000}, {0x1000, 0x1000}}).ok());
    EXPECT_FALSE(GuestMemory::create({{0, 0x2000}, {0x1000, 0x1000}}).ok());
}

// A memfd holding `pages` pages, page i filled with the byte 'a' + i.
UniqueFd file_of_pages(int pages) {
    UniqueFd fd(::memfd_create("guest-memory-test", MFD_CLOEXEC));
    for (int i = 0; i < pages; ++i) {
        std::vector<uint8_t> page(4096, static_cast<uint8_t>('a' + i));
        EXPECT_EQ(::write(fd.get(), page.data(), page.size()), 4096);
    }
    return fd;
}

TEST(GuestMemory, MapsAFileCopyOnWriteWithoutTouchingItOrItsNeighbours) {
    auto mem = MUST(GuestMemory::create({{0, 0x10000}}));
    ASSERT_TRUE(mem.write_obj<uint8_t>(0x1fff, 0x11).ok());
    ASSERT_TRUE(mem.write_obj<uint8_t>(0x4000, 0x22).ok());
    UniqueFd file = file_of_pages(3);
    ASSERT_TRUE(mem.map_file(0x2000, 0x2000, file.get(), 0x1000).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x2000)), 'b');
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x3fff)), 'c');
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x1fff)), 0x11);  // the pages around are still RAM
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x4000)), 0x22);
    // A write lands in guest memory only: the file keeps its bytes.
    ASSERT_TRUE(mem.write_obj<uint8_t>(0x2000, 'Z').ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x2000)), 'Z');
    uint8_t byte = 0;
    ASSERT_EQ(::pread(file.get(), &byte, 1, 0x1000), 1);
    EXPECT_EQ(byte, 'b');
}

TEST(GuestMemory, ZeroesRamAndFilePagesAlikeAndNothingAround) {
    auto mem = MUST(GuestMemory::create({{0, 0x10000}}));
    ASSERT_TRUE(mem.write(0, std::vector<uint8_t>(0x10000, 0x5a)).ok());
    // Partial page, three whole pages (hole punched), partial page.
    ASSERT_TRUE(mem.zero(0x1800, 0x3900).ok());
    std::vector<uint8_t> bytes(0x10000);
    ASSERT_TRUE(mem.read(0, bytes).ok());
    for (size_t i = 0; i < bytes.size(); ++i) {
        bool inside = i >= 0x1800 && i < 0x5100;
        ASSERT_EQ(bytes[i], inside ? 0 : 0x5a) << "offset " << i;
    }
    // Pages mapped from a file are cleared too (a punched memfd hole would not reach them).
    UniqueFd file = file_of_pages(2);
    ASSERT_TRUE(mem.map_file(0x8000, 0x2000, file.get(), 0).ok());
    ASSERT_TRUE(mem.zero(0x7000, 0x4000).ok());
    ASSERT_TRUE(mem.read(0, bytes).ok());
    for (size_t i = 0x6000; i < 0xc000; ++i)
        ASSERT_EQ(bytes[i], i >= 0x7000 && i < 0xb000 ? 0 : 0x5a) << "offset " << i;
    EXPECT_FALSE(mem.zero(0xf000, 0x2000).ok());
}

TEST(GuestMemory, RefusesFileMappingsThatAreUnalignedOrOutsideRam) {
    auto mem = MUST(GuestMemory::create({{0, 0x10000}, {0x100000, 0x10000}}));
    UniqueFd file = file_of_pages(2);
    EXPECT_FALSE(mem.map_file(0x1800, 0x1000, file.get(), 0).ok());
    EXPECT_FALSE(mem.map_file(0x1000, 0x800, file.get(), 0).ok());
    EXPECT_FALSE(mem.map_file(0x1000, 0x1000, file.get(), 0x10).ok());
    EXPECT_FALSE(mem.map_file(0xf000, 0x2000, file.get(), 0).ok());  // runs into the hole
    EXPECT_FALSE(mem.map_file(0x20000, 0x1000, file.get(), 0).ok());
    // A mapping the kernel refuses (not a mappable fd) leaves guest RAM in place and usable.
    ASSERT_TRUE(mem.write_obj<uint8_t>(0x3000, 0x33).ok());
    EXPECT_FALSE(mem.map_file(0x3000, 0x1000, -1, 0).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x3000)), 0x33);
    ASSERT_TRUE(mem.write_obj<uint8_t>(0x3000, 0x44).ok());
    EXPECT_EQ(MUST(mem.read_obj<uint8_t>(0x3000)), 0x44);
}

}  // namespace
}  // namespace msb::kvm
