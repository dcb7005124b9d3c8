// Tests of the descriptor-chain walker and the chain reader/writer.
#include "virtio/descriptor_chain.h"

#include <gtest/gtest.h>

#include "virtio/ring_abi.h"

namespace msb::virtio {
namespace {

constexpr uint64_t kRam = 1 << 20;
constexpr uint64_t kTable = 0x1000;
constexpr uint16_t kQueueSize = 8;

class DescriptorChainTest : public ::testing::Test {
protected:
    void SetUp() override { memory.emplace(MUST(kvm::GuestMemory::create({{0, kRam}}))); }

    void put(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
             uint16_t next = 0) {
        MUST(memory->write_obj(table + 16ull * index, vring_desc{addr, len, flags, next}));
    }
    ParsedChain parse(uint16_t head, bool indirect = true) {
        return parse_chain(*memory, kTable, head,
                           {.queue_size = kQueueSize, .indirect_allowed = indirect});
    }
    ChainError error_of(uint16_t head, bool indirect = true) {
        ParsedChain p = parse(head, indirect);
        EXPECT_FALSE(p.ok());
        return p.ok() ? ChainError::HeadOutOfRange : p.error();
    }

    std::optional<kvm::GuestMemory> memory;
};

TEST_F(DescriptorChainTest, SplitsReadableAndWritableParts) {
    put(kTable, 0, 0x2000, 10, VRING_DESC_F_NEXT, 3);
    put(kTable, 3, 0x3000, 0, VRING_DESC_F_NEXT, 5);  // empty buffer: no segment
    put(kTable, 5, 0x4000, 20, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
    put(kTable, 1, 0x5000, 30, VRING_DESC_F_WRITE);
    ParsedChain p = parse(0);
    ASSERT_TRUE(p.ok());
    DescriptorChain& c = p.chain();
    EXPECT_EQ(c.head(), 0);
    ASSERT_EQ(c.readable().size(), 1u);
    EXPECT_EQ(c.readable()[0].address, 0x2000u);
    ASSERT_EQ(c.writable().size(), 2u);
    EXPECT_EQ(c.writable()[1].length, 30u);
    EXPECT_EQ(c.readable_bytes(), 10u);
    EXPECT_EQ(c.writable_bytes(), 50u);
    EXPECT_EQ(c.descriptor_count(), 4u);
}

TEST_F(DescriptorChainTest, FollowsAnIndirectTable) {
    constexpr uint64_t kIndirect = 0x8000;
    put(kIndirect, 0, 0x2000, 4, VRING_DESC_F_NEXT, 1);
    put(kIndirect, 1, 0x3000, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
    put(kIndirect, 2, 0x4000, 8, VRING_DESC_F_WRITE);
    // The WRITE flag on the descriptor that points at the table is ignored (§2.7.5.3.2).
    put(kTable, 2, kIndirect, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE);
    ParsedChain p = parse(2);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p.chain().readable_bytes(), 4u);
    EXPECT_EQ(p.chain().writable_bytes(), 16u);
    EXPECT_EQ(p.chain().writable().size(), 2u);
}

TEST_F(DescriptorChainTest, RejectsALoop) {
    put(kTable, 0, 0x2000, 1, VRING_DESC_F_NEXT, 1);
    put(kTable, 1, 0x2000, 1, VRING_DESC_F_NEXT, 0);
    EXPECT_EQ(error_of(0), ChainError::TooLong);
}

TEST_F(DescriptorChainTest, RejectsASelfLoopInsideAnIndirectTable) {
    constexpr uint64_t kIndirect = 0x8000;
    put(kIndirect, 0, 0x2000, 1, VRING_DESC_F_NEXT, 0);
    put(kTable, 0, kIndirect, 32, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::TooLong);
}

TEST_F(DescriptorChainTest, RejectsAChainLongerThanTheQueue) {
    // Every descriptor used once, but the chain continues past the last one... into index 0
    // again: the walk stops after kQueueSize descriptors either way.
    for (uint16_t i = 0; i < kQueueSize; ++i)
        put(kTable, i, 0x2000, 1, VRING_DESC_F_NEXT, static_cast<uint16_t>((i + 1) % kQueueSize));
    EXPECT_EQ(error_of(0), ChainError::TooLong);
}

TEST_F(DescriptorChainTest, RejectsHeadAndNextOutsideTheTable) {
    EXPECT_EQ(error_of(kQueueSize), ChainError::HeadOutOfRange);
    put(kTable, 0, 0x2000, 1, VRING_DESC_F_NEXT, kQueueSize);
    EXPECT_EQ(error_of(0), ChainError::NextOutOfRange);
}

TEST_F(DescriptorChainTest, RejectsABufferOutsideGuestRam) {
    put(kTable, 0, kRam - 4, 8, 0);
    EXPECT_EQ(error_of(0), ChainError::OutsideMemory);
    put(kTable, 0, 0x40000000, 1, VRING_DESC_F_WRITE);
    EXPECT_EQ(error_of(0), ChainError::OutsideMemory);
}

TEST_F(DescriptorChainTest, RejectsAnAddressLengthOverflow) {
    put(kTable, 0, ~0ull - 2, 16, 0);
    EXPECT_EQ(error_of(0), ChainError::LengthOverflow);
}

TEST_F(DescriptorChainTest, RejectsATotalLengthBeyondFourGigabytes) {
    // Five 1 GiB descriptors over the same RAM: each is inside it, their sum is not 32-bit.
    auto large = MUST(kvm::GuestMemory::create({{0, 1ull << 30}}));
    for (uint16_t i = 0; i < 5; ++i)
        MUST(large.write_obj(kTable + 16ull * i, vring_desc{0, 1u << 30, VRING_DESC_F_NEXT,
                                                            static_cast<uint16_t>(i + 1)}));
    MUST(large.write_obj(kTable + 16ull * 4, vring_desc{0, 1u << 30, 0, 0}));
    ParsedChain p = parse_chain(large, kTable, 0, {.queue_size = 8, .indirect_allowed = true});
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error(), ChainError::LengthOverflow);
}

TEST_F(DescriptorChainTest, RejectsReadableAfterWritable) {
    put(kTable, 0, 0x2000, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    put(kTable, 1, 0x3000, 4, 0);
    EXPECT_EQ(error_of(0), ChainError::ReadableAfterWritable);
}

TEST_F(DescriptorChainTest, RejectsNestedIndirectTables) {
    constexpr uint64_t kIndirect = 0x8000;
    put(kIndirect, 0, 0x9000, 16, VRING_DESC_F_INDIRECT);
    put(kTable, 0, kIndirect, 16, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::NestedIndirect);
}

TEST_F(DescriptorChainTest, RejectsBadIndirectLengths) {
    put(kTable, 0, 0x8000, 0, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::BadIndirectLength);
    put(kTable, 0, 0x8000, 24, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::BadIndirectLength);
    put(kTable, 0, 0x8000, 16 * (kQueueSize + 1), VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::BadIndirectLength);
    put(kTable, 0, kRam - 16, 32, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0), ChainError::OutsideMemory);
}

TEST_F(DescriptorChainTest, RejectsIndirectWithNextAndIndirectNotNegotiated) {
    put(kTable, 0, 0x8000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    EXPECT_EQ(error_of(0), ChainError::IndirectWithNext);
    put(kTable, 0, 0x8000, 16, VRING_DESC_F_INDIRECT);
    EXPECT_EQ(error_of(0, /*indirect=*/false), ChainError::IndirectNotNegotiated);
}

TEST_F(DescriptorChainTest, ReaderAndWriterCrossDescriptorBoundaries) {
    MUST(memory->write(0x2000, std::vector<uint8_t>{1, 2, 3}));
    MUST(memory->write(0x3000, std::vector<uint8_t>{4, 5, 6, 7}));
    put(kTable, 0, 0x2000, 3, VRING_DESC_F_NEXT, 1);
    put(kTable, 1, 0x3000, 4, VRING_DESC_F_NEXT, 2);
    put(kTable, 2, 0x4000, 2, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
    put(kTable, 3, 0x5000, 3, VRING_DESC_F_WRITE);
    ParsedChain p = parse(0);
    ASSERT_TRUE(p.ok());

    DescriptorChainReader in(*memory, p.chain());
    EXPECT_EQ(in.remaining(), 7u);
    std::vector<uint8_t> buf(5);
    EXPECT_EQ(in.read(buf), 5u);
    EXPECT_EQ(buf, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(in.remaining(), 2u);
    EXPECT_FALSE(in.read_exact(buf));  // only 2 left: nothing consumed
    EXPECT_EQ(in.remaining(), 2u);
    EXPECT_EQ(in.peek().size(), 2u);
    EXPECT_EQ(in.read(buf), 2u);
    EXPECT_EQ(in.read(buf), 0u);

    DescriptorChainWriter out(*memory, p.chain());
    EXPECT_EQ(out.remaining(), 5u);
    std::vector<uint8_t> data{9, 8, 7, 6, 5, 4};
    EXPECT_FALSE(out.write_exact(data));
    EXPECT_EQ(out.write(data), 5u);
    EXPECT_EQ(out.bytes_written(), 5u);
    EXPECT_EQ(out.remaining(), 0u);
    EXPECT_EQ(MUST(memory->read_obj<uint16_t>(0x4000)), 0x0809);
    EXPECT_EQ(MUST(memory->read_obj<uint8_t>(0x5002)), 5);
}

}  // namespace
}  // namespace msb::virtio
