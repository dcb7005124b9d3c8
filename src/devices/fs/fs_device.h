// FsDevice: virtio-fs (device ID 26, virtio 1.2 §5.11). FUSE requests from the guest's
// hiprio queue (FORGET, INTERRUPT) and its one request queue are decoded by a FuseServer and
// served by a FileSystem (normally a PassthroughFs over a host directory).
//
//   auto share = TRY(devices::fs::parse_share("work:/srv/work:ro"));
//   auto device = TRY(devices::fs::FsDevice::create_for_share(share));
//   builder.mmio_device(TRY(virtio::MmioTransport::create(device)));
//   // guest: mount -t virtiofs work /mnt
//
// Each chain is copied out of guest memory (bounded by FuseServer::kMaxRequest) before it is
// decoded, so the guest cannot change a request while it is being validated and served, and
// the reply is built in a host buffer bounded by the chain's writable bytes and kMaxReply.
//
// Threads: queue processing and reset run on the device event loop (VirtioDevice contract).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "devices/fs/file_system.h"
#include "devices/fs/fuse_server.h"
#include "devices/fs/passthrough_fs.h"
#include "virtio/virtio_device.h"

namespace msb::devices::fs {

// The `tag:host_path[:ro]` form of a share (also `:rw`).
struct FsShare {
    std::string tag;
    std::string host_path;
    Access access = Access::ReadWrite;
};
Result<FsShare> parse_share(std::string_view spec);

class FsDevice final : public virtio::VirtioDevice {
public:
    static constexpr size_t kTagSize = 36;  // virtio_fs_config.tag
    static constexpr uint16_t kHiprioQueueSize = 128;
    static constexpr uint16_t kRequestQueueSize = 1024;

    // `tag`: 1–36 bytes, what the guest names in `mount -t virtiofs <tag>`.
    static Result<std::shared_ptr<FsDevice>> create(std::string tag,
                                                    std::shared_ptr<FileSystem> fs);
    // A PassthroughFs over share.host_path with share.access.
    static Result<std::shared_ptr<FsDevice>> create_for_share(const FsShare& share);

    uint32_t device_type() const override;
    uint64_t device_features() const override { return 0; }
    std::vector<uint16_t> queue_max_sizes() const override {
        return {kHiprioQueueSize, kRequestQueueSize};
    }
    void read_config(uint64_t offset, std::span<uint8_t> data) const override;
    Status activate(virtio::DeviceContext context) override;
    void queue_notify(size_t index) override;
    void reset() override;

    const std::string& tag() const { return m_tag; }
    // Counters (any thread).
    uint64_t requests() const { return m_server.requests(); }
    uint64_t malformed_requests() const { return m_server.malformed(); }
    uint64_t dropped_requests() const { return m_server.dropped(); }

private:
    FsDevice(std::string tag, std::shared_ptr<FileSystem> fs);
    void process(virtio::Queue& queue);

    std::string m_tag;
    std::shared_ptr<FileSystem> m_fs;
    FuseServer m_server;
    std::vector<std::optional<virtio::Queue>> m_queues;
    const kvm::GuestMemory* m_memory = nullptr;
    std::vector<uint8_t> m_request;  // reused buffers, at most kMaxRequest / kMaxReply bytes
    std::vector<uint8_t> m_reply;
};

}  // namespace msb::devices::fs
