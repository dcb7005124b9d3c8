// kernel-path, kernel-cmdline and vmm-run.
#include "cli/vmm_commands.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "arch/x86_64/cpuid.h"
#include "base/log.h"
#include "devices/block/block_device.h"
#include "sdk/util.h"
#include "virtio/mmio_transport.h"
#include "vmm/vm_builder.h"

#ifndef MSB_KERNEL_KEY
#error "MSB_KERNEL_KEY must be defined by the build"
#endif

namespace msb::cli {

namespace x86 = arch::x86_64;

namespace {

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

[[noreturn]] void fail(const std::string& message) {
    (void)std::fprintf(stderr, "msb: %s\n", message.c_str());
    (void)std::fflush(stderr);
    ::_exit(1);
}

struct VmmRunOptions {
    std::string kernel;
    std::vector<std::string> initrds;
    std::string append;
    std::vector<std::string> disks;  // PATH[:FORMAT][:ro], /dev/vda first
    uint32_t memory_mib = 128;
    uint32_t vcpus = 1;
};

[[noreturn]] void vmm_run(const VmmRunOptions& options) {
    // The console streams to stdout: a reader that goes away must not kill the VMM mid-write.
    (void)::signal(SIGPIPE, SIG_IGN);
    std::string kernel = options.kernel;
    if (kernel.empty()) {
        kernel = cached_kernel_path();
        if (!file_exists(kernel))
            fail("guest kernel " + kernel +
                 " is not built; run `make` (guest/kernel/build.sh) to build it");
    } else if (!file_exists(kernel)) {
        fail("kernel " + kernel + " not found");
    }
    std::vector<loader::InitrdImage> initrds;
    for (const auto& path : options.initrds) {
        if (!file_exists(path)) fail("initrd " + path + " not found");
        initrds.push_back(loader::InitrdImage::file(path));
    }
    vmm::VmBuilder builder;
    builder.machine(options.vcpus, options.memory_mib)
        .kernel(kernel, std::move(initrds), options.append)
        .console({.output_path = {}, .echo = vmm::ConsoleEcho::Stdout});
    for (size_t i = 0; i < options.disks.size(); i++) {
        auto spec = sdk::parse_disk(options.disks[i]);
        if (!spec.ok()) fail(spec.error().message());
        auto access = spec->access == msb::Access::ReadOnly ? devices::DiskAccess::ReadOnly
                                                            : devices::DiskAccess::ReadWrite;
        auto image = devices::open_disk_image(spec->path, spec->format, access);
        if (!image.ok()) fail(image.error().message());
        auto device = devices::BlockDevice::create({.disk = std::move(image).value(),
                                                    .serial = "disk" + std::to_string(i),
                                                    .access = access});
        if (!device.ok()) fail(device.error().message());
        auto transport = virtio::MmioTransport::create(std::move(device).value());
        if (!transport.ok()) fail(transport.error().message());
        builder.mmio_device(std::move(transport).value());
    }
    auto vm = builder.build();
    if (!vm.ok()) fail(vm.error().message());
    vm->enter();
}

}  // namespace

std::string cached_kernel_path() {
    std::string cache;
    if (const char* env = std::getenv("MSB_CACHE"); env && *env) {
        cache = env;
    } else {
        const char* home = std::getenv("HOME");
        cache = std::string(home && *home ? home : "/root") + "/.cache/msb";
    }
    return cache + "/kernel/" MSB_KERNEL_KEY "/vmlinux";
}

void add_vmm_commands(CLI::App& app) {
    auto* kernel_path = app.add_subcommand("kernel-path", "Print where the guest kernel is cached");
    kernel_path->group("");  // hidden
    kernel_path->callback([] {
        std::string path = cached_kernel_path();
        (void)std::printf("%s\n", path.c_str());
        (void)std::fflush(stdout);
        if (!file_exists(path)) {
            (void)std::fprintf(
                stderr,
                "msb: %s is not built yet; run `make` (guest/kernel/build.sh) to build it\n",
                path.c_str());
            ::_exit(1);
        }
        ::_exit(0);
    });

    auto host = std::make_shared<std::string>();
    auto* cmdline = app.add_subcommand(
        "kernel-cmdline", "Print the kernel command line msb boots with (before its devices)");
    cmdline->group("");  // hidden; bench/boot.sh gives the same line to QEMU
    cmdline->add_option("--host", *host, "host kind to print it for (default: this host's)")
        ->check(CLI::IsMember({"pvm", "hardware"}));
    cmdline->callback([host] {
        bool pvm = host->empty() ? x86::detect_host_kind() == x86::HostKind::Pvm : *host == "pvm";
        std::string line = vmm::default_cmdline(pvm);
        (void)std::printf("%s\n", line.c_str());
        (void)std::fflush(stdout);
        ::_exit(0);
    });

    auto options = std::make_shared<VmmRunOptions>();
    auto* run = app.add_subcommand(
        "vmm-run", "Boot a kernel and initramfs on the VMM; exit with the guest's status");
    run->group("");
    run->add_option("--kernel", options->kernel, "vmlinux or bzImage (default: msb kernel-path)");
    run->add_option("--initrd", options->initrds,
                    "initramfs image (repeatable; concatenated in order)")
        ->required();
    run->add_option("--append", options->append, "extra kernel command-line arguments");
    run->add_option("--memory-mib", options->memory_mib,
                    "guest RAM in MiB (128–65536; rounded up to 2 MiB)");
    run->add_option("--vcpus", options->vcpus, "vCPU count (1–32)");
    run->add_option("--disk", options->disks,
                    "virtio-blk disk PATH[:raw|qcow2|vmdk][:ro] (repeatable; /dev/vda first, "
                    "serials disk0, disk1, ...)");
    run->callback([options] { vmm_run(*options); });
}

}  // namespace msb::cli
