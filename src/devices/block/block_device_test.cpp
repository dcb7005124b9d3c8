// Tests of virtio-blk over a raw image, through the fake driver.
#include "devices/block/block_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_blk.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "testing/fake_driver.h"
#include "testing/loop_thread.h"
#include "virtio/features.h"
#include "virtio/mmio_transport.h"

namespace msb::devices {
namespace {

constexpr uint64_t kDiskBytes = uint64_t{64} * 512;

std::vector<uint8_t> header(uint32_t type, uint64_t sector) {
    virtio_blk_outhdr h{type, 0, sector};
    std::vector<uint8_t> bytes(sizeof h);
    std::memcpy(bytes.data(), &h, sizeof h);
    return bytes;
}

class BlockDeviceTest : public ::testing::Test {
protected:
    void SetUp() override {
        char name[] = "/tmp/msb-blk-XXXXXX";
        int fd = ::mkstemp(name);
        ASSERT_GE(fd, 0);
        path = name;
        std::vector<uint8_t> content(kDiskBytes);
        for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<uint8_t>(i / 512);
        ASSERT_EQ(::write(fd, content.data(), content.size()), ssize_t(content.size()));
        ::close(fd);
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 16 << 20}})));
        thread = MUST(msb::testing::LoopThread::create());
    }
    void TearDown() override {
        thread.reset();
        ::unlink(path.c_str());
    }
    void start(DiskAccess access) {
        std::shared_ptr<DiskImage> disk = MUST(RawDiskImage::open(path, access));
        blk = MUST(BlockDevice::create({.disk = disk, .serial = "vol-data", .access = access}));
        transport = MUST(virtio::MmioTransport::create(blk));
        transport->attach_memory(*memory);
        MUST(transport->start(thread->loop()));
        driver.emplace(*transport, *memory);
        ASSERT_TRUE(driver->init(~0ull, {64}).ok());
    }
    // Submits one request and returns {status, data} of the completed chain.
    std::pair<uint8_t, std::vector<uint8_t>> request(std::vector<std::vector<uint8_t>> readable,
                                                     uint32_t data_in) {
        std::vector<uint32_t> writable;
        if (data_in) writable.push_back(data_in);
        writable.push_back(1);
        auto& q = driver->queue(0);
        EXPECT_TRUE(q.add(readable, writable));
        q.kick();
        auto used = q.wait_used(std::chrono::seconds(2));
        EXPECT_TRUE(used);
        if (!used || used->written.empty()) return {0xff, {}};
        uint8_t status = used->written.back();
        used->written.pop_back();
        return {status, used->written};
    }

    std::string path;
    std::optional<kvm::GuestMemory> memory;
    std::unique_ptr<msb::testing::LoopThread> thread;
    std::shared_ptr<BlockDevice> blk;
    std::shared_ptr<virtio::MmioTransport> transport;
    std::optional<msb::testing::FakeDriver> driver;
};

TEST_F(BlockDeviceTest, ReportsCapacityAndFeatures) {
    start(DiskAccess::ReadWrite);
    EXPECT_EQ(driver->read32(0x008), 2u);
    EXPECT_EQ(driver->read_config(0, 4), 64u);
    EXPECT_TRUE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_FLUSH));
    EXPECT_FALSE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_RO));
}

TEST_F(BlockDeviceTest, ReadsSectors) {
    start(DiskAccess::ReadWrite);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 3)}, 1024);
    EXPECT_EQ(status, VIRTIO_BLK_S_OK);
    ASSERT_EQ(data.size(), 1024u);
    EXPECT_EQ(data[0], 3);
    EXPECT_EQ(data[1023], 4);
}

TEST_F(BlockDeviceTest, WritesAreReadBackAndReachTheImage) {
    start(DiskAccess::ReadWrite);
    std::vector<uint8_t> payload(512, 0xab);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_OUT, 10), payload}, 0).first, VIRTIO_BLK_S_OK);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_FLUSH, 0)}, 0).first, VIRTIO_BLK_S_OK);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 10)}, 512);
    EXPECT_EQ(status, VIRTIO_BLK_S_OK);
    EXPECT_EQ(data, payload);
    std::ifstream file(path, std::ios::binary);
    file.seekg(std::streamoff{10} * 512);
    EXPECT_EQ(file.get(), 0xab);
    EXPECT_EQ(blk->stats().write_bytes, 512u);
    EXPECT_EQ(blk->stats().flushes, 1u);
}

TEST_F(BlockDeviceTest, GetIdReturnsTheSerialPaddedToTwentyBytes) {
    start(DiskAccess::ReadWrite);
    auto [status, data] = request({header(VIRTIO_BLK_T_GET_ID, 0)}, 20);
    EXPECT_EQ(status, VIRTIO_BLK_S_OK);
    ASSERT_EQ(data.size(), 20u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data())), "vol-data");
    EXPECT_EQ(data[19], 0);
}

TEST_F(BlockDeviceTest, RejectsRequestsPastTheEndOfTheDisk) {
    start(DiskAccess::ReadWrite);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_IN, 63)}, 1024).first, VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_IN, ~0ull)}, 512).first, VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_OUT, 64), std::vector<uint8_t>(512)}, 0).first,
              VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_IN, 0)}, 100).first, VIRTIO_BLK_S_IOERR);  // unaligned
    EXPECT_EQ(blk->stats().bad_requests, 4u);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_IN, 63)}, 512).first, VIRTIO_BLK_S_OK);
}

TEST_F(BlockDeviceTest, ReadOnlyDiskRejectsWritesAndSaysSo) {
    start(DiskAccess::ReadOnly);
    EXPECT_TRUE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_RO));
    EXPECT_EQ(request({header(VIRTIO_BLK_T_OUT, 0), std::vector<uint8_t>(512, 1)}, 0).first,
              VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(blk->stats().rejected_writes, 1u);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 0)}, 512);
    EXPECT_EQ(status, VIRTIO_BLK_S_OK);
    EXPECT_EQ(data[0], 0);  // unchanged
}

std::vector<uint8_t> range(uint64_t sector, uint32_t sectors, uint32_t flags = 0) {
    virtio_blk_discard_write_zeroes r{sector, sectors, flags};
    std::vector<uint8_t> bytes(sizeof r);
    std::memcpy(bytes.data(), &r, sizeof r);
    return bytes;
}

TEST_F(BlockDeviceTest, DiscardAndWriteZeroesZeroEveryRangeAndPunchHoles) {
    start(DiskAccess::ReadWrite);
    EXPECT_TRUE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_DISCARD));
    EXPECT_TRUE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_WRITE_ZEROES));
    // virtio_blk_config: max_discard_sectors at 36, max_write_zeroes_seg at 52.
    EXPECT_EQ(driver->read_config(36, 4), BlockDevice::kMaxRangeSectors);
    EXPECT_EQ(driver->read_config(52, 4), BlockDevice::kMaxRangeSegments);
    auto two = range(8, 8);
    auto more = range(40, 3);
    two.insert(two.end(), more.begin(), more.end());
    EXPECT_EQ(request({header(VIRTIO_BLK_T_DISCARD, 0), two}, 0).first, VIRTIO_BLK_S_OK);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_WRITE_ZEROES, 0),
                       range(20, 2, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)},
                      0)
                  .first,
              VIRTIO_BLK_S_OK);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 0)}, uint32_t(kDiskBytes));
    ASSERT_EQ(status, VIRTIO_BLK_S_OK);
    for (uint64_t sector = 0; sector < 64; sector++) {
        const bool zeroed = (sector >= 8 && sector < 16) || (sector >= 40 && sector < 43) ||
                            (sector >= 20 && sector < 22);
        EXPECT_EQ(data[sector * 512 + 7], zeroed ? 0 : uint8_t(sector)) << sector;
    }
    EXPECT_EQ(blk->stats().discarded_bytes, 11u * 512);
    EXPECT_EQ(blk->stats().zeroed_bytes, 2u * 512);
    // The 4 KiB at sectors 8..15 are a hole in the file now.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_EQ(::lseek(fd.get(), 0, SEEK_HOLE), 4096);
}

TEST_F(BlockDeviceTest, MalformedDiscardAndWriteZeroesAreRefusedBeforeAnythingChanges) {
    start(DiskAccess::ReadWrite);
    auto ok_then_bad = range(0, 1);
    auto bad = range(63, 2);  // past the end
    ok_then_bad.insert(ok_then_bad.end(), bad.begin(), bad.end());
    EXPECT_EQ(request({header(VIRTIO_BLK_T_WRITE_ZEROES, 0), ok_then_bad}, 0).first,
              VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_DISCARD, 0), range(1, 1, 1)}, 0).first,
              VIRTIO_BLK_S_UNSUPP);  // unmap is for write zeroes only
    EXPECT_EQ(request({header(VIRTIO_BLK_T_WRITE_ZEROES, 0), range(1, 1, 2)}, 0).first,
              VIRTIO_BLK_S_UNSUPP);  // reserved flag
    EXPECT_EQ(request({header(VIRTIO_BLK_T_DISCARD, 0), std::vector<uint8_t>(15)}, 0).first,
              VIRTIO_BLK_S_IOERR);  // not a whole range
    std::vector<uint8_t> many;
    for (int i = 0; i < 33; i++) {
        auto r = range(0, 1);
        many.insert(many.end(), r.begin(), r.end());
    }
    EXPECT_EQ(request({header(VIRTIO_BLK_T_DISCARD, 0), many}, 0).first, VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_WRITE_ZEROES, 0), range(0, (1 << 21) + 1)}, 0).first,
              VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(blk->stats().bad_requests, 4u);
    EXPECT_EQ(blk->stats().zeroed_bytes + blk->stats().discarded_bytes, 0u);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 0)}, 512);
    EXPECT_EQ(status, VIRTIO_BLK_S_OK);
    EXPECT_EQ(data[0], 0);  // sector 0 holds 0 anyway: check sector 1 too
    auto [status1, data1] = request({header(VIRTIO_BLK_T_IN, 1)}, 512);
    EXPECT_EQ(data1[0], 1);
}

TEST_F(BlockDeviceTest, ReadOnlyDisksOfferNeitherDiscardNorWriteZeroes) {
    start(DiskAccess::ReadOnly);
    EXPECT_FALSE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_DISCARD));
    EXPECT_FALSE(virtio::has_feature(driver->accepted_features(), VIRTIO_BLK_F_WRITE_ZEROES));
    EXPECT_EQ(request({header(VIRTIO_BLK_T_WRITE_ZEROES, 0), range(1, 1)}, 0).first,
              VIRTIO_BLK_S_IOERR);
    EXPECT_EQ(blk->stats().rejected_writes, 1u);
    auto [status, data] = request({header(VIRTIO_BLK_T_IN, 1)}, 512);
    EXPECT_EQ(data[0], 1);
}

TEST_F(BlockDeviceTest, UnknownRequestsAreUnsupportedAndShortHeadersFail) {
    start(DiskAccess::ReadWrite);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_SECURE_ERASE, 0)}, 0).first, VIRTIO_BLK_S_UNSUPP);
    EXPECT_EQ(request({header(77, 0)}, 0).first, VIRTIO_BLK_S_UNSUPP);
    EXPECT_EQ(request({{1, 2, 3}}, 0).first, VIRTIO_BLK_S_IOERR);
    // No writable byte at all: returned with length 0.
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({header(VIRTIO_BLK_T_IN, 0)}, {}));
    q.kick();
    auto used = q.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, 0u);
}

TEST(BlockDeviceCreate, RejectsLongSerialsAndMissingDisks) {
    EXPECT_FALSE(
        BlockDevice::create({.disk = nullptr, .serial = "", .access = DiskAccess::ReadWrite}).ok());
    EXPECT_FALSE(RawDiskImage::open("/nonexistent/disk.img", DiskAccess::ReadOnly).ok());
}

}  // namespace
}  // namespace msb::devices
