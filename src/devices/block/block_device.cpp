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
static_assert(sizeof(virtio_blk_discard_write_zeroes) == 16);
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
    if (m_access == DiskAccess::ReadOnly) return features | virtio::feature_bit(VIRTIO_BLK_F_RO);
    features |= virtio::feature_bit(VIRTIO_BLK_F_WRITE_ZEROES);
    if (m_disk->supports_discard()) features |= virtio::feature_bit(VIRTIO_BLK_F_DISCARD);
    return features;
}

void BlockDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    virtio_blk_config config{};
    config.capacity = capacity_sectors();
    config.seg_max = kQueueSize - 2;  // header and status take two descriptors
    config.max_discard_sectors = kMaxRangeSectors;
    config.max_discard_seg = kMaxRangeSegments;
    config.discard_sector_alignment =  // a hint: qcow2 frees whole clusters only
        static_cast<uint32_t>(std::min<uint64_t>(m_disk->discard_granularity(), 1 << 21) / kSectorSize);
    config.max_write_zeroes_sectors = kMaxRangeSectors;
    config.max_write_zeroes_seg = kMaxRangeSegments;
    config.write_zeroes_may_unmap = 1;
    virtio::copy_config(&config, sizeof config, offset, data);
}

BlockStats BlockDevice::stats() const {
    BlockStats s;
    s.read_bytes = m_read_bytes.load();
    s.write_bytes = m_write_bytes.load();
    s.flushes = m_flushes.load();
    s.discarded_bytes = m_discarded.load();
    s.zeroed_bytes = m_zeroed.load();
    s.bad_requests = m_bad.load();
    s.rejected_writes = m_rejected_writes.load();
    s.io_errors = m_io_errors.load();
    return s;
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

uint8_t BlockDevice::io_error(const Error& error) {
    ++m_io_errors;
    if (g_request_log.allow()) log::warn("virtio-blk: {}", error.message());
    return VIRTIO_BLK_S_IOERR;
}

// DISCARD and WRITE_ZEROES carry an array of ranges (virtio 1.2 §5.2.6); all are checked before
// any is carried out.
uint8_t BlockDevice::handle_ranges(virtio::DescriptorChainReader& in, uint32_t type) {
    const bool discard = type == VIRTIO_BLK_T_DISCARD;
    if (m_access == DiskAccess::ReadOnly) {
        ++m_rejected_writes;
        return VIRTIO_BLK_S_IOERR;
    }
    if (discard && !m_disk->supports_discard()) return VIRTIO_BLK_S_UNSUPP;
    const uint64_t length = in.remaining();
    if (length == 0 || length % sizeof(virtio_blk_discard_write_zeroes) != 0)
        return bad_request("discard/write-zeroes payload is not a whole number of ranges");
    if (length / sizeof(virtio_blk_discard_write_zeroes) > kMaxRangeSegments)
        return bad_request("more discard/write-zeroes ranges than max_*_seg");
    virtio_blk_discard_write_zeroes ranges[kMaxRangeSegments];
    const size_t count = length / sizeof(virtio_blk_discard_write_zeroes);
    const uint64_t capacity = capacity_sectors();
    for (size_t i = 0; i < count; i++) {
        auto range = in.read_obj<virtio_blk_discard_write_zeroes>();
        if (!range) return bad_request("short discard/write-zeroes range");
        const auto& r = ranges[i] = *range;
        // §5.2.6.2: unmap on DISCARD and unknown flag bits are unsupported.
        const uint32_t allowed = discard ? 0u : uint32_t{VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP};
        if (r.flags & ~allowed) return VIRTIO_BLK_S_UNSUPP;
        if (r.num_sectors > kMaxRangeSectors || r.sector > capacity ||
            r.num_sectors > capacity - r.sector)
            return bad_request("discard/write-zeroes range outside the disk or too long");
    }
    for (size_t i = 0; i < count; i++) {
        const uint64_t offset = ranges[i].sector * kSectorSize;
        const uint64_t bytes = uint64_t{ranges[i].num_sectors} * kSectorSize;
        Status s = discard ? m_disk->discard(offset, bytes) : m_disk->write_zeroes(offset, bytes);
        if (!s.ok()) return io_error(s.error());
        (discard ? m_discarded : m_zeroed) += bytes;
    }
    return VIRTIO_BLK_S_OK;
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
                if (Status s = m_disk->read_at(offset + done, dst); !s.ok())
                    return io_error(s.error());
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
                if (Status s = m_disk->write_at(offset + done, src); !s.ok())
                    return io_error(s.error());
                in.consume(src.size());
                done += src.size();
            }
            m_write_bytes += length;
            return VIRTIO_BLK_S_OK;
        }
        case VIRTIO_BLK_T_FLUSH:
            ++m_flushes;
            if (Status s = m_disk->flush(); !s.ok()) return io_error(s.error());
            return VIRTIO_BLK_S_OK;
        case VIRTIO_BLK_T_GET_ID: {
            uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
            std::memcpy(id, m_serial.data(), m_serial.size());
            out.write(
                std::span<const uint8_t>(id).first(std::min<size_t>(sizeof id, data_writable)));
            return VIRTIO_BLK_S_OK;
        }
        case VIRTIO_BLK_T_DISCARD:
        case VIRTIO_BLK_T_WRITE_ZEROES:
            return handle_ranges(in, header->type);
        default:
            return VIRTIO_BLK_S_UNSUPP;
    }
}

}  // namespace msb::devices
