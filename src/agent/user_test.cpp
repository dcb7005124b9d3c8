#include "agent/user.h"

#include <gtest/gtest.h>

namespace msb::agent {
namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# comment\n"
    "broken line\n"
    "app:x:1000:1000:App:/home/app:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "app:x:1000:\n"
    "staff:x:50:app,other\n"
    "docker:x:999:app\n"
    "nogroup:x:65534:\n";

TEST(UserResolution, ResolvesNameToUidGidHomeAndSupplementaryGroups) {
    auto user = resolve_user({"app", std::nullopt}, kPasswd, kGroup);
    ASSERT_TRUE(user.ok()) << user.error().message();
    EXPECT_EQ(user->uid, 1000u);
    EXPECT_EQ(user->gid, 1000u);
    EXPECT_EQ(user->home, "/home/app");
    EXPECT_EQ(user->name, "app");
    EXPECT_EQ(user->groups, (std::vector<gid_t>{1000, 50, 999}));
}

TEST(UserResolution, NumericUidFindsItsPasswdEntry) {
    auto user = resolve_user({"65534", std::nullopt}, kPasswd, kGroup);
    ASSERT_TRUE(user.ok());
    EXPECT_EQ(user->name, "nobody");
    EXPECT_EQ(user->gid, 65534u);
    EXPECT_EQ(user->home, "/nonexistent");
}

TEST(UserResolution, UnknownNumericUidGetsGidZeroAndRootHome) {
    auto user = resolve_user({"4242", std::nullopt}, kPasswd, kGroup);
    ASSERT_TRUE(user.ok());
    EXPECT_EQ(user->uid, 4242u);
    EXPECT_EQ(user->gid, 0u);
    EXPECT_EQ(user->home, "/");
    EXPECT_EQ(user->groups, std::vector<gid_t>{0});
}

TEST(UserResolution, GroupByNameOrNumberReplacesThePrimaryGroup) {
    auto by_name = resolve_user({"app", "staff"}, kPasswd, kGroup);
    ASSERT_TRUE(by_name.ok());
    EXPECT_EQ(by_name->gid, 50u);
    auto by_number = resolve_user({"1000", "1234"}, kPasswd, kGroup);
    ASSERT_TRUE(by_number.ok());
    EXPECT_EQ(by_number->uid, 1000u);
    EXPECT_EQ(by_number->gid, 1234u);
}

TEST(UserResolution, UnknownNamesAreErrors) {
    auto user = resolve_user({"ghost", std::nullopt}, kPasswd, kGroup);
    ASSERT_FALSE(user.ok());
    EXPECT_NE(user.error().message().find("ghost"), std::string::npos);
    auto group = resolve_user({"app", "wheel"}, kPasswd, kGroup);
    ASSERT_FALSE(group.ok());
    EXPECT_NE(group.error().message().find("wheel"), std::string::npos);
}

TEST(UserResolution, ReadsTheFilesOfARoot) {
    auto user = resolve_user_in_root({"root", std::nullopt}, "/");
    ASSERT_TRUE(user.ok()) << user.error().message();
    EXPECT_EQ(user->uid, 0u);
    auto missing = resolve_user_in_root({"7", std::nullopt}, "/nonexistent-root");
    ASSERT_TRUE(missing.ok());
    EXPECT_EQ(missing->uid, 7u);
}

TEST(UserSpecParsing, SplitsUserAndGroup) {
    auto spec = parse_user_spec("1000:100");
    ASSERT_TRUE(spec.ok());
    EXPECT_EQ(spec->user, "1000");
    EXPECT_EQ(spec->group, "100");
    EXPECT_FALSE(parse_user_spec("").ok());
    EXPECT_FALSE(parse_user_spec(":g").ok());
}

}  // namespace
}  // namespace msb::agent
