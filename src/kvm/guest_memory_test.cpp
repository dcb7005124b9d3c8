#include "kvm/guest_memory.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace msb::kvm
