// Boots the real guest kernel with a busybox initramfs (label guest: each boot costs seconds on
// the PVM host, so there are only three).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "devices/rng/rng_device.h"
#include "loader/cpio.h"
#include "test_support.h"
#include "virtio/mmio_transport.h"
#include "vmm/vm_builder.h"

namespace msb::vmm {
namespace {

using namespace std::chrono_literals;

constexpr auto kBootLimit = 900s;  // watchdog only: a 128 MiB boot takes ~55 s on the nested PVM host, 4 GiB ~4 min

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("msb-boot-" + std::to_string(::getpid()) + "-" + name))
        .string();
}

std::string write_temp(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = temp_path(name);
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    return path;
}

const char* kReportInit = R"INIT(#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo MSB-INIT-MARKER
echo "nproc=$(/bin/busybox nproc)"
/bin/busybox grep MemTotal /proc/meminfo
)INIT";

// The guest's tty turns "\n" into "\r\n"; compare without the carriage returns.
std::string without_cr(std::string text) {
    std::erase(text, '\r');
    return text;
}

uint64_t mem_total_kib(const std::string& output) {
    std::smatch m;
    if (!std::regex_search(output, m, std::regex(R"(MemTotal:\s+(\d+) kB)"))) return 0;
    return std::stoull(m[1]);
}

TEST(MsbVmmRun, BootsToInitAndExitsWithInitsStatus) {
    MSB_REQUIRE_GUEST_KERNEL();
    std::string initrd =
        write_temp("init.cpio", testing::busybox_initramfs(std::string(kReportInit) + "exit 3\n"));
    auto result = testing::run_command(
        "timeout -s KILL 900 " MSB_BINARY_DIR "/msb vmm-run --kernel " +
        testing::test_kernel_path() + " --initrd " + initrd + " --vcpus 1 --memory-mib 128");
    std::filesystem::remove(initrd);
    result.output = without_cr(result.output);
    EXPECT_NE(result.output.find("MSB-INIT-MARKER"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("nproc=1\n"), std::string::npos) << result.output;
    uint64_t kib = mem_total_kib(result.output);
    EXPECT_GT(kib, 100u * 1024) << result.output;
    EXPECT_LE(kib, 128u * 1024);
    EXPECT_EQ(result.status, 3) << result.output;
}

// Also the end-to-end check of the virtio-mmio plumbing (window, command-line declaration,
// ioeventfd, irqfd, attach_memory/start): a virtio-rng device must serve the guest's reads.
TEST(VmBuilderBoot, FourVcpusAreOnlineVirtioWorksAndAGuestRebootEndsTheVm) {
    MSB_REQUIRE_GUEST_KERNEL();
    std::string console = temp_path("console-smp");
    auto rng = std::make_shared<devices::RngDevice>();
    std::string init = std::string(kReportInit) +
                       "/bin/busybox mount -t devtmpfs dev /dev\n"
                       "echo \"rng=$(/bin/busybox head -c 32 /dev/hwrng | /bin/busybox wc -c)\"\n"
                       "/bin/busybox reboot -f\n";
    auto vm = MUST(VmBuilder()
                       .machine(4, 256)
                       .kernel(testing::test_kernel_path(),
                               {loader::InitrdImage::memory(testing::busybox_initramfs(init))})
                       .console({.output_path = console})
                       .mmio_device(MUST(virtio::MmioTransport::create(rng)))
                       .build());
    ExitStatus status = testing::run_with_watchdog(vm, kBootLimit);
    std::string output = without_cr(testing::read_text(console));
    std::filesystem::remove(console);
    EXPECT_NE(output.find("nproc=4\n"), std::string::npos) << output;
    EXPECT_NE(output.find("rng=32\n"), std::string::npos) << output;
    EXPECT_GE(rng->bytes_served(), 32u);
    EXPECT_EQ(status.reason, ExitReason::GuestReset) << status.detail << "\n" << output;
    EXPECT_EQ(status.code, kExitCodeGuestReset);
}

TEST(VmBuilderBoot, MemoryAboveTheHoleIsVisibleToTheGuest) {
    MSB_REQUIRE_GUEST_KERNEL();
    std::string console = temp_path("console-4g");
    auto vm = MUST(VmBuilder()
                       .machine(1, 4096)
                       .kernel(testing::test_kernel_path(),
                               {loader::InitrdImage::memory(testing::busybox_initramfs(
                                   std::string(kReportInit) + "exit 0\n"))})
                       .console({.output_path = console})
                       .build());
    ExitStatus status = testing::run_with_watchdog(vm, kBootLimit);
    std::string output = without_cr(testing::read_text(console));
    std::filesystem::remove(console);
    uint64_t kib = mem_total_kib(output);
    // 4 GiB minus what the kernel keeps for itself: well above the 3 GiB below the hole.
    EXPECT_GT(kib, 3500u * 1024) << output;
    EXPECT_LE(kib, 4096u * 1024);
    EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail << "\n" << output;
    EXPECT_EQ(status.code, 0);
}

// Three processes at once, each writing and reading a tmpfs file through shared mappings that
// it maps and unmaps over and over (fsx, checked against its own model).
//
// On PVM hosts only with plain reads and writes: there, stores through shared mappings are lost
// or land in another process's page as soon as two processes take turns on a vCPU — under QEMU
// microvm exactly as under msb, with the same kernel, so it is the host's shadow paging (or our
// kernel's PVM patch), not the VMM. One process alone, and plain read/write I/O, stay correct.
// `nopcid` and flushing whole address spaces instead of single pages did not help
// (2 Dec 2026; docs/vmm.md).
TEST(VmBuilderBoot, ConcurrentProcessesKeepWhatTheyWriteThroughSharedMappings) {
    MSB_REQUIRE_GUEST_KERNEL();
    const bool pvm = std::filesystem::exists("/sys/module/kvm_pvm");
    auto fsx = testing::read_file(MSB_FSX_BINARY);
    ASSERT_FALSE(fsx.empty()) << MSB_FSX_BINARY;
    loader::CpioWriter extra;
    MUST(extra.add_file("bin/fsx", fsx, 0755));
    std::string init = std::string(R"INIT(#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo MSB-INIT-MARKER
)INIT") + (pvm ? "export FSX_NO_MMAP=1\n" : "") + R"INIT(for seed in 21 22 23; do /bin/fsx /tmp/f$seed 300 $seed > /tmp/log$seed 2>&1 & done
wait
/bin/busybox cat /tmp/log21 /tmp/log22 /tmp/log23
exit 0
)INIT";
    std::string console = temp_path("console-fsx");
    auto vm = MUST(VmBuilder()
                       .machine(1, 256)
                       .kernel(testing::test_kernel_path(),
                               {loader::InitrdImage::memory(testing::busybox_initramfs(init)),
                                loader::InitrdImage::memory(extra.finish())})
                       .console({.output_path = console})
                       .build());
    ExitStatus status = testing::run_with_watchdog(vm, kBootLimit);
    std::string output = without_cr(testing::read_text(console));
    std::filesystem::remove(console);
    EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail << "\n" << output;
    size_t ok = 0;
    for (size_t at = output.find("fsx ok ops=300 "); at != std::string::npos;
         at = output.find("fsx ok ops=300 ", at + 1))
        ++ok;
    EXPECT_EQ(ok, 3u) << output;
    EXPECT_EQ(output.find("fsx FAIL"), std::string::npos) << output;
    EXPECT_NE(output.find(pvm ? "mmap=no" : "mmap=yes"), std::string::npos) << output;
}

}  // namespace
}  // namespace msb::vmm
