// BlockDevice: virtio-blk (device ID 2, virtio 1.2 §5.2) over a DiskImage, one request queue.
//
//   auto disk = TRY(devices::RawDiskImage::open(path, devices::DiskAccess::ReadWrite));
//   auto blk = TRY(devices::BlockDevice::create({.disk = std::move(disk), .serial = "root"}));
//   builder.mmio_device(TRY(virtio::MmioTransport::create(blk)));
//
// Requests: IN (read), OUT (write), FLUSH (DiskImage::flush, fdatasync for raw), GET_ID (the
// serial, 20 bytes, NUL-padded — how the guest finds a volume: /sys/block/vdX/serial), and on
// writable disks WRITE_ZEROES (always) and DISCARD (when the image can give space back), each up
// to kMaxRangeSegments ranges of at most kMaxRangeSectors. Anything else is answered
// VIRTIO_BLK_S_UNSUPP. Every request is checked before any I/O:
// header present, a status byte, data length a multiple of 512, the range inside the disk
// (no overflow); a failure is answered VIRTIO_BLK_S_IOERR and counted. A read-only disk
// (DiskAccess::ReadOnly, offered to the guest as VIRTIO_BLK_F_RO) answers writes IOERR.
// A chain with no writable byte for the status cannot be answered: it is returned with used
// length 0 and counted.
//
// I/O is synchronous on the device thread (pread/pwrite straight into guest memory).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "devices/block/disk_image.h"
#include "virtio/virtio_device.h"

namespace msb::devices {

struct BlockConfig {
    std::shared_ptr<DiskImage> disk;
    std::string serial;                         // at most 20 bytes
    DiskAccess access = DiskAccess::ReadWrite;  // ReadOnly also when the image is read-only
};

struct BlockStats {
    uint64_t read_bytes = 0;
    uint64_t write_bytes = 0;
    uint64_t flushes = 0;
    uint64_t discarded_bytes = 0;
    uint64_t zeroed_bytes = 0;
    uint64_t bad_requests = 0;     // malformed or out of range
    uint64_t rejected_writes = 0;  // writes to a read-only disk
    uint64_t io_errors = 0;        // the image failed
};

class BlockDevice final : public virtio::VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint64_t kSectorSize = 512;
    static constexpr uint32_t kMaxRangeSegments = 32;      // DISCARD / WRITE_ZEROES ranges
    static constexpr uint32_t kMaxRangeSectors = 1 << 21;  // 1 GiB per range

    static Result<std::shared_ptr<BlockDevice>> create(BlockConfig config);

    uint32_t device_type() const override;
    uint64_t device_features() const override;
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Status activate(virtio::DeviceContext context) override;
    void queue_notify(size_t index) override;
    void reset() override { m_queue.reset(); }

    uint64_t capacity_sectors() const { return m_disk->size() / kSectorSize; }
    BlockStats stats() const;

private:
    explicit BlockDevice(BlockConfig config);
    uint8_t handle(virtio::DescriptorChainReader& in, virtio::DescriptorChainWriter& out,
                   uint32_t data_writable);
    uint8_t bad_request(const char* why);
    uint8_t handle_ranges(virtio::DescriptorChainReader& in, uint32_t type);
    uint8_t io_error(const Error& error);

    std::shared_ptr<DiskImage> m_disk;
    std::string m_serial;
    DiskAccess m_access;
    std::optional<virtio::Queue> m_queue;
    const kvm::GuestMemory* m_memory = nullptr;
    std::atomic<uint64_t> m_read_bytes{0}, m_write_bytes{0}, m_flushes{0}, m_discarded{0},
        m_zeroed{0}, m_bad{0}, m_rejected_writes{0}, m_io_errors{0};
};

}  // namespace msb::devices
