// libFuzzer target: descriptor-chain walking and queue popping over guest memory whose every
// byte (descriptor table, rings, indirect tables) comes from the fuzzer.
//
// Input: 4 parameter bytes, then the contents of a 64 KiB guest RAM.
//   byte 0: log2 of the queue size (mod 9: 1..256 entries)
//   byte 1: head index for the direct walk
//   byte 2: bit 0 = indirect negotiated, bit 1 = event index negotiated
//   byte 3: how many chains to pop through Queue
// The rings sit at fixed addresses inside that RAM. Built only with -DMSB_FUZZ=ON (clang).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/log.h"
#include "kvm/guest_memory.h"
#include "virtio/descriptor_chain.h"
#include "virtio/features.h"
#include "virtio/queue.h"
#include "virtio/ring_abi.h"

namespace {

constexpr uint64_t kRam = 64 * 1024;
constexpr uint64_t kDesc = 0x0000;   // up to 256 × 16 = 4 KiB
constexpr uint64_t kAvail = 0x1000;  // up to 6 + 512 bytes
constexpr uint64_t kUsed = 0x2000;   // up to 6 + 2048 bytes

struct Fixture {
    msb::kvm::GuestMemory memory;
    msb::virtio::Interrupt interrupt;
};

Fixture* make_fixture() {
    msb::log::set_level(msb::log::Level::Off);
    return new Fixture{MUST(msb::kvm::GuestMemory::create({{0, kRam}})),
                       MUST(msb::virtio::Interrupt::create())};
}

void drain(const msb::kvm::GuestMemory& memory, const msb::virtio::DescriptorChain& chain) {
    msb::virtio::DescriptorChainReader in(memory, chain);
    uint8_t buffer[512];
    while (in.read(buffer) > 0) {
    }
    msb::virtio::DescriptorChainWriter out(memory, chain);
    std::memset(buffer, 0xa5, sizeof buffer);
    while (out.write(buffer) > 0) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Fixture* fixture = make_fixture();
    if (size < 4) return 0;
    const uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));
    const uint16_t head = data[1];
    const bool indirect = data[2] & 1;
    const bool event_idx = data[2] & 2;
    const unsigned pops = data[3];
    data += 4;
    size -= 4;

    auto& memory = fixture->memory;
    std::memset(memory.host_address(0, kRam), 0, kRam);
    std::memcpy(memory.host_address(0, kRam), data, size < kRam ? size : kRam);

    // The walker alone.
    msb::virtio::ParsedChain parsed = msb::virtio::parse_chain(
        memory, kDesc, head, {.queue_size = queue_size, .indirect_allowed = indirect});
    if (parsed.ok()) {
        const auto& chain = parsed.chain();
        if (chain.readable().size() + chain.writable().size() > queue_size) __builtin_trap();
        drain(memory, chain);
    }

    // The queue over fuzzed rings.
    uint64_t features = (indirect ? msb::virtio::feature_bit(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
                        (event_idx ? msb::virtio::feature_bit(VIRTIO_RING_F_EVENT_IDX) : 0);
    msb::virtio::QueueConfig config{.max_size = 256,
                                    .size = queue_size,
                                    .ready = true,
                                    .desc_table = kDesc,
                                    .avail_ring = kAvail,
                                    .used_ring = kUsed};
    auto queue = msb::virtio::Queue::create("fuzz", config, memory, fixture->interrupt, features);
    if (!queue.ok()) __builtin_trap();
    for (unsigned i = 0; i < pops; ++i) {
        auto chain = queue->pop();
        if (!chain) break;
        drain(memory, *chain);
        queue->add_used(chain->head(), chain->writable_bytes());
    }
    queue->notify_used();
    fixture->interrupt.reset();
    return 0;
}
