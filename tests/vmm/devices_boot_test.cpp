// The virtio devices as a booted guest sees them (label guest): virtio-blk over raw and qcow2
// images — read, written, discarded, read-only refusing writes, serials in sysfs — the console's
// named port, and virtio-rng behind /dev/hwrng. One boot; the host then checks the images with
// its own tools (sha256sum, qemu-img).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "devices/block/block_device.h"
#include "devices/console/buffered_port_backend.h"
#include "devices/console/console_device.h"
#include "devices/rng/rng_device.h"
#include "test_support.h"
#include "virtio/mmio_transport.h"
#include "vmm/vm_builder.h"

namespace msb::vmm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string sha256(const std::string& path) {
    auto r = testing::run_command("sha256sum '" + path + "'");
    return r.output.substr(0, 64);
}

// "key=value" on a line of the guest's output.
std::string value_of(const std::string& output, const std::string& key) {
    std::smatch m;
    if (!std::regex_search(output, m, std::regex("(^|\n)" + key + "=([^\r\n]*)"))) return "<none>";
    return m[2];
}

std::shared_ptr<virtio::MmioTransport> disk(const std::string& path, std::string_view format,
                                            devices::DiskAccess access, const std::string& serial,
                                            std::shared_ptr<devices::BlockDevice>* device) {
    std::shared_ptr<devices::DiskImage> image =
        MUST(devices::open_disk_image(path, format, access));
    *device =
        MUST(devices::BlockDevice::create({.disk = image, .serial = serial, .access = access}));
    return MUST(virtio::MmioTransport::create(*device));
}

const char* kInit = R"INIT(#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo MSB-INIT-MARKER
by_serial() { for d in /sys/block/vd*; do [ "$(cat $d/serial)" = "$1" ] && echo /dev/${d##*/}; done; }
for d in /sys/block/vd*; do echo "serial-${d##*/}=$(cat $d/serial)"; done
echo "ports=$(cat /sys/class/virtio-ports/vport*/name 2>/dev/null | tr '\n' ' ')"
RAW=$(by_serial raw-rw); RO=$(by_serial qcow2-ro); Q=$(by_serial qcow2-rw)
echo "raw-sum=$(sha256sum $RAW | cut -d' ' -f1)"
echo "ro-sum=$(sha256sum $RO | cut -d' ' -f1)"
echo "ro-flag=$(blockdev --getro $RO)"
dd if=$RO of=/tmp/p bs=65536 skip=8 count=4 2>/dev/null
echo "p-sum=$(sha256sum /tmp/p | cut -d' ' -f1)"
dd if=/tmp/p of=$RAW bs=65536 seek=16 conv=fsync 2>/dev/null; echo "raw-dd=$?"
dd if=/tmp/p of=$Q bs=4096 seek=37 conv=fsync 2>/dev/null; echo "q-dd=$?"
dd if=/tmp/p of=$RO bs=4096 count=1 conv=fsync 2>/dev/null; echo "ro-dd=$?"
blkdiscard -o 0 -l 131072 $Q; echo "discard=$?"
echo 3 > /proc/sys/vm/drop_caches
echo "q-back=$(dd if=$Q bs=4096 skip=37 count=64 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "q-zero=$(dd if=$Q bs=4096 count=32 2>/dev/null | tr -d '\000' | wc -c)"
echo "rng=$(head -c 32 /dev/hwrng | wc -c)"
sync
exit 0
)INIT";

TEST(VirtioDevicesBoot, DisksPortNamesAndRngWorkInTheGuest) {
    MSB_REQUIRE_GUEST_KERNEL();
    ASSERT_EQ(::access("/usr/bin/qemu-img", X_OK), 0) << "scripts/setup installs qemu-utils";
    char name[] = "/tmp/msb-devboot-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    const fs::path dir = name;

    // A 4 MiB raw disk and a qcow2 made from 2 MiB of the same random bytes (read-only), and an
    // empty 16 MiB qcow2 for the guest to write. (Small: on the PVM host the guest's block
    // layer and sha256sum take seconds per MiB.)
    std::vector<uint8_t> content(4 << 20);
    std::mt19937 rng(42);
    for (auto& b : content) b = static_cast<uint8_t>(rng());
    const std::string raw = (dir / "raw.img").string(), ro = (dir / "ro.qcow2").string(),
                      rw = (dir / "rw.qcow2").string(), ro_src = (dir / "ro.src").string();
    {
        std::ofstream(raw, std::ios::binary)
            .write(reinterpret_cast<const char*>(content.data()), std::streamsize(content.size()));
        std::ofstream(ro_src, std::ios::binary)
            .write(reinterpret_cast<const char*>(content.data()), 2 << 20);
    }
    ASSERT_EQ(testing::run_command("qemu-img convert -f raw -O qcow2 " + ro_src + " " + ro).status,
              0);
    ASSERT_EQ(testing::run_command("qemu-img create -q -f qcow2 " + rw + " 16M").status, 0);
    const std::string raw_before = sha256(raw), ro_before = sha256(ro);

    std::shared_ptr<devices::BlockDevice> raw_dev, ro_dev, rw_dev;
    auto agent = MUST(devices::BufferedPortBackend::create(4096));
    auto console = MUST(devices::ConsoleDevice::create(
        {.output = nullptr, .ports = {{.name = "agent", .backend = agent}}}));
    auto hwrng = std::make_shared<devices::RngDevice>();
    const std::string log = (dir / "console.log").string();
    auto vm = MUST(
        VmBuilder()
            .machine(1, 256)
            .kernel(testing::test_kernel_path(),
                    {loader::InitrdImage::memory(testing::busybox_initramfs(kInit))})
            .console({.output_path = log})
            .mmio_device(MUST(virtio::MmioTransport::create(console)))
            .mmio_device(disk(raw, "raw", devices::DiskAccess::ReadWrite, "raw-rw", &raw_dev))
            .mmio_device(disk(ro, "qcow2", devices::DiskAccess::ReadOnly, "qcow2-ro", &ro_dev))
            .mmio_device(disk(rw, "qcow2", devices::DiskAccess::ReadWrite, "qcow2-rw", &rw_dev))
            .mmio_device(MUST(virtio::MmioTransport::create(hwrng)))
            .build());
    ExitStatus status = testing::run_with_watchdog(vm, 900s);
    std::string out = testing::read_text(log);
    std::erase(out, '\r');
    EXPECT_EQ(status.reason, ExitReason::GuestExit) << status.detail << "\n" << out;

    EXPECT_EQ(value_of(out, "serial-vda"), "raw-rw") << out;
    EXPECT_EQ(value_of(out, "serial-vdb"), "qcow2-ro");
    EXPECT_EQ(value_of(out, "serial-vdc"), "qcow2-rw");
    EXPECT_EQ(value_of(out, "ports"), "agent ");  // port 0, the console, has no name
    EXPECT_EQ(value_of(out, "rng"), "32");
    EXPECT_GE(hwrng->bytes_served(), 32u);

    // What the guest read is what the host has.
    EXPECT_EQ(value_of(out, "raw-sum"), raw_before);
    EXPECT_EQ(value_of(out, "ro-sum"), sha256(ro_src));
    // What the guest wrote (256 KiB it read from the read-only disk) reached the images: at 1 MiB
    // of the raw file, at 37 × 4 KiB of the qcow2 (not cluster-aligned; qemu-img reads it back),
    // and the qcow2's discarded first 128 KiB reads as zeroes.
    const std::string written = value_of(out, "p-sum");
    EXPECT_EQ(value_of(out, "raw-dd"), "0");
    EXPECT_EQ(value_of(out, "q-dd"), "0");
    EXPECT_EQ(value_of(out, "discard"), "0");
    EXPECT_EQ(value_of(out, "q-back"), written);
    EXPECT_EQ(value_of(out, "q-zero"), "0");
    auto raw_slice =
        testing::run_command("dd if=" + raw + " bs=65536 skip=16 count=4 2>/dev/null | sha256sum");
    EXPECT_EQ(raw_slice.output.substr(0, 64), written);
    auto check = testing::run_command("qemu-img check " + rw + " 2>&1");
    EXPECT_EQ(check.status, 0) << check.output;
    auto q_slice = testing::run_command("qemu-img dd -f qcow2 -O raw if=" + rw +
                                        " of=" + (dir / "q.raw").string() +
                                        " bs=4096 && dd if=" + (dir / "q.raw").string() +
                                        " bs=4096 skip=37 count=64 2>/dev/null | sha256sum");
    EXPECT_EQ(q_slice.output.substr(0, 64), written);
    EXPECT_GT(rw_dev->stats().discarded_bytes, 0u);

    // The read-only disk: the kernel knows, the write failed, the image is unchanged.
    EXPECT_EQ(value_of(out, "ro-flag"), "1");
    EXPECT_NE(value_of(out, "ro-dd"), "0");
    EXPECT_EQ(sha256(ro), ro_before);
    EXPECT_EQ(ro_dev->stats().write_bytes, 0u);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace msb::vmm
