#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace msb {
namespace {

Result<int> parse_positive(int v) {
    if (v <= 0) return Error("value must be positive", EINVAL);
    return v;
}

Result<int> doubled(int v) {
    int x = TRY(parse_positive(v));
    return x * 2;
}

Status check(int v) {
    TRY(parse_positive(v));
    return {};
}

TEST(Result, TryPropagatesValue) {
    auto r = doubled(21);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), 42);
}

TEST(Result, TryPropagatesErrorWithCode) {
    auto r = doubled(-1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message(), "value must be positive");
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_FALSE(check(0).ok());
    EXPECT_TRUE(check(1).ok());
}

TEST(Result, HoldsMoveOnlyValues) {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
    ASSERT_TRUE(r.ok());
    std::unique_ptr<int> p = std::move(r).value();
    EXPECT_EQ(*p, 7);
}

TEST(Error, FromErrnoNamesOperationAndReason) {
    Error e = Error::from_errno("open disk image /x/y.qcow2", ENOENT);
    EXPECT_EQ(e.message(), "open disk image /x/y.qcow2: No such file or directory");
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.with_context("attach disk").message(),
              "attach disk: open disk image /x/y.qcow2: No such file or directory");
}

TEST(Result, MustAbortsOnError) {
    EXPECT_DEATH(MUST(parse_positive(-5)), "value must be positive");
    EXPECT_EQ(MUST(parse_positive(5)), 5);
}

}  // namespace
}  // namespace msb
