// Split virtqueue, device side (virtio 1.2 §2.7).
#include "virtio/queue.h"

#include "virtio/ring_abi.h"

#include <bit>

#include "base/log.h"
#include "virtio/features.h"

namespace msb::virtio {

namespace {

// Ring layouts (virtio 1.2 §2.7.6, §2.7.8): 16-bit flags and idx, then the ring, then the
// event-index field that exists whether or not EVENT_IDX is negotiated.
constexpr uint64_t kAvailIdx = 2;
constexpr uint64_t kUsedIdx = 2;
constexpr uint64_t avail_bytes(uint16_t size) { return 4 + 2ull * size + 2; }
constexpr uint64_t used_bytes(uint16_t size) { return 4 + 8ull * size + 2; }
constexpr uint64_t avail_ring_entry(uint16_t i) { return 4 + 2ull * i; }
constexpr uint64_t used_event_offset(uint16_t size) { return 4 + 2ull * size; }
constexpr uint64_t used_ring_entry(uint16_t i) { return 4 + 8ull * i; }
constexpr uint64_t avail_event_offset(uint16_t size) { return 4 + 8ull * size; }

static_assert(sizeof(vring_used_elem) == 8);

// All ring fields are naturally aligned (checked at validation), so 16/32-bit atomics on them
// are well-defined accesses to memory the guest shares with us.
uint16_t load16(const uint8_t* p, int order) {
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), order);
}
void store16(uint8_t* p, uint16_t v, int order) {
    __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, order);
}
void store32(uint8_t* p, uint32_t v) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELAXED);
}

log::RateLimit g_chain_log;
log::RateLimit g_ring_log;

}  // namespace

Status validate_queue_config(const QueueConfig& c, const kvm::GuestMemory& memory) {
    if (c.size == 0 || c.size > c.max_size || !std::has_single_bit(c.size))
        return Error("queue size " + std::to_string(c.size) +
                     " is not a power of two <= " + std::to_string(c.max_size));
    if (c.desc_table % 16 || c.avail_ring % 2 || c.used_ring % 4)
        return Error("misaligned queue rings");
    if (!memory.contains(c.desc_table, 16ull * c.size))
        return Error("descriptor table outside guest memory");
    if (!memory.contains(c.avail_ring, avail_bytes(c.size)))
        return Error("available ring outside guest memory");
    if (!memory.contains(c.used_ring, used_bytes(c.size)))
        return Error("used ring outside guest memory");
    return {};
}

Result<Queue> Queue::create(std::string label, const QueueConfig& config,
                            const kvm::GuestMemory& memory, Interrupt& interrupt,
                            uint64_t features) {
    TRY(validate_queue_config(config, memory));
    Queue q;
    q.m_label = std::move(label);
    q.m_memory = &memory;
    q.m_interrupt = &interrupt;
    q.m_size = config.size;
    q.m_desc_table = config.desc_table;
    // Safe: validate_queue_config checked both whole rings against guest memory.
    q.m_avail = memory.host_address(config.avail_ring, avail_bytes(config.size));
    q.m_used = memory.host_address(config.used_ring, used_bytes(config.size));
    q.m_event_idx = has_feature(features, VIRTIO_RING_F_EVENT_IDX);
    q.m_indirect = has_feature(features, VIRTIO_RING_F_INDIRECT_DESC);
    if (q.m_event_idx) store16(q.m_used + avail_event_offset(q.m_size), 0, __ATOMIC_RELEASE);
    return q;
}

uint16_t Queue::load_avail_idx() const {
    // Acquire: ring entries and descriptors written before idx are visible after it
    // (virtio 1.2 §2.7.13.3: the driver publishes with a write barrier).
    return load16(m_avail + kAvailIdx, __ATOMIC_ACQUIRE);
}

bool Queue::has_available() const {
    if (!ready() || m_broken) return false;
    return load_avail_idx() != m_next_avail;
}

void Queue::mark_broken(const char* why) {
    m_broken = true;
    if (g_ring_log.allow())
        log::warn("{}: {}; device needs reset ({} ring errors so far)", m_label, why,
                  g_ring_log.count());
    m_interrupt->set_needs_reset();
}

std::optional<DescriptorChain> Queue::pop() {
    if (!ready() || m_broken) return std::nullopt;
    for (;;) {
        uint16_t avail_idx = load_avail_idx();
        uint16_t pending = static_cast<uint16_t>(avail_idx - m_next_avail);
        if (pending > m_size) {
            mark_broken("available index ran ahead of the ring");
            return std::nullopt;
        }
        if (pending == 0) {
            if (!m_event_idx) return std::nullopt;
            // Ask for a kick at the next buffer, then look again: the driver may have added
            // one after our read but before seeing avail_event (virtio 1.2 §2.7.10). The
            // sequentially consistent store/load pair is the full barrier this needs (a locked
            // instruction on x86) and, unlike a bare fence, is understood by TSan.
            store16(m_used + avail_event_offset(m_size), m_next_avail, __ATOMIC_SEQ_CST);
            if (load16(m_avail + kAvailIdx, __ATOMIC_SEQ_CST) == m_next_avail) return std::nullopt;
            continue;
        }
        uint16_t head = load16(m_avail + avail_ring_entry(m_next_avail % m_size), __ATOMIC_RELAXED);
        ++m_next_avail;
        ParsedChain parsed = parse_chain(*m_memory, m_desc_table, head,
                                         {.queue_size = m_size, .indirect_allowed = m_indirect});
        if (parsed.ok()) return std::move(parsed.chain());
        if (parsed.error() == ChainError::HeadOutOfRange) {
            mark_broken("available ring names a descriptor outside the table");
            return std::nullopt;
        }
        ++m_malformed;
        if (g_chain_log.allow())
            log::warn("{}: skipping malformed descriptor chain at head {}: {} ({} so far)", m_label,
                      head, to_string(parsed.error()), g_chain_log.count());
        add_used(head, 0);
    }
}

void Queue::add_used(uint16_t head, uint32_t length) {
    if (!ready()) return;
    uint8_t* elem = m_used + used_ring_entry(m_next_used % m_size);
    store32(elem, head);
    store32(elem + 4, length);
    ++m_next_used;
    // Release: the element is visible before the index that publishes it.
    store16(m_used + kUsedIdx, m_next_used, __ATOMIC_RELEASE);
}

void Queue::notify_used() {
    if (!ready() || m_next_used == m_signalled_used) return;
    uint16_t old = m_signalled_used;
    m_signalled_used = m_next_used;
    // Full barrier: our used index store must be visible before we read the driver's
    // suppression state, or we could both decide the other will act. Re-publishing the index
    // with a sequentially consistent store, then loading the same way, gives that ordering.
    store16(m_used + kUsedIdx, m_next_used, __ATOMIC_SEQ_CST);
    bool needed;
    if (m_event_idx) {
        uint16_t used_event = load16(m_avail + used_event_offset(m_size), __ATOMIC_SEQ_CST);
        needed = vring_need_event(used_event, m_next_used, old);
    } else {
        uint16_t flags = load16(m_avail, __ATOMIC_SEQ_CST);
        needed = !(flags & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (needed) m_interrupt->signal_used();
}

}  // namespace msb::virtio
