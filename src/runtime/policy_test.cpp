// Policy JSON, the exit-reason mapping, and the seed's vm.rs helper tests (ported).
#include "runtime/policy.h"

#include <gtest/gtest.h>

#include <thread>

namespace msb::runtime {
namespace {

using store::TerminationReason;

TEST(SandboxPolicy, JsonRoundTrip) {
    SandboxPolicy policy{.max_duration_secs = 3600, .idle_timeout_secs = 120};
    std::string json = policy_to_json(policy);
    EXPECT_EQ(json, R"({"max_duration_secs":3600,"idle_timeout_secs":120})");
    auto decoded = parse_policy_json(json);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->max_duration_secs, 3600u);
    EXPECT_EQ(decoded->idle_timeout_secs, 120u);
}

TEST(SandboxPolicy, DefaultHasNoLimits) {
    SandboxPolicy policy;
    EXPECT_FALSE(policy.max_duration_secs.has_value());
    EXPECT_FALSE(policy.idle_timeout_secs.has_value());
    EXPECT_EQ(policy_to_json(policy), R"({"max_duration_secs":null,"idle_timeout_secs":null})");
    auto empty = parse_policy_json("{}");
    ASSERT_TRUE(empty.ok());
    EXPECT_FALSE(empty->max_duration_secs.has_value());
}

TEST(SandboxPolicy, RejectsNegativeFractionalAndNonNumericValues) {
    EXPECT_FALSE(parse_policy_json(R"({"max_duration_secs":-1})").ok());
    EXPECT_FALSE(parse_policy_json(R"({"idle_timeout_secs":1.5})").ok());
    EXPECT_FALSE(parse_policy_json(R"({"idle_timeout_secs":"10"})").ok());
    EXPECT_FALSE(parse_policy_json("[]").ok());
    EXPECT_FALSE(parse_policy_json("{").ok());
    EXPECT_TRUE(parse_policy_json(R"({"other":1,"idle_timeout_secs":null})").ok());
}

TEST(TerminationReasonFor, MapsTriggersLikeTheSeedObserver) {
    EXPECT_EQ(termination_reason_for(0, ExitTrigger::None), TerminationReason::Completed);
    EXPECT_EQ(termination_reason_for(1, ExitTrigger::None), TerminationReason::Failed);
    EXPECT_EQ(termination_reason_for(-1, ExitTrigger::None), TerminationReason::Failed);
    EXPECT_EQ(termination_reason_for(137, ExitTrigger::None), TerminationReason::Failed);
    // A trigger wins over the exit code, whatever it is.
    for (int code : {0, 1, 143}) {
        EXPECT_EQ(termination_reason_for(code, ExitTrigger::IdleTimeout),
                  TerminationReason::IdleTimeout);
        EXPECT_EQ(termination_reason_for(code, ExitTrigger::MaxDuration),
                  TerminationReason::MaxDurationExceeded);
        EXPECT_EQ(termination_reason_for(code, ExitTrigger::Signal), TerminationReason::Signal);
        EXPECT_EQ(termination_reason_for(code, ExitTrigger::Drain),
                  TerminationReason::DrainRequested);
        EXPECT_EQ(termination_reason_for(code, ExitTrigger::InternalError),
                  TerminationReason::InternalError);
    }
}

TEST(ExitTriggerSlot, TheFirstRecordedTriggerWins) {
    ExitTriggerSlot slot;
    EXPECT_EQ(slot.trigger(), ExitTrigger::None);
    EXPECT_TRUE(slot.record(ExitTrigger::MaxDuration));
    EXPECT_FALSE(slot.record(ExitTrigger::IdleTimeout));
    EXPECT_EQ(slot.trigger(), ExitTrigger::MaxDuration);

    ExitTriggerSlot raced;
    int winners = 0;
    std::atomic<int> wins{0};
    {
        std::vector<std::jthread> threads;
        for (int i = 0; i < 8; ++i) {
            threads.emplace_back([&, i] {
                if (raced.record(i % 2 ? ExitTrigger::Signal : ExitTrigger::Drain)) ++wins;
            });
        }
    }
    winners = wins.load();
    EXPECT_EQ(winners, 1);
    EXPECT_NE(raced.trigger(), ExitTrigger::None);
}

// Ported from the seed's vm.rs tests.
TEST(ValidateDiskFormat, RejectsUnknownValues) {
    auto err = validate_disk_format("iso");
    ASSERT_FALSE(err.ok());
    EXPECT_NE(err.error().message().find("unknown disk image format"), std::string::npos);
    EXPECT_EQ(err.error().message(), "unknown disk image format: iso");
}

TEST(ValidateDiskFormat, AcceptsKnownValuesAndDefaultsToRaw) {
    EXPECT_EQ(validate_disk_format(std::nullopt).value_or(DiskFormat::Vmdk), DiskFormat::Raw);
    EXPECT_EQ(validate_disk_format("raw").value_or(DiskFormat::Vmdk), DiskFormat::Raw);
    EXPECT_EQ(validate_disk_format("qcow2").value_or(DiskFormat::Raw), DiskFormat::Qcow2);
    EXPECT_EQ(validate_disk_format("vmdk").value_or(DiskFormat::Raw), DiskFormat::Vmdk);
    EXPECT_FALSE(validate_disk_format("QCOW2").ok()) << "case-sensitive, as the seed";
    EXPECT_EQ(disk_format_name(DiskFormat::Qcow2), "qcow2");
}

TEST(AppendBlockRootEnv, AddsDefaultDevice) {
    std::vector<std::string> env = {"FOO=bar"};
    append_block_root_env(env);
    EXPECT_EQ(env, (std::vector<std::string>{"FOO=bar", "MSB_BLOCK_ROOT=/dev/vda"}));
}

TEST(AppendBlockRootEnv, PreservesExistingValue) {
    std::vector<std::string> env = {"MSB_BLOCK_ROOT=/dev/vdb,fstype=xfs"};
    append_block_root_env(env);
    EXPECT_EQ(env, (std::vector<std::string>{"MSB_BLOCK_ROOT=/dev/vdb,fstype=xfs"}));
}

TEST(PrependScriptsPath, UpdatesExistingPath) {
    std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
    prepend_scripts_path(env);
    EXPECT_EQ(env, (std::vector<std::string>{"PATH=/.msb/scripts:/usr/bin:/bin"}));
}

TEST(PrependScriptsPath, AddsDefaultPathWhenMissing) {
    std::vector<std::string> env = {"LANG=C.UTF-8"};
    prepend_scripts_path(env);
    EXPECT_EQ(
        env,
        (std::vector<std::string>{
            "LANG=C.UTF-8",
            "PATH=/.msb/scripts:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
}

TEST(PrependScriptsPath, AvoidsDuplicates) {
    std::vector<std::string> env = {"PATH=/.msb/scripts:/usr/bin"};
    prepend_scripts_path(env);
    EXPECT_EQ(env, (std::vector<std::string>{"PATH=/.msb/scripts:/usr/bin"}));
    std::vector<std::string> later = {"PATH=/usr/bin:/.msb/scripts"};
    prepend_scripts_path(later);
    EXPECT_EQ(later, (std::vector<std::string>{"PATH=/usr/bin:/.msb/scripts"}));
    std::vector<std::string> similar = {"PATH=/.msb/scripts2"};
    prepend_scripts_path(similar);
    EXPECT_EQ(similar, (std::vector<std::string>{"PATH=/.msb/scripts:/.msb/scripts2"}));
}

TEST(PrependScriptsPath, HandlesAnEmptyPath) {
    std::vector<std::string> env = {"PATH="};
    prepend_scripts_path(env);
    EXPECT_EQ(env, (std::vector<std::string>{"PATH=/.msb/scripts:"}));
}

}  // namespace
}  // namespace msb::runtime
