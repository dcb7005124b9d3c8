// Parsing and layout helpers of the SDK/CLI.
#include "sdk/util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace msb::sdk {
namespace {

TEST(SandboxName, AcceptsLowerCaseNamesUpTo63Characters) {
    EXPECT_TRUE(validate_name("web").ok());
    EXPECT_TRUE(validate_name("a1_b.c-d").ok());
    EXPECT_TRUE(validate_name("0abc").ok());
    EXPECT_TRUE(validate_name(std::string(63, 'a')).ok());
}

TEST(SandboxName, RejectsEmptyLongUpperCaseAndBadFirstCharacters) {
    EXPECT_FALSE(validate_name("").ok());
    EXPECT_FALSE(validate_name(std::string(64, 'a')).ok());
    EXPECT_FALSE(validate_name("Web").ok());
    EXPECT_FALSE(validate_name("-web").ok());
    EXPECT_FALSE(validate_name(".web").ok());
    EXPECT_FALSE(validate_name("a/b").ok());
    EXPECT_FALSE(validate_name("a b").ok());
    EXPECT_NE(validate_name("A").error().message().find("lower-case"), std::string::npos);
}

TEST(SizeParsing, UnderstandsSuffixesAndBareNumbers) {
    EXPECT_EQ(MUST(parse_size_bytes("512M")), 512ull << 20);
    EXPECT_EQ(MUST(parse_size_bytes("1G")), 1ull << 30);
    EXPECT_EQ(MUST(parse_size_bytes("1gib")), 1ull << 30);
    EXPECT_EQ(MUST(parse_size_bytes("64K")), 64ull << 10);
    EXPECT_EQ(MUST(parse_size_bytes("100")), 100u);
    EXPECT_EQ(MUST(parse_memory_mib("512M")), 512u);
    EXPECT_EQ(MUST(parse_memory_mib("1G")), 1024u);
    EXPECT_EQ(MUST(parse_memory_mib("256")), 256u);
}

TEST(SizeParsing, RejectsGarbageOverflowAndZeroMemory) {
    for (const char* bad : {"", "M", "12X", "1.5G", "-1G", "G1", "99999999999999999999999", "1 G"})
        EXPECT_FALSE(parse_size_bytes(bad).ok()) << bad;
    EXPECT_FALSE(parse_size_bytes("99999999999T").ok());
    EXPECT_FALSE(parse_memory_mib("100K").ok());
    EXPECT_FALSE(parse_memory_mib("lots").ok());
}

TEST(DurationParsing, UnderstandsSecondsMinutesHours) {
    EXPECT_EQ(MUST(parse_duration_secs("30s")), 30u);
    EXPECT_EQ(MUST(parse_duration_secs("5m")), 300u);
    EXPECT_EQ(MUST(parse_duration_secs("1h")), 3600u);
    EXPECT_EQ(MUST(parse_duration_secs("45")), 45u);
    EXPECT_EQ(MUST(parse_duration_secs("1500ms")), 2u);
    EXPECT_EQ(parse_duration_ms("250ms")->count(), 250);
}

TEST(DurationParsing, RejectsGarbage) {
    for (const char* bad : {"", "s", "5x", "1.5h", "-3s", "5 m", "h1", "99999999999999999999d"})
        EXPECT_FALSE(parse_duration_secs(bad).ok()) << bad;
}

TEST(SpecParsing, VolumeNeedsHostAndAbsoluteGuestPath) {
    auto v = MUST(parse_volume("/src:/work:ro"));
    EXPECT_EQ(v.host, "/src");
    EXPECT_EQ(v.guest, "/work");
    EXPECT_EQ(v.access, Access::ReadOnly);
    EXPECT_EQ(parse_volume("./a:/b")->access, Access::ReadWrite);
    EXPECT_FALSE(parse_volume("/only").ok());
    EXPECT_FALSE(parse_volume("/a:relative").ok());
    EXPECT_FALSE(parse_volume("/a:/b:rx").ok());
    EXPECT_FALSE(parse_volume(":/b").ok());
    EXPECT_FALSE(parse_volume("/a:/b:ro:x").ok());
}

TEST(SpecParsing, DiskTakesOptionalFormatAndReadOnly) {
    auto d = MUST(parse_disk("/img.qcow2:qcow2:ro"));
    EXPECT_EQ(d.path, "/img.qcow2");
    EXPECT_EQ(d.format, "qcow2");
    EXPECT_EQ(d.access, Access::ReadOnly);
    EXPECT_EQ(parse_disk("/a.raw")->format, "raw");
    EXPECT_EQ(parse_disk("/a.raw:ro")->access, Access::ReadOnly);
    EXPECT_EQ(parse_disk("/a.vmdk:vmdk:ro")->format, "vmdk");
    auto iso = parse_disk("/a:iso");
    ASSERT_FALSE(iso.ok());
    EXPECT_NE(iso.error().message().find("unknown disk image format: iso"), std::string::npos);
    EXPECT_FALSE(parse_disk("/a:raw:rx").ok());
    EXPECT_FALSE(parse_disk("").ok());
}

TEST(SpecParsing, TmpfsTakesAnOptionalSize) {
    EXPECT_EQ(parse_tmpfs("/tmp")->size_bytes, 0u);
    EXPECT_EQ(parse_tmpfs("/tmp:64M")->size_bytes, 64ull << 20);
    EXPECT_EQ(parse_tmpfs("/tmp:16")->size_bytes, 16ull << 20);
    EXPECT_FALSE(parse_tmpfs("tmp").ok());
    EXPECT_FALSE(parse_tmpfs("/tmp:big").ok());
    auto env = MUST(parse_env("A=b=c"));
    EXPECT_EQ(env.first, "A");
    EXPECT_EQ(env.second, "b=c");
    EXPECT_FALSE(parse_env("=x").ok());
    EXPECT_FALSE(parse_env("NOEQ").ok());
}

TEST(SocketPath, IsShortStableAndRejectedWhenTooLong) {
    auto a = MUST(agent_socket_path("/home/u/.msb", std::string(63, 'x')));
    EXPECT_EQ(a, MUST(agent_socket_path("/home/u/.msb", std::string(63, 'x'))));
    EXPECT_NE(a, MUST(agent_socket_path("/home/u/.msb", "other")));
    EXPECT_LT(a.size(), 108u);
    EXPECT_EQ(a.rfind("/home/u/.msb/run/", 0), 0u);
    auto long_home = "/" + std::string(90, 'h');
    auto bad = agent_socket_path(long_home, "web");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message().find("MSB_HOME"), std::string::npos);
}

TEST(LogTail, ReadsAcrossRotatedFilesOldestFirst) {
    auto dir = std::filesystem::temp_directory_path() / ("msb-tail-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string base = (dir / "host.log").string();
    std::ofstream(base + ".3") << "l1\nl2\n";
    std::ofstream(base + ".2") << "l3\n";
    std::ofstream(base + ".1") << "l4\nl5";
    std::ofstream(base) << "l6\nl7\n";
    auto tail = tail_rotated_log(base, 4);
    EXPECT_EQ(tail, (std::vector<std::string>{"l4", "l5", "l6", "l7"}));
    EXPECT_EQ(tail_rotated_log(base, 100).size(), 7u);
    EXPECT_EQ(read_rotated_log(base), "l1\nl2\nl3\nl4\nl5\nl6\nl7\n");
    EXPECT_TRUE(tail_rotated_log((dir / "none.log").string(), 3).empty());
    std::filesystem::remove_all(dir);
}

TEST(ConfigJson, RoundTripsEverySetting) {
    SandboxConfig c;
    c.name = "web";
    c.cpus = 2;
    c.memory_mib = 1024;
    c.rootfs = "/r";
    c.disk = DiskImageSpec{"/d.img", "qcow2", Access::ReadOnly};
    c.volumes.push_back({"/h", "/g", Access::ReadOnly});
    c.tmpfs.push_back({"/t", 1 << 20});
    c.env.emplace_back("A", "1=2");
    c.workdir = "/w";
    c.user = "nobody";
    c.hostname = "box";
    c.idle_timeout_secs = 2;
    c.max_duration_secs = 60;
    c.kernel = "/k";
    auto back = MUST(config_from_json(config_to_json(c)));
    EXPECT_EQ(config_to_json(back), config_to_json(c));
    EXPECT_EQ(back.idle_timeout_secs, 2u);
    EXPECT_EQ(back.env[0].second, "1=2");
    EXPECT_FALSE(config_from_json("not json").ok());
}

TEST(ProcessLiveness, OnlyMsbSandboxProcessesCount) {
    EXPECT_FALSE(sandbox_process_alive(::getpid()));  // a test binary, not `msb sandbox`
    EXPECT_FALSE(sandbox_process_alive(0));
    EXPECT_FALSE(sandbox_process_alive(0x3ffffff));
}

}  // namespace
}  // namespace msb::sdk
