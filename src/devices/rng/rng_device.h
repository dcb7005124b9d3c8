// RngDevice: virtio-rng (device ID 4, virtio 1.2 §5.4). Fills each writable buffer the guest
// posts with bytes from getrandom(2), at most kMaxBytesPerRequest per request, so one guest
// request cannot make the device thread generate unbounded amounts of data.
//
//   auto rng = std::make_shared<devices::RngDevice>();
//   builder.mmio_device(TRY(virtio::MmioTransport::create(rng)));
#pragma once

#include <atomic>
#include <optional>

#include "virtio/virtio_device.h"

namespace msb::devices {

class RngDevice final : public virtio::VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 64;
    static constexpr size_t kMaxBytesPerRequest = size_t{64} * 1024;

    uint32_t device_type() const override;
    uint64_t device_features() const override { return 0; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    void read_config(uint64_t, std::span<uint8_t> data) const override {
        std::fill(data.begin(), data.end(), 0);  // no configuration space
    }
    Status activate(virtio::DeviceContext context) override;
    void queue_notify(size_t index) override;
    void reset() override { m_queue.reset(); }

    uint64_t bytes_served() const { return m_bytes.load(); }

private:
    std::optional<virtio::Queue> m_queue;
    const kvm::GuestMemory* m_memory = nullptr;
    std::atomic<uint64_t> m_bytes{0};
};

}  // namespace msb::devices
