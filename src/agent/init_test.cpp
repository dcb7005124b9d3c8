#include "agent/init.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

namespace msb::agent {
namespace {

class FakeSysfs : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/msb-sysfs-XXXXXX";
        m_root = ::mkdtemp(tmpl);
    }
    void TearDown() override { std::system(("rm -rf '" + m_root + "'").c_str()); }
    void put(const std::string& rel, const std::string& content) {
        std::string path = m_root + "/" + rel;
        std::system(("mkdir -p '" + path.substr(0, path.rfind('/')) + "'").c_str());
        std::ofstream(path) << content;
    }
    std::string m_root;
};

TEST_F(FakeSysfs, FindsThePortByItsName) {
    put("class/virtio-ports/vport0p0/name", "");
    put("class/virtio-ports/vport0p1/name", "agent\n");
    put("class/virtio-ports/vport0p2/name", "agent2\n");
    auto port = find_port_device("agent", m_root);
    ASSERT_TRUE(port.ok()) << port.error().message();
    EXPECT_EQ(port.value(), "/dev/vport0p1");
    auto missing = find_port_device("other", m_root);
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.error().message().find("\"other\""), std::string::npos);
}

TEST_F(FakeSysfs, FindsTheDiskBySerial) {
    put("block/vda/serial", "root\n");
    put("block/vdb/serial", "data-1");
    put("block/loop0/size", "0");
    auto disk = find_disk_by_serial("data-1", m_root);
    ASSERT_TRUE(disk.ok());
    EXPECT_EQ(disk.value(), "/dev/vdb");
    EXPECT_FALSE(find_disk_by_serial("data", m_root).ok());
}

TEST_F(FakeSysfs, DiskMountNamesTheEntryWhenTheSerialIsUnknown) {
    GuestConfig config;
    config.disk_mounts.push_back({"missing-disk", "/mnt/x", std::nullopt, Access::ReadWrite});
    Status st = apply_mounts(config, m_root);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("MSB_DISK_MOUNTS entry missing-disk:/mnt/x"),
              std::string::npos)
        << st.error().message();
}

}  // namespace
}  // namespace msb::agent
