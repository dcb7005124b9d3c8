// virtio-fs through MmioTransport and the fake guest driver, over a PassthroughFs.
#include "devices/fs/fs_device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "devices/fs/fuse_test_util.h"
#include "testing/fake_driver.h"
#include "testing/loop_thread.h"
#include "virtio/mmio_transport.h"

namespace msb::devices::fs {
namespace {

constexpr std::chrono::seconds kWait{2};
using testing::parse_reply;
using testing::Reply;
using testing::RequestBuilder;
namespace stdfs = std::filesystem;

TEST(FsShareSpec, ParsesTagPathAndAccess) {
    auto rw = MUST(parse_share("work:/srv/work"));
    EXPECT_EQ(rw.tag, "work");
    EXPECT_EQ(rw.host_path, "/srv/work");
    EXPECT_EQ(rw.access, Access::ReadWrite);
    auto ro = MUST(parse_share("data:/a:b/c:ro"));
    EXPECT_EQ(ro.host_path, "/a:b/c");
    EXPECT_EQ(ro.access, Access::ReadOnly);
    EXPECT_FALSE(parse_share("nopath").ok());
    EXPECT_FALSE(parse_share(":/x").ok());
    EXPECT_FALSE(parse_share("t:").ok());
    EXPECT_FALSE(parse_share("t::ro").ok());
    EXPECT_FALSE(parse_share(std::string(37, 't') + ":/x").ok());
}

TEST(FsDeviceCreate, RefusesBadTags) {
    auto fs = std::make_shared<FileSystem>();
    EXPECT_FALSE(FsDevice::create("", fs).ok());
    EXPECT_FALSE(FsDevice::create(std::string(37, 'x'), fs).ok());
    EXPECT_FALSE(FsDevice::create("ok", nullptr).ok());
    EXPECT_TRUE(FsDevice::create(std::string(36, 'x'), fs).ok());
}

class FsDeviceTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/msb-fsdev-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        share = tmpl;
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 16 << 20}})));
        thread = MUST(msb::testing::LoopThread::create());
        device = MUST(FsDevice::create_for_share({"myshare", share.string(), Access::ReadWrite}));
        transport = MUST(virtio::MmioTransport::create(device));
        transport->attach_memory(*memory);
        MUST(transport->start(thread->loop()));
        driver.emplace(*transport, *memory);
        ASSERT_TRUE(driver->init(~0ull, {64, 256}).ok());
    }
    void TearDown() override {
        thread.reset();
        stdfs::remove_all(share);
    }

    // Sends one request on the request queue (index 1) and waits for the reply.
    Reply send(const std::vector<uint8_t>& request, uint32_t reply_size = 8192,
               msb::testing::Layout layout = msb::testing::Layout::Direct) {
        auto& q = driver->queue(1);
        // Linux puts the in header and the arguments in separate buffers; so do we.
        std::vector<std::vector<uint8_t>> readable;
        readable.emplace_back(
            request.begin(),
            request.begin() + static_cast<long>(std::min(request.size(), sizeof(fuse_in_header))));
        if (request.size() > sizeof(fuse_in_header))
            readable.emplace_back(request.begin() + sizeof(fuse_in_header), request.end());
        std::vector<uint32_t> writable;
        if (reply_size > 0)
            writable = {static_cast<uint32_t>(sizeof(fuse_out_header)),
                        reply_size - static_cast<uint32_t>(sizeof(fuse_out_header))};
        EXPECT_TRUE(q.add(readable, writable, layout));
        q.kick();
        auto used = q.wait_used(kWait);
        if (!used) {
            ADD_FAILURE() << "no reply";
            return {};
        }
        last_used = used->length;
        return parse_reply(used->written, used->length);
    }

    stdfs::path share;
    std::optional<kvm::GuestMemory> memory;
    std::unique_ptr<msb::testing::LoopThread> thread;
    std::shared_ptr<FsDevice> device;
    std::shared_ptr<virtio::MmioTransport> transport;
    std::optional<msb::testing::FakeDriver> driver;
    uint32_t last_used = 0;
};

TEST_F(FsDeviceTest, IsDevice26WithTagAndOneRequestQueue) {
    EXPECT_EQ(driver->read32(0x008), 26u);
    std::string tag;
    for (uint64_t i = 0; i < 36; ++i) tag.push_back(static_cast<char>(driver->read_config(i, 1)));
    EXPECT_EQ(tag.substr(0, 7), "myshare");
    EXPECT_EQ(tag[7], '\0');
    EXPECT_EQ(driver->read_config(36, 4), 1u);
    EXPECT_EQ(device->queue_max_sizes().size(), 2u);
}

TEST_F(FsDeviceTest, ServesInitLookupCreateWriteReadAndReaddir) {
    Reply r = send(testing::init_request());
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(r.header.unique, 1u);
    EXPECT_EQ(r.as<fuse_init_out>().max_write, FuseServer::kMaxWrite);

    std::ofstream(share / "existing") << "host data";
    r = send(RequestBuilder(FUSE_LOOKUP, FUSE_ROOT_ID, 2).name("existing").build());
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(r.as<fuse_entry_out>().attr.size, 9u);

    fuse_create_in create{};
    create.flags = O_RDWR | O_CREAT, create.mode = S_IFREG | 0644;
    r = send(RequestBuilder(FUSE_CREATE, FUSE_ROOT_ID, 3).append(create).name("new.txt").build());
    ASSERT_EQ(r.header.error, 0);
    uint64_t node = r.as<fuse_entry_out>().nodeid;
    uint64_t fh = r.as<fuse_open_out>(sizeof(fuse_entry_out)).fh;

    const std::string data(10000, 'z');
    fuse_write_in write{};
    write.fh = fh, write.size = static_cast<uint32_t>(data.size());
    r = send(RequestBuilder(FUSE_WRITE, node, 4).append(write).bytes(data).build(), 8192,
             msb::testing::Layout::Indirect);
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(r.as<fuse_write_out>().size, data.size());

    fuse_read_in read{};
    read.fh = fh, read.size = 12000;
    r = send(RequestBuilder(FUSE_READ, node, 5).append(read).build(), 16384);
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(std::string(r.payload.begin(), r.payload.end()), data);
    std::stringstream host;
    host << std::ifstream(share / "new.txt").rdbuf();
    EXPECT_EQ(host.str(), data);

    fuse_open_in open{};
    r = send(RequestBuilder(FUSE_OPENDIR, FUSE_ROOT_ID, 6).append(open).build());
    ASSERT_EQ(r.header.error, 0);
    fuse_read_in rd{};
    rd.fh = r.as<fuse_open_out>().fh, rd.size = 4096;
    r = send(RequestBuilder(FUSE_READDIR, FUSE_ROOT_ID, 7).append(rd).build());
    ASSERT_EQ(r.header.error, 0);
    std::vector<std::string> names;
    for (size_t pos = 0; pos + FUSE_NAME_OFFSET <= r.payload.size();) {
        auto d = r.as<fuse_dirent>(pos);
        names.emplace_back(reinterpret_cast<const char*>(r.payload.data() + pos + FUSE_NAME_OFFSET),
                           d.namelen);
        pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{".", "..", "existing", "new.txt"}));
    EXPECT_EQ(device->malformed_requests(), 0u);
}

TEST_F(FsDeviceTest, ForgetOnTheHiprioQueueGetsNoReplyBytes) {
    ASSERT_EQ(send(testing::init_request()).header.error, 0);
    fuse_forget_in in{};
    in.nlookup = 1;
    auto& q = driver->queue(0);
    ASSERT_TRUE(q.add({RequestBuilder(FUSE_FORGET, 5).append(in).build()}, {}));
    q.kick();
    auto used = q.wait_used(kWait);
    ASSERT_TRUE(used);
    EXPECT_EQ(used->length, 0u);
    EXPECT_EQ(device->dropped_requests(), 0u);
}

TEST_F(FsDeviceTest, MalformedChainsAreAnsweredOrDroppedNeverFatal) {
    ASSERT_EQ(send(testing::init_request()).header.error, 0);
    // No writable buffer at all: dropped and counted, the chain still returned.
    send(RequestBuilder(FUSE_LOOKUP, 1).name("x").build(), 0);
    EXPECT_EQ(last_used, 0u);
    EXPECT_EQ(device->dropped_requests(), 1u);
    // A header claiming more bytes than the chain carries.
    Reply r = send(RequestBuilder(FUSE_LOOKUP, 1).name("x").build(1 << 20));
    EXPECT_EQ(r.header.error, -EINVAL);
    // Only part of a header.
    r = send(std::vector<uint8_t>(10, 0xff));
    EXPECT_EQ(r.header.error, -EINVAL);
    // The device keeps serving.
    r = send(RequestBuilder(FUSE_STATFS, 1).build());
    EXPECT_EQ(r.header.error, 0);
    EXPECT_EQ(device->malformed_requests(), 2u);
}

TEST_F(FsDeviceTest, ResetEndsTheFuseSession) {
    ASSERT_EQ(send(testing::init_request()).header.error, 0);
    ASSERT_TRUE(driver->init(~0ull, {64, 256}).ok());
    EXPECT_EQ(send(RequestBuilder(FUSE_STATFS, 1).build()).header.error, -EIO);
}

}  // namespace
}  // namespace msb::devices::fs
