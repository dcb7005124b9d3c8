#include "agent/guest_config.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include "agent/boot_config.h"

namespace msb::agent {
namespace {

Result<GuestConfig> parse1(const std::string& entry) { return GuestConfig::parse({entry}); }

// The error names the variable and quotes its value.
void expect_rejected(const std::string& entry, const std::string& reason_part) {
    auto config = parse1(entry);
    ASSERT_FALSE(config.ok()) << entry;
    std::string name = entry.substr(0, entry.find('='));
    std::string value = entry.substr(entry.find('=') + 1);
    EXPECT_EQ(config.error().message().rfind(name + "=\"" + value + "\": ", 0), 0u)
        << config.error().message();
    EXPECT_NE(config.error().message().find(reason_part), std::string::npos)
        << config.error().message();
}

TEST(GuestConfig, DefaultsWhenNoVariableIsSet) {
    auto config = GuestConfig::parse({"PATH=/bin", "HOME=/root"});
    ASSERT_TRUE(config.ok());
    EXPECT_FALSE(config->block_root);
    EXPECT_FALSE(config->virtiofs_root);
    EXPECT_EQ(config->hostname, "msb");
    EXPECT_TRUE(config->dir_mounts.empty());
    EXPECT_FALSE(config->user);
}

TEST(GuestConfig, ParsesBlockRootInBothForms) {
    auto modern = parse1("MSB_BLOCK_ROOT=kind=disk-image,device=/dev/vda,fstype=ext4");
    ASSERT_TRUE(modern.ok()) << modern.error().message();
    EXPECT_EQ(modern->block_root->device, "/dev/vda");
    EXPECT_EQ(modern->block_root->fstype, "ext4");

    auto legacy = parse1("MSB_BLOCK_ROOT=/dev/vdb");
    ASSERT_TRUE(legacy.ok());
    EXPECT_EQ(legacy->block_root->device, "/dev/vdb");
    EXPECT_FALSE(legacy->block_root->fstype);

    auto legacy_fs = parse1("MSB_BLOCK_ROOT=/dev/vda,fstype=erofs");
    ASSERT_TRUE(legacy_fs.ok());
    EXPECT_EQ(legacy_fs->block_root->fstype, "erofs");
}

TEST(GuestConfig, RejectsMalformedBlockRoot) {
    expect_rejected("MSB_BLOCK_ROOT=kind=nbd,device=/dev/vda", "unsupported kind");
    expect_rejected("MSB_BLOCK_ROOT=vda", "device must be a /dev path");
    expect_rejected("MSB_BLOCK_ROOT=kind=disk-image,device=/dev/vda,color=red", "unknown key");
    expect_rejected("MSB_BLOCK_ROOT=/dev/vda,fstype=ext4;rm", "invalid fstype");
}

TEST(GuestConfig, ParsesVirtiofsRootAndRejectsConflicts) {
    auto plain = parse1("MSB_ROOT=virtiofs");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain->virtiofs_root->tag, "/dev/root");
    auto tagged = parse1("MSB_ROOT=virtiofs:rootfs");
    ASSERT_TRUE(tagged.ok());
    EXPECT_EQ(tagged->virtiofs_root->tag, "rootfs");
    EXPECT_FALSE(parse1("MSB_ROOT=nfs").ok());
    auto both = GuestConfig::parse({"MSB_BLOCK_ROOT=/dev/vda", "MSB_ROOT=virtiofs"});
    ASSERT_FALSE(both.ok());
    EXPECT_NE(both.error().message().find("MSB_ROOT"), std::string::npos);
}

TEST(GuestConfig, ParsesDirFileAndDiskMounts) {
    auto config = GuestConfig::parse({
        "MSB_DIR_MOUNTS=data:/data;cfg:/etc/app:ro",
        "MSB_FILE_MOUNTS=f0:app.conf:/etc/app.conf:ro",
        "MSB_DISK_MOUNTS=disk1:/mnt/one;disk2:/mnt/two:xfs:ro;disk3:/mnt/three:ro",
    });
    ASSERT_TRUE(config.ok()) << config.error().message();
    ASSERT_EQ(config->dir_mounts.size(), 2u);
    EXPECT_EQ(config->dir_mounts[0].tag, "data");
    EXPECT_EQ(config->dir_mounts[0].access, Access::ReadWrite);
    EXPECT_EQ(config->dir_mounts[1].guest_path, "/etc/app");
    EXPECT_EQ(config->dir_mounts[1].access, Access::ReadOnly);
    ASSERT_EQ(config->file_mounts.size(), 1u);
    EXPECT_EQ(config->file_mounts[0].filename, "app.conf");
    EXPECT_EQ(config->file_mounts[0].access, Access::ReadOnly);
    ASSERT_EQ(config->disk_mounts.size(), 3u);
    EXPECT_FALSE(config->disk_mounts[0].fstype);
    EXPECT_EQ(config->disk_mounts[1].fstype, "xfs");
    EXPECT_EQ(config->disk_mounts[1].access, Access::ReadOnly);
    EXPECT_FALSE(config->disk_mounts[2].fstype);
    EXPECT_EQ(config->disk_mounts[2].access, Access::ReadOnly);
}

TEST(GuestConfig, RejectsMalformedMounts) {
    expect_rejected("MSB_DIR_MOUNTS=data", "expected tag:guest_path");
    expect_rejected("MSB_DIR_MOUNTS=data:relative/path", "absolute path");
    expect_rejected("MSB_DIR_MOUNTS=data:/x:rox", "expected \"ro\" or \"rw\"");
    expect_rejected("MSB_DIR_MOUNTS=data:/a/../etc", "must not contain");
    expect_rejected("MSB_FILE_MOUNTS=f0:../x:/etc/x", "plain file name");
    expect_rejected("MSB_FILE_MOUNTS=f0:/etc/x", "expected tag:filename:guest_path");
    expect_rejected("MSB_DISK_MOUNTS=:/mnt", "id is empty");
    expect_rejected("MSB_DISK_MOUNTS=d:/mnt:ext4:maybe", "expected \"ro\" or \"rw\"");
}

TEST(GuestConfig, ParsesTmpfsOptions) {
    auto config = parse1("MSB_TMPFS=/scratch,size=64,noexec,mode=1777;/ro,ro");
    ASSERT_TRUE(config.ok()) << config.error().message();
    ASSERT_EQ(config->tmpfs.size(), 2u);
    EXPECT_EQ(config->tmpfs[0].path, "/scratch");
    EXPECT_EQ(config->tmpfs[0].size_mib, 64u);
    EXPECT_TRUE(config->tmpfs[0].noexec);
    EXPECT_EQ(config->tmpfs[0].mode, 01777u);
    EXPECT_EQ(config->tmpfs[1].access, Access::ReadOnly);
    EXPECT_FALSE(config->tmpfs[1].size_mib);
}

TEST(GuestConfig, RejectsMalformedTmpfs) {
    expect_rejected("MSB_TMPFS=/tmp,size=abc", "size: not a number");
    expect_rejected("MSB_TMPFS=/tmp,size=0", "at least 1 MiB");
    expect_rejected("MSB_TMPFS=/tmp,mode=999", "mode: not an octal number");
    expect_rejected("MSB_TMPFS=/tmp,exec", "unknown option");
    expect_rejected("MSB_TMPFS=tmp", "absolute path");
    expect_rejected("MSB_TMPFS=/tmp,size=99999999999999999999999", "out of range");
}

TEST(GuestConfig, ParsesHostnameUserAndRlimits) {
    auto config = GuestConfig::parse({"MSB_HOSTNAME=box-1", "MSB_USER=app:staff",
                                      "MSB_RLIMITS=nofile=1024:4096;nproc=512;core=unlimited"});
    ASSERT_TRUE(config.ok()) << config.error().message();
    EXPECT_EQ(config->hostname, "box-1");
    EXPECT_EQ(config->user->user, "app");
    EXPECT_EQ(config->user->group, "staff");
    ASSERT_EQ(config->rlimits.size(), 3u);
    EXPECT_EQ(config->rlimits[0].resource, RLIMIT_NOFILE);
    EXPECT_EQ(config->rlimits[0].soft, 1024u);
    EXPECT_EQ(config->rlimits[0].hard, 4096u);
    EXPECT_EQ(config->rlimits[1].soft, 512u);
    EXPECT_EQ(config->rlimits[1].hard, 512u);
    EXPECT_EQ(config->rlimits[2].soft, static_cast<uint64_t>(RLIM_INFINITY));
}

TEST(GuestConfig, RejectsMalformedHostnameUserAndRlimits) {
    expect_rejected("MSB_HOSTNAME=bad host", "invalid character");
    expect_rejected("MSB_HOSTNAME=", "1 to 64");
    expect_rejected("MSB_USER=a:b:c", "expected user[:group]");
    expect_rejected("MSB_USER=app:", "group is empty");
    expect_rejected("MSB_RLIMITS=nofile=10:5", "exceeds hard limit");
    expect_rejected("MSB_RLIMITS=files=10", "unknown resource");
    expect_rejected("MSB_RLIMITS=nofile", "expected resource=soft");
    expect_rejected("MSB_RLIMITS=nofile=-1", "not a number");
}

TEST(GuestConfig, HeartbeatRefreshIsWholeSecondsFromOneToAnHour) {
    EXPECT_EQ(GuestConfig::parse({})->heartbeat_refresh_s, 1u);
    auto config = GuestConfig::parse({"MSB_HEARTBEAT_REFRESH=30"});
    ASSERT_TRUE(config.ok()) << config.error().message();
    EXPECT_EQ(config->heartbeat_refresh_s, 30u);
    EXPECT_EQ(GuestConfig::parse({"MSB_HEARTBEAT_REFRESH=3600"})->heartbeat_refresh_s, 3600u);
    expect_rejected("MSB_HEARTBEAT_REFRESH=0", "1 to 3600");
    expect_rejected("MSB_HEARTBEAT_REFRESH=3601", "1 to 3600");
    expect_rejected("MSB_HEARTBEAT_REFRESH=1.5", "not a number");
    expect_rejected("MSB_HEARTBEAT_REFRESH=", "empty number");
    expect_rejected("MSB_HEARTBEAT_REFRESH=99999999999999999999999", "out of range");
}

TEST(GuestConfig, ParsesAndValidatesNetwork) {
    auto config = GuestConfig::parse({
        "MSB_NET=iface=eth0,mac=02:00:00:00:00:01,mtu=1500",
        "MSB_NET_IPV4=addr=10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3",
        "MSB_NET_IPV6=addr=fd00::2/64,gw=fd00::1",
    });
    ASSERT_TRUE(config.ok()) << config.error().message();
    EXPECT_EQ(config->net->mac, "02:00:00:00:00:01");
    EXPECT_EQ(config->net->mtu, 1500u);
    EXPECT_EQ(config->ipv4->address, "10.0.2.15");
    EXPECT_EQ(config->ipv4->prefix, 24u);
    EXPECT_EQ(config->ipv4->gateway, "10.0.2.2");
    ASSERT_EQ(config->ipv4->dns.size(), 1u);
    EXPECT_EQ(config->ipv6->prefix, 64u);

    expect_rejected("MSB_NET=mac=zz:00:00:00:00:01", "invalid mac");
    expect_rejected("MSB_NET=mtu=10", "mtu out of range");
    expect_rejected("MSB_NET_IPV4=addr=10.0.2.15", "prefix length");
    expect_rejected("MSB_NET_IPV4=addr=10.0.2.300/24", "invalid address");
    expect_rejected("MSB_NET_IPV4=addr=10.0.2.1/33", "prefix length out of range");
    expect_rejected("MSB_NET_IPV6=gw=fd00::1", "addr= is required");
}

TEST(GuestConfig, LastDefinitionOfAVariableWins) {
    auto config = GuestConfig::parse({"MSB_HOSTNAME=first", "MSB_HOSTNAME=second"});
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config->hostname, "second");
}

TEST(BootConfig, RoundTripsThroughJson) {
    BootConfig config;
    config.exec_path = "/bin/sh";
    config.exec_args = {"-c", "echo \"hi\""};
    config.env = {"MSB_HOSTNAME=box", "A=b=c"};
    config.workdir = "/work";
    auto parsed = BootConfig::from_json(config.to_json());
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(parsed->exec_path, "/bin/sh");
    EXPECT_EQ(parsed->exec_args, config.exec_args);
    EXPECT_EQ(parsed->env, config.env);
    EXPECT_EQ(parsed->workdir, "/work");
}

TEST(BootConfig, AcceptsMissingFieldsAndRejectsWrongTypes) {
    auto empty = BootConfig::from_json("{}");
    ASSERT_TRUE(empty.ok());
    EXPECT_FALSE(empty->exec_path);
    EXPECT_TRUE(empty->env.empty());
    EXPECT_FALSE(BootConfig::from_json("[]").ok());
    EXPECT_FALSE(BootConfig::from_json("{\"env\": \"A=B\"}").ok());
    EXPECT_FALSE(BootConfig::from_json("{\"env\": [1]}").ok());
    EXPECT_FALSE(BootConfig::from_json("{\"exec_path\": 3}").ok());
    EXPECT_FALSE(BootConfig::from_json("{not json").ok());
}

TEST(BootConfig, MissingFileYieldsDefaults) {
    auto config = BootConfig::load("/nonexistent/msb/config.json");
    ASSERT_TRUE(config.ok());
    EXPECT_FALSE(config->exec_path);
}

}  // namespace
}  // namespace msb::agent
