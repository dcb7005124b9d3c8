#include "runtime/config.h"

#include <gtest/gtest.h>

namespace msb::runtime {
namespace {

TEST(MountSpec, ParsesTagPathAndReadOnly) {
    auto rw = MUST(MountSpec::parse("data:/srv/data"));
    EXPECT_EQ(rw.tag, "data");
    EXPECT_EQ(rw.host, "/srv/data");
    EXPECT_EQ(rw.access, Access::ReadWrite);
    auto ro = MUST(MountSpec::parse("cfg:/etc/app:ro"));
    EXPECT_EQ(ro.host, "/etc/app");
    EXPECT_EQ(ro.access, Access::ReadOnly);
}

TEST(MountSpec, RejectsMalformedValuesWithTheValueInTheMessage) {
    for (const char* bad : {"", "nocolon", ":/path", "tag:", "a:b:rw", "a:b:ro:x", "t;x:/p"}) {
        auto r = MountSpec::parse(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_NE(r.error().message().find(std::string("'") + bad + "'"), std::string::npos)
            << r.error().message();
    }
    EXPECT_FALSE(MountSpec::parse(std::string(37, 't') + ":/p").ok());
}

TEST(DiskSpec, ParsesIdPathFormatAndReadOnly) {
    auto d = MUST(DiskSpec::parse("vol1:/img/a.qcow2:qcow2:ro"));
    EXPECT_EQ(d.id, "vol1");
    EXPECT_EQ(d.host, "/img/a.qcow2");
    EXPECT_EQ(d.format, DiskFormat::Qcow2);
    EXPECT_EQ(d.access, Access::ReadOnly);
    EXPECT_EQ(MUST(DiskSpec::parse("x:/a.img:raw")).access, Access::ReadWrite);
}

TEST(DiskSpec, RejectsUnknownFormatsAndMissingFields) {
    auto iso = DiskSpec::parse("x:/a.iso:iso");
    ASSERT_FALSE(iso.ok());
    EXPECT_NE(iso.error().message().find("unknown disk image format: iso"), std::string::npos);
    EXPECT_FALSE(DiskSpec::parse("x:/a.img").ok());
    EXPECT_FALSE(DiskSpec::parse("x::raw").ok());
    EXPECT_FALSE(DiskSpec::parse(std::string(21, 'i') + ":/a:raw").ok());  // serial is 20 bytes
}

TEST(GuestEnv, AddsBlockRootForDiskRootsAndScriptsPath) {
    Config c;
    c.env = {"A=1"};
    auto env = guest_env(c);
    EXPECT_EQ(env.size(), 2u);
    EXPECT_EQ(env[1].rfind("PATH=/.msb/scripts:", 0), 0u);
    c.rootfs_disk = "/x.img";
    env = guest_env(c);
    EXPECT_NE(std::find(env.begin(), env.end(), "MSB_BLOCK_ROOT=/dev/vda"), env.end());
}

TEST(GuestEnv, PvmHostsRefreshAnUnchangedHeartbeatEvery30sUnlessTheCallerChose) {
    Config c;
    auto count = [](const std::vector<std::string>& env, const std::string& entry) {
        return std::count(env.begin(), env.end(), entry);
    };
    EXPECT_EQ(count(guest_env(c, /*pvm_host=*/false), "MSB_HEARTBEAT_REFRESH=30"), 0);
    EXPECT_EQ(count(guest_env(c, /*pvm_host=*/true), "MSB_HEARTBEAT_REFRESH=30"), 1);
    c.env = {"MSB_HEARTBEAT_REFRESH=1"};
    auto env = guest_env(c, /*pvm_host=*/true);
    EXPECT_EQ(count(env, "MSB_HEARTBEAT_REFRESH=30"), 0);
    EXPECT_EQ(count(env, "MSB_HEARTBEAT_REFRESH=1"), 1);
}

TEST(GuestEnv, DirectoryRootsBootFromVirtiofsUnlessTheCallerChoseARoot) {
    Config c;
    c.rootfs_path = "/srv/root";
    auto env = guest_env(c);
    EXPECT_EQ(std::count(env.begin(), env.end(), "MSB_ROOT=virtiofs"), 1);
    c.env = {"MSB_ROOT=virtiofs:other"};
    env = guest_env(c);
    EXPECT_EQ(std::count(env.begin(), env.end(), "MSB_ROOT=virtiofs"), 0);
    EXPECT_EQ(std::count(env.begin(), env.end(), "MSB_ROOT=virtiofs:other"), 1);
}

}  // namespace
}  // namespace msb::runtime
