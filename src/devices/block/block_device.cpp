// virtio-blk request handling (virtio 1.2 §5.2.6).
#include "devices/block/block_device.h"

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "virtio/features.h"

namespace msb::devices {

namespace {

static_assert(sizeof(virtio_blk_outhdr) == 16);
log::RateLimit g_request_log;

}  // namespace

Result<std::shared_ptr<BlockDevice>> BlockDevice::create(BlockConfig config) {
    if (!config.disk) return Error("virtio-blk: no disk image");
    if (config.serial.size() > VIRTIO_BLK_ID_BYTES)
        return Error("virtio-blk: serial '" + config.serial + "' is longer than 20 bytes");
    if (config.disk->access() == DiskAccess::ReadOnly) config.access = DiskAccess::ReadOnly;
    return std::shared_ptr<BlockDevice>(new BlockDevice(std::move(config)));
}

BlockDevice::BlockDevice(BlockConfig config)
    : m_disk(std::move(config.disk)), m_serial(std::move(config.serial)), m_access(config.access) {}

uint32_t BlockDevice::device_type() const { return VIRTIO_ID_BLOCK; }

uint64_t BlockDevice::device_features() const {
    uint64_t features =
        virtio::feature_bit(VIRTIO_BLK_F_FLUSH) | virtio::feature_bit(VIRTIO_BLK_F_SEG_MAX);
    if (m_access == DiskAccess::ReadOnly) features |= virtio::feature_bit(VIRTIO_BLK_F_RO);
    return features;
}

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    virtio_blk_config config{};
    config.capacity = capacity_sectors();
    config.seg_max = kQueueSize - 2;  // header and status take two descriptors
    virtio::copy_config(&config, sizeof config, offset, data);
}

BlockStats BlockDevice::stats() const {
    return {m_read_bytes.load(), m_write_bytes.load(),     m_flushes.load(),
            m_bad.load(),        m_rejected_writes.load(), m_io_errors.load()};
}

Status BlockDevice::activate(virtio::DeviceContext context) {
    m_queue.emplace(std::move(context.queues.at(0)));
    m_memory = m_queue->ready() ? &m_queue->memory() : nullptr;
    return {};
}

uint8_t BlockDevice::bad_request(const char* why) {
    ++m_bad;
    if (g_request_log.allow())
        log::warn("virtio-blk: bad request: {} ({} so far)", why, g_request_log.count());
    return VIRTIO_BLK_S_IOERR;
}

void BlockDevice::queue_notify(size_t) {
    if (!m_queue) return;
    while (auto chain = m_queue->pop()) {
        if (chain->writable_bytes() == 0) {
            bad_request("no status byte");
            m_queue->add_used(chain->head(), 0);
            continue;
        }
        virtio::DescriptorChainReader in(*m_memory, *chain);
        virtio::DescriptorChainWriter out(*m_memory, *chain);
        uint8_t status = handle(in, out, chain->writable_bytes() - 1);
        // The status is the last writable byte, whatever the data part received. Like QEMU we
        // report the whole writable part as used: the status byte sits at its end.
        out.commit(out.remaining() - 1);
        out.write_obj(status);
        m_queue->add_used(chain->head(), chain->writable_bytes());
    }
    m_queue->notify_used();
}

uint8_t BlockDevice::handle(virtio::DescriptorChainReader& in, virtio::DescriptorChainWriter& out,
                            uint32_t data_writable) {
    auto header = in.read_obj<virtio_blk_outhdr>();
    if (!header) return bad_request("short header");
    const uint64_t capacity = capacity_sectors();
    auto in_range = [&](uint64_t length) {
        return length % kSectorSize == 0 && header->sector <= capacity &&
               length / kSectorSize <= capacity - header->sector;
    };
    switch (header->type) {
        case VIRTIO_BLK_T_IN: {
            if (!in_range(data_writable)) return bad_request("read outside the disk or unaligned");
            uint64_t offset = header->sector * kSectorSize;
            uint32_t done = 0;
            while (done < data_writable) {
                std::span<uint8_t> dst = out.peek();
                dst = dst.first(std::min<size_t>(dst.size(), data_writable - done));
                if (Status s = m_disk->read_at(offset + done, dst); !s.ok()) {
                    ++m_io_errors;
                    if (g_request_log.allow()) log::warn("virtio-blk: {}", s.error().message());
                    return VIRTIO_BLK_S_IOERR;
                }
                out.commit(dst.size());
                done += static_cast<uint32_t>(dst.size());
            }
            m_read_bytes += done;
            return VIRTIO_BLK_S_OK;
        }
        case VIRTIO_BLK_T_OUT: {
            if (m_access == DiskAccess::ReadOnly) {
                ++m_rejected_writes;
                return VIRTIO_BLK_S_IOERR;
            }
            uint64_t length = in.remaining();
            if (!in_range(length)) return bad_request("write outside the disk or unaligned");
            uint64_t offset = header->sector * kSectorSize;
            for (uint64_t done = 0; in.remaining() > 0;) {
                std::span<const uint8_t> src = in.peek();
                if (Status s = m_disk->write_at(offset + done, src); !s.ok()) {
                    ++m_io_errors;
                    if (g_request_log.allow()) log::warn("virtio-blk: {}", s.error().message());
                    return VIRTIO_BLK_S_IOERR;
                }
                in.consume(src.size());
                done += src.size();
            }
            m_write_bytes += length;
            return VIRTIO_BLK_S_OK;
        }
        case VIRTIO_BLK_T_FLUSH:
            ++m_flushes;
            if (Status s = m_disk->flush(); !s.ok()) {
                ++m_io_errors;
                if (g_request_log.allow()) log::warn("virtio-blk: {}", s.error().message());
                return VIRTIO_BLK_S_IOERR;
            }
            return VIRTIO_BLK_S_OK;
        case VIRTIO_BLK_T_GET_ID: {
            uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
            std::memcpy(id, m_serial.data(), m_serial.size());
            out.write(
                std::span<const uint8_t>(id).first(std::min<size_t>(sizeof id, data_writable)));
            return VIRTIO_BLK_S_OK;
        }
        default:
            return VIRTIO_BLK_S_UNSUPP;
    }
}

}  // namespace msb::devices
