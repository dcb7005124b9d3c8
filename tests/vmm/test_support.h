// Helpers for tests that run VMs: skip without /dev/kvm, run with a watchdog, read files.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/vm.h"

namespace msb::vmm::testing {

// Exit code the watchdog triggers; tests that expect a guest ending assert it is not this.
inline constexpr int kWatchdogCode = 199;

inline bool kvm_available() {
    struct stat st {};
    return ::stat("/dev/kvm", &st) == 0;
}

#define MSB_REQUIRE_KVM()                      \
    if (!::msb::vmm::testing::kvm_available()) \
    GTEST_SKIP() << "/dev/kvm not found (tests/vmm/nested-kvm.sh runs these in a VM that has it)"

// Runs `vm` on this thread; a watchdog triggers kWatchdogCode after `limit`.
inline ExitStatus run_with_watchdog(Vm& vm, std::chrono::milliseconds limit) {
    ExitHandle handle = vm.exit_handle();
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog([&] {
        std::unique_lock lock(mutex);
        if (!cv.wait_for(lock, limit, [&] { return done; })) handle.trigger(kWatchdogCode);
    });
    ExitStatus status = vm.run();
    {
        std::lock_guard lock(mutex);
        done = true;
    }
    cv.notify_all();
    watchdog.join();
    return status;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline std::string read_text(const std::string& path) {
    auto bytes = read_file(path);
    return {bytes.begin(), bytes.end()};
}

}  // namespace msb::vmm::testing

#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>

#include "loader/cpio.h"

namespace msb::vmm::testing {

// The guest kernel for tests: $MSB_TEST_KERNEL, else the kernel cached for this source tree.
inline std::string test_kernel_path() {
    if (const char* env = std::getenv("MSB_TEST_KERNEL"); env && *env) return env;
    std::string cache;
    if (const char* env = std::getenv("MSB_CACHE"); env && *env)
        cache = env;
    else
        cache = std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.cache/msb";
    return cache + "/kernel/" MSB_KERNEL_KEY "/vmlinux";
}

#define MSB_REQUIRE_GUEST_KERNEL()                                                        \
    MSB_REQUIRE_KVM();                                                                    \
    if (struct stat st_{}; ::stat(::msb::vmm::testing::test_kernel_path().c_str(), &st_)) \
    GTEST_SKIP() << "guest kernel " << ::msb::vmm::testing::test_kernel_path()            \
                 << " not built (make)"

// An uncompressed newc initramfs: Debian's busybox-static as /bin/busybox (+ sh) and `init`
// as /init.
inline std::vector<uint8_t> busybox_initramfs(const std::string& init) {
    loader::CpioWriter cpio;
    for (const char* dir : {"bin", "proc", "sys", "dev", "tmp"})
        MUST(cpio.add_directory(dir, 0755));
    auto busybox = read_file("/bin/busybox");
    EXPECT_FALSE(busybox.empty()) << "/bin/busybox missing (apt-get install busybox-static)";
    MUST(cpio.add_file("bin/busybox", busybox, 0755));
    MUST(cpio.add_symlink("bin/sh", "busybox"));
    MUST(cpio.add_file("init", init, 0755));
    return cpio.finish();
}

// Runs a shell command, returning its stdout and exit status.
struct CommandResult {
    std::string output;
    int status = -1;
};
inline CommandResult run_command(const std::string& command) {
    CommandResult result;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return result;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, p)) > 0) result.output.append(buffer, n);
    int raw = ::pclose(p);
    result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    return result;
}

}  // namespace msb::vmm::testing
