// virtio-fs device: queues in, FuseServer, replies out.
#include "devices/fs/fs_device.h"

#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>

#include <algorithm>

#include "base/log.h"

namespace msb::devices::fs {

Result<FsShare> parse_share(std::string_view spec) {
    FsShare share;
    size_t colon = spec.find(':');
    if (colon == std::string_view::npos || colon == 0)
        return Error("virtio-fs share '" + std::string(spec) + "': expected tag:host_path[:ro]",
                     EINVAL);
    share.tag = std::string(spec.substr(0, colon));
    std::string_view path = spec.substr(colon + 1);
    if (path.size() >= 3 && (path.ends_with(":ro") || path.ends_with(":rw"))) {
        share.access = path.ends_with(":ro") ? Access::ReadOnly : Access::ReadWrite;
        path.remove_suffix(3);
    }
    if (path.empty())
        return Error("virtio-fs share '" + std::string(spec) + "': empty host path", EINVAL);
    if (share.tag.size() > FsDevice::kTagSize)
        return Error("virtio-fs share '" + std::string(spec) + "': tag longer than 36 bytes",
                     EINVAL);
    share.host_path = std::string(path);
    return share;
}

FsDevice::FsDevice(std::string tag, std::shared_ptr<FileSystem> fs)
    : m_tag(std::move(tag)), m_fs(std::move(fs)), m_server(*m_fs) {}

Result<std::shared_ptr<FsDevice>> FsDevice::create(std::string tag,
                                                   std::shared_ptr<FileSystem> fs) {
    if (tag.empty() || tag.size() > kTagSize)
        return Error("virtio-fs tag '" + tag + "' must be 1 to 36 bytes", EINVAL);
    if (!fs) return Error("virtio-fs " + tag + ": no file system", EINVAL);
    return std::shared_ptr<FsDevice>(new FsDevice(std::move(tag), std::move(fs)));
}

Result<std::shared_ptr<FsDevice>> FsDevice::create_for_share(const FsShare& share) {
    auto fs = TRY(PassthroughFs::create(share.host_path, share.access));
    return create(share.tag, std::move(fs));
}

uint32_t FsDevice::device_type() const { return VIRTIO_ID_FS; }

void FsDevice::read_config(uint64_t offset, std::span<uint8_t> data) const {
    virtio_fs_config config{};
    static_assert(sizeof config == 40);
    std::copy(m_tag.begin(), m_tag.end(), config.tag);  // NUL-padded, not NUL-terminated
    config.num_request_queues = 1;                      // little-endian host
    virtio::copy_config(&config, sizeof config, offset, data);
}

Status FsDevice::activate(virtio::DeviceContext context) {
    // DeviceContext::memory is a reference to memory that outlives the activation.
    // cppcheck-suppress danglingLifetime
    m_memory = &context.memory;
    m_queues.clear();
    for (auto& q : context.queues) m_queues.emplace_back(std::move(q));
    return {};
}

void FsDevice::queue_notify(size_t index) {
    if (index >= m_queues.size() || !m_queues[index] || !m_queues[index]->ready()) return;
    process(*m_queues[index]);
}

void FsDevice::process(virtio::Queue& queue) {
    while (auto chain = queue.pop()) {
        // Copy the request out of guest memory, bounded: a longer chain is truncated and then
        // fails the header-length check in the server.
        size_t in_size = std::min<size_t>(chain->readable_bytes(), FuseServer::kMaxRequest);
        size_t out_size = std::min<size_t>(chain->writable_bytes(), FuseServer::kMaxReply);
        m_request.resize(in_size);
        m_reply.resize(out_size);
        virtio::DescriptorChainReader in(*m_memory, *chain);
        size_t got = in.read(m_request);
        size_t n = m_server.handle(std::span<const uint8_t>(m_request).first(got), m_reply);
        uint32_t used = 0;
        if (n > 0) {
            virtio::DescriptorChainWriter out(*m_memory, *chain);
            out.write(std::span<const uint8_t>(m_reply).first(n));
            used = out.bytes_written();
        }
        queue.add_used(chain->head(), used);
    }
    queue.notify_used();
    // Keep the steady-state footprint small after a large READ/WRITE.
    constexpr size_t kKeep = size_t{256} * 1024;
    if (m_request.capacity() > kKeep) std::vector<uint8_t>().swap(m_request);
    if (m_reply.capacity() > kKeep) std::vector<uint8_t>().swap(m_reply);
}

void FsDevice::reset() {
    m_queues.clear();
    // A new driver starts a new FUSE session with INIT; drop everything the old one held.
    m_server.reset_session();
}

}  // namespace msb::devices::fs
