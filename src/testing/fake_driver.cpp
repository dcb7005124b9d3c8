// A guest virtio driver for tests (see fake_driver.h).
#include "testing/fake_driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace msb::testing {

namespace {

[[noreturn]] void fail(const char* what) {
    (void)std::fprintf(stderr, "FakeDriver: %s\n", what);
    std::abort();
}

template <typename T>
T load(const kvm::GuestMemory& memory, uint64_t gpa) {
    auto value = memory.read_obj<T>(gpa);
    if (!value.ok()) fail("guest read out of bounds");
    return *value;
}

template <typename T>
void store(const kvm::GuestMemory& memory, uint64_t gpa, const T& value) {
    if (!memory.write_obj(gpa, value).ok()) fail("guest write out of bounds");
}

// Ring indices and event fields are shared with the device thread: access them atomically
// (sequentially consistent, which covers virtio_wmb/rmb/mb of the Linux driver).
uint16_t* ring_field(const kvm::GuestMemory& memory, uint64_t gpa) {
    // Safe: checked to be inside guest RAM; ring fields are 2-byte aligned.
    uint8_t* p = memory.host_address(gpa, 2);
    if (!p) fail("guest ring field out of bounds");
    return reinterpret_cast<uint16_t*>(p);
}
uint16_t load_index(const kvm::GuestMemory& memory, uint64_t gpa) {
    return __atomic_load_n(ring_field(memory, gpa), __ATOMIC_SEQ_CST);
}
void store_index(const kvm::GuestMemory& memory, uint64_t gpa, uint16_t value) {
    __atomic_store_n(ring_field(memory, gpa), value, __ATOMIC_SEQ_CST);
}

}  // namespace

uint64_t GuestHeap::allocate(uint64_t size, uint64_t align) {
    uint64_t address = (m_next + align - 1) / align * align;
    if (!m_memory.contains(address, std::max<uint64_t>(size, 1))) fail("guest heap exhausted");
    m_next = address + size;
    return address;
}

// ---- FakeQueue ----

FakeQueue::FakeQueue(virtio::MmioDevice& device, GuestHeap& heap, uint16_t index, uint16_t size)
    : m_device(device), m_heap(heap), m_memory(heap.memory()), m_index(index), m_size(size) {
    // Linux vring_size(): descriptors, then the available ring with used_event, then the used
    // ring aligned to the page size.
    m_desc = heap.allocate(16ull * size, 4096);
    m_avail = heap.allocate(6 + 2ull * size, 2);
    m_used = heap.allocate(6 + 8ull * size, 4096);
    for (int i = size - 1; i >= 0; --i) m_free.push_back(static_cast<uint16_t>(i));
}

void FakeQueue::write_descriptor_at(uint64_t table, uint16_t index, const vring_desc& desc) {
    store(m_memory, table + 16ull * index, desc);
}

void FakeQueue::write_descriptor(uint16_t index, const vring_desc& desc) {
    write_descriptor_at(m_desc, index, desc);
}

void FakeQueue::publish(uint16_t head) {
    store<uint16_t>(m_memory, m_avail + 4 + 2ull * (m_avail_idx % m_size), head);
    ++m_avail_idx;
    store_index(m_memory, m_avail + 2, m_avail_idx);
}

void FakeQueue::set_avail_idx(uint16_t idx) {
    m_avail_idx = idx;
    store_index(m_memory, m_avail + 2, idx);
}

std::optional<uint16_t> FakeQueue::add(const std::vector<std::vector<uint8_t>>& readable,
                                       const std::vector<uint32_t>& writable, Layout layout) {
    size_t count = readable.size() + writable.size();
    if (count == 0) fail("empty chain");
    size_t needed = layout == Layout::Indirect ? 1 : count;
    if (m_free.size() < needed) return std::nullopt;

    // Buffers.
    std::vector<vring_desc> descs;
    Pending pending;
    for (const auto& bytes : readable) {
        uint64_t address = m_heap.allocate(bytes.size());
        if (!m_memory.write(address, bytes).ok()) fail("guest write out of bounds");
        descs.push_back({address, static_cast<uint32_t>(bytes.size()), 0, 0});
    }
    for (uint32_t length : writable) {
        uint64_t address = m_heap.allocate(length);
        descs.push_back({address, length, VRING_DESC_F_WRITE, 0});
        pending.writable.emplace_back(address, length);
    }

    uint16_t head;
    if (layout == Layout::Indirect) {
        // Linux virtqueue_add_split with an indirect table: entries chained 0→1→…, one ring
        // descriptor pointing at the table.
        uint64_t table = m_heap.allocate(16ull * count, 16);
        for (size_t i = 0; i < count; ++i) {
            vring_desc d = descs[i];
            if (i + 1 < count) {
                d.flags |= VRING_DESC_F_NEXT;
                d.next = static_cast<uint16_t>(i + 1);
            }
            write_descriptor_at(table, static_cast<uint16_t>(i), d);
        }
        head = m_free.back();
        m_free.pop_back();
        write_descriptor(head,
                         {table, static_cast<uint32_t>(16 * count), VRING_DESC_F_INDIRECT, 0});
        pending.descriptors.push_back(head);
    } else {
        std::vector<uint16_t> ids;
        for (size_t i = 0; i < count; ++i) {
            ids.push_back(m_free.back());
            m_free.pop_back();
        }
        for (size_t i = 0; i < count; ++i) {
            vring_desc d = descs[i];
            if (i + 1 < count) {
                d.flags |= VRING_DESC_F_NEXT;
                d.next = ids[i + 1];
            }
            write_descriptor(ids[i], d);
        }
        head = ids[0];
        pending.descriptors = ids;
    }
    m_pending[head] = std::move(pending);
    publish(head);
    return head;
}

void FakeQueue::kick() {
    m_last_kick_idx = m_avail_idx;
    uint32_t value = m_index;
    m_device.mmio_write(VIRTIO_MMIO_QUEUE_NOTIFY,
                        {reinterpret_cast<const uint8_t*>(&value), sizeof value});
}

bool FakeQueue::kick_if_needed() {
    uint16_t old = m_last_kick_idx;
    uint16_t now = m_avail_idx;
    bool needed = m_event_idx ? vring_need_event(avail_event(), now, old)
                              : !(load_index(m_memory, m_used) & VRING_USED_F_NO_NOTIFY);
    if (needed)
        kick();
    else
        m_last_kick_idx = now;
    return needed;
}

uint16_t FakeQueue::used_idx() const { return load_index(m_memory, m_used + 2); }

std::optional<UsedBuffer> FakeQueue::take_used() {
    if (used_idx() == m_last_used) return std::nullopt;
    uint64_t elem = m_used + 4 + 8ull * (m_last_used % m_size);
    UsedBuffer used{};
    used.head = static_cast<uint16_t>(load<uint32_t>(m_memory, elem));
    used.length = load<uint32_t>(m_memory, elem + 4);
    ++m_last_used;
    // Linux re-arms the used-buffer interrupt for the next one (virtqueue_enable_cb).
    if (m_event_idx) set_used_event(m_last_used);
    auto it = m_pending.find(used.head);
    if (it != m_pending.end()) {
        uint32_t left = used.length;
        for (auto [address, length] : it->second.writable) {
            uint32_t n = std::min(left, length);
            size_t at = used.written.size();
            used.written.resize(at + n);
            if (!m_memory.read(address, {used.written.data() + at, n}).ok())
                fail("guest read out of bounds");
            left -= n;
        }
        for (uint16_t d : it->second.descriptors) m_free.push_back(d);
        m_pending.erase(it);
    }
    return used;
}

std::optional<UsedBuffer> FakeQueue::wait_used(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto used = take_used()) return used;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

void FakeQueue::set_used_event(uint16_t value) {
    store_index(m_memory, m_avail + 4 + 2ull * m_size, value);
}

void FakeQueue::set_no_interrupt(bool suppress) {
    store_index(m_memory, m_avail, suppress ? VRING_AVAIL_F_NO_INTERRUPT : 0);
}

uint16_t FakeQueue::avail_event() const { return load_index(m_memory, m_used + 4 + 8ull * m_size); }

// ---- FakeDriver ----

FakeDriver::FakeDriver(virtio::MmioDevice& device, const kvm::GuestMemory& memory,
                       uint64_t heap_start)
    : m_device(device), m_memory(memory), m_heap(memory, heap_start) {}

uint32_t FakeDriver::read32(uint64_t offset) {
    uint32_t value = 0;
    m_device.mmio_read(offset, {reinterpret_cast<uint8_t*>(&value), sizeof value});
    return value;
}

void FakeDriver::write32(uint64_t offset, uint32_t value) {
    m_device.mmio_write(offset, {reinterpret_cast<const uint8_t*>(&value), sizeof value});
}

uint64_t FakeDriver::device_features() {
    write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint64_t features = uint64_t{read32(VIRTIO_MMIO_DEVICE_FEATURES)} << 32;
    write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    return features | read32(VIRTIO_MMIO_DEVICE_FEATURES);
}

uint32_t FakeDriver::read_config(uint64_t offset, size_t size) {
    uint32_t value = 0;
    m_device.mmio_read(VIRTIO_MMIO_CONFIG + offset, {reinterpret_cast<uint8_t*>(&value), size});
    return value;
}

Status FakeDriver::negotiate(uint64_t wanted_features) {
    // virtio_mmio_probe: magic, version, device ID.
    if (read32(VIRTIO_MMIO_MAGIC_VALUE) != 0x74726976) return Error("bad magic");
    if (read32(VIRTIO_MMIO_VERSION) != 2) return Error("not a version 2 device");
    if (read32(VIRTIO_MMIO_DEVICE_ID) == 0) return Error("no device");
    // register_virtio_device: reset, ACKNOWLEDGE; virtio_dev_probe: DRIVER, features.
    write32(VIRTIO_MMIO_STATUS, 0);
    write32(VIRTIO_MMIO_STATUS, read32(VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_ACKNOWLEDGE);
    write32(VIRTIO_MMIO_STATUS, read32(VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER);
    m_accepted = device_features() & wanted_features;
    write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(m_accepted >> 32));
    write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    write32(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(m_accepted));
    write32(VIRTIO_MMIO_STATUS, read32(VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(read32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
        return Error("device refused FEATURES_OK");
    return {};
}

Status FakeDriver::setup_queue(uint16_t index, uint16_t size) {
    // vm_setup_vq.
    write32(VIRTIO_MMIO_QUEUE_SEL, index);
    if (read32(VIRTIO_MMIO_QUEUE_READY)) return Error("queue already live");
    uint32_t max = read32(VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0) return Error("queue does not exist");
    uint16_t n = static_cast<uint16_t>(std::min<uint32_t>(size, max));
    FakeQueue q(m_device, m_heap, index, n);
    q.m_event_idx = (m_accepted >> VIRTIO_RING_F_EVENT_IDX) & 1;
    write32(VIRTIO_MMIO_QUEUE_NUM, n);
    write32(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(q.desc_table()));
    write32(VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(q.desc_table() >> 32));
    write32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(q.avail_ring()));
    write32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, static_cast<uint32_t>(q.avail_ring() >> 32));
    write32(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(q.used_ring()));
    write32(VIRTIO_MMIO_QUEUE_USED_HIGH, static_cast<uint32_t>(q.used_ring() >> 32));
    write32(VIRTIO_MMIO_QUEUE_READY, 1);
    if (!read32(VIRTIO_MMIO_QUEUE_READY)) return Error("device refused the queue");
    m_queues.erase(index);
    m_queues.emplace(index, std::move(q));
    return {};
}

void FakeDriver::driver_ok() {
    write32(VIRTIO_MMIO_STATUS, read32(VIRTIO_MMIO_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

Status FakeDriver::init(uint64_t wanted_features, const std::vector<uint16_t>& queue_sizes) {
    TRY(negotiate(wanted_features));
    for (size_t i = 0; i < queue_sizes.size(); ++i)
        TRY(setup_queue(static_cast<uint16_t>(i), queue_sizes[i]));
    driver_ok();
    return {};
}

uint64_t take_interrupts(int irq_fd) {
    pollfd p{irq_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return 0;
    uint64_t value = 0;
    if (::read(irq_fd, &value, sizeof value) != sizeof value) return 0;
    return value;
}

}  // namespace msb::testing
