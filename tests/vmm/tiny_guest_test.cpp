// The VMM against /dev/kvm with guests of a few instructions (tests/guests/*.S): exits reach the
// buses, every way a guest can end maps to its exit status, and a stuck vCPU is stopped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>

#include "arch/x86_64/cpuid.h"
#include "base/event_fd.h"
#include "test_support.h"
#include "vmm/vm_builder.h"

namespace msb::vmm {
namespace {

using namespace std::chrono_literals;
using testing::kWatchdogCode;
using testing::run_with_watchdog;

std::vector<uint8_t> guest(const std::string& name) {
    auto bytes = testing::read_file(std::string(MSB_BINARY_DIR) + "/tests/guests/" + name + ".bin");
    EXPECT_FALSE(bytes.empty()) << name << ".bin missing: build the msb_test_guests target";
    return bytes;
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("msb-tiny-" + std::to_string(::getpid()) + "-" + name))
        .string();
}

bool on_pvm() { return arch::x86_64::detect_host_kind() == arch::x86_64::HostKind::Pvm; }

TEST(TinyGuest, SerialOutputAndExitPortStatusReachTheHost) {
    MSB_REQUIRE_KVM();
    std::string console = temp_path("console");
    auto vm =
        MUST(VmBuilder().flat_binary(guest("exit_port")).console({.output_path = console}).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail;
    EXPECT_EQ(status.code, 42);
    EXPECT_EQ(testing::read_text(console), "hi\n");
    std::filesystem::remove(console);
}

TEST(TinyGuest, BootMsrsAreWhatTheGuestReadsBack) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("msrs")).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    ASSERT_EQ(status.reason, ExitReason::GuestExit) << status.detail;
    // 7: MTRRs enabled with write-back default, fast strings on, LSTAR zero.
    EXPECT_EQ(status.code, 7);
}

// Records what the guest does in its window and answers reads with 0x2a.
class FakeDevice final : public virtio::MmioDevice {
public:
    FakeDevice() : m_irq(MUST(EventFd::create())) {}
    void mmio_read(uint64_t offset, std::span<uint8_t> data) override {
        last_read_offset = offset;
        std::memset(data.data(), 0, data.size());
        data[0] = 0x2a;
    }
    void mmio_write(uint64_t offset, std::span<const uint8_t> data) override {
        uint32_t v = 0;
        std::memcpy(&v, data.data(), std::min(data.size(), sizeof v));
        last_write_offset = offset;
        last_write_value = v;
    }
    std::vector<virtio::NotifyEvent> notify_events() const override { return {}; }
    int irq_fd() const override { return m_irq.fd(); }
    Status start(EventLoop&) override {
        started = true;
        return {};
    }

    std::atomic<uint64_t> last_read_offset{~0ULL};
    std::atomic<uint64_t> last_write_offset{~0ULL};
    std::atomic<uint32_t> last_write_value{0};
    std::atomic<bool> started{false};

private:
    EventFd m_irq;
};

TEST(TinyGuest, MmioAccessesReachTheDeviceInItsWindow) {
    MSB_REQUIRE_KVM();
    auto device = std::make_shared<FakeDevice>();
    auto vm = MUST(VmBuilder().flat_binary(guest("mmio")).mmio_device(device).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail;
    EXPECT_EQ(status.code, 0x2a);
    EXPECT_TRUE(device->started);
    EXPECT_EQ(device->last_read_offset, 0u);
    EXPECT_EQ(device->last_write_offset, 8u);
    EXPECT_EQ(device->last_write_value, 0x1234u);
}

TEST(TinyGuest, AHaltedGuestIsStoppedByTheExitHandle) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("halt")).build());
    auto started = std::chrono::steady_clock::now();
    ExitStatus status = run_with_watchdog(vm, 1s);
    EXPECT_EQ(status.reason, ExitReason::Triggered);
    EXPECT_EQ(status.code, kWatchdogCode);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);  // kicked out, not abandoned
}

TEST(TinyGuest, TripleFaultEndsTheVmWithItsOwnCode) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("ud2")).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    EXPECT_EQ(status.reason, ExitReason::TripleFault) << status.detail;
    EXPECT_EQ(status.code, kExitCodeTripleFault);
}

TEST(TinyGuest, I8042ResetEndsTheVmAsAGuestReset) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("i8042_reset")).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    EXPECT_EQ(status.reason, ExitReason::GuestReset) << status.detail;
    EXPECT_EQ(status.code, kExitCodeGuestReset);
}

TEST(TinyGuest, AnInstructionTheHostCannotRunIsReportedWithItsBytes) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("int3")).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    if (on_pvm()) {
        EXPECT_EQ(status.reason, ExitReason::InternalError) << status.detail;
        EXPECT_EQ(status.code, kExitCodeInternalError);
        EXPECT_NE(status.detail.find("rip 0x100000"), std::string::npos) << status.detail;
        EXPECT_NE(status.detail.find("cc f4"), std::string::npos) << status.detail;
    } else {
        // Hardware delivers #BP through the missing IDT: a triple fault, also not a hang.
        EXPECT_EQ(status.reason, ExitReason::TripleFault) << status.detail;
    }
}

TEST(TinyGuest, AnEmulationFailureIsReportedWithRipAndInstructionBytes) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("emulation_failure")).build());
    ExitStatus status = run_with_watchdog(vm, 20s);
    EXPECT_EQ(status.reason, ExitReason::InternalError) << status.detail;
    EXPECT_EQ(status.code, kExitCodeInternalError);
    // paddd (%rbx),%xmm0 = 66 0f fe 03, at offset 0x16 of the guest.
    EXPECT_NE(status.detail.find("rip 0x100016"), std::string::npos) << status.detail;
    EXPECT_NE(status.detail.find("66 0f fe 03"), std::string::npos) << status.detail;
}

TEST(TinyGuest, AHypercallNeverHangsTheHost) {
    MSB_REQUIRE_KVM();
    auto vm = MUST(VmBuilder().flat_binary(guest("vmcall")).build());
    auto started = std::chrono::steady_clock::now();
    ExitStatus status = run_with_watchdog(vm, 2s);
    if (on_pvm()) {
        // The vCPU never comes back from VMCALL there; the watchdog ends the VM regardless.
        EXPECT_EQ(status.reason, ExitReason::Triggered);
    } else {
        EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail;
        EXPECT_EQ(status.code, 5);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
}

TEST(TinyGuest, BuilderRejectsOutOfRangeMachines) {
    auto too_many = VmBuilder().machine(33, 128).flat_binary({0xf4}).build();
    ASSERT_FALSE(too_many.ok());
    EXPECT_NE(too_many.error().message().find("vCPU count 33"), std::string::npos);
    auto too_small = VmBuilder().machine(1, 64).flat_binary({0xf4}).build();
    ASSERT_FALSE(too_small.ok());
    EXPECT_NE(too_small.error().message().find("memory 64 MiB"), std::string::npos);
    auto no_kernel = VmBuilder().kernel("/nonexistent/vmlinux").build();
    ASSERT_FALSE(no_kernel.ok());
    EXPECT_NE(no_kernel.error().message().find("/nonexistent/vmlinux"), std::string::npos);
}

}  // namespace
}  // namespace msb::vmm
