// Tests of virtio-blk over a raw image, through the fake driver.
#include "devices/block/block_device.h"

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

TEST_F(BlockDeviceTest, UnknownRequestsAreUnsupportedAndShortHeadersFail) {
    start(DiskAccess::ReadWrite);
    EXPECT_EQ(request({header(VIRTIO_BLK_T_DISCARD, 0)}, 0).first, VIRTIO_BLK_S_UNSUPP);
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
