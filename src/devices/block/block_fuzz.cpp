// libFuzzer target: virtio-blk request parsing. A BlockDevice over a small in-memory disk serves
// request chains whose header, payload, data-in length and split into descriptors come from the
// fuzzer, one kick per chain, and every completion is checked right away:
//   - the chain comes back, with the whole writable part as used length (0 without one), and
//     its last byte is one of the three statuses the spec defines;
//   - a successful IN returned the disk's bytes, OUT put the payload on the disk, GET_ID the
//     padded serial, DISCARD / WRITE_ZEROES left every range reading as zeroes;
//   - guest bytes outside the chain's writable buffers are untouched;
//   - the disk traps any access outside itself and any change to a read-only device's disk,
//     since the device must check both before calling it (DiskImage's REQUIRES).
// The disk can be told to fail the request's first I/O call, to reach the IOERR paths.
// Descriptor-table and ring parsing have their own target (src/virtio/queue_fuzz.cpp); here the
// chains are well formed and the device's request handling is what is explored.
#include <fuzzer/FuzzedDataProvider.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "devices/block/block_device.h"
#include "kvm/guest_memory.h"
#include "virtio/features.h"
#include "virtio/interrupt.h"
#include "virtio/queue.h"
#include "virtio/ring_abi.h"

namespace {

using msb::devices::BlockDevice;
using msb::devices::DiskAccess;

constexpr uint64_t kSector = BlockDevice::kSectorSize;
constexpr uint64_t kRam = 256 * 1024;
constexpr uint16_t kQueueSize = BlockDevice::kQueueSize;
constexpr uint64_t kDesc = 0x0000;   // 256 × 16 = 4 KiB
constexpr uint64_t kAvail = 0x1000;  // 6 + 512 bytes
constexpr uint64_t kUsed = 0x2000;   // 6 + 2048 bytes
constexpr uint64_t kData = 0x4000;   // request buffers, 64-byte gaps between them
constexpr uint32_t kMaxBuffer = 16 * kSector + 600;
constexpr size_t kMaxDescriptorsPerSide = 6;
constexpr size_t kMaxRequests = 48;
constexpr uint8_t kCanary = 0xcc;

// Bytes that look random, for disk contents and payloads (copied, not generated per input).
std::span<const uint8_t> noise() {
    static const std::vector<uint8_t> bytes = [] {
        std::vector<uint8_t> v(64 * 1024);
        uint32_t x = 0x12345678;
        for (uint8_t& b : v) b = static_cast<uint8_t>((x = x * 1103515245 + 12345) >> 16);
        return v;
    }();
    return bytes;
}

// memcmp that takes empty ranges (whose pointers may be null).
bool same_bytes(const uint8_t* a, const uint8_t* b, size_t n) {
    return n == 0 || std::memcmp(a, b, n) == 0;
}

bool all_equal(const uint8_t* p, size_t n, uint8_t value) {
    static const std::vector<uint8_t> zeroes(64 * 1024, 0), canaries(64 * 1024, kCanary);
    const std::vector<uint8_t>& same = value == 0 ? zeroes : canaries;
    for (size_t done = 0; done < n; done += same.size())
        if (!same_bytes(p + done, same.data(), std::min(same.size(), n - done))) return false;
    return true;
}

// A disk in a vector that enforces DiskImage's preconditions (the device checks first).
class MemoryDisk final : public msb::devices::DiskImage {
public:
    MemoryDisk(uint64_t sectors, DiskAccess access, DiskAccess device_access, bool discard)
        : m_bytes(sectors * kSector),
          m_access(access),
          m_mutable(device_access == DiskAccess::ReadWrite && access == DiskAccess::ReadWrite),
          m_discard(discard) {
        std::copy_n(noise().begin(), m_bytes.size(), m_bytes.begin());
    }

    uint64_t size() const override { return m_bytes.size(); }
    DiskAccess access() const override { return m_access; }
    msb::Status read_at(uint64_t offset, std::span<uint8_t> out) override {
        check(offset, out.size(), Change::No);
        if (fail()) return msb::Error("memory disk: injected read error");
        if (!out.empty()) std::memcpy(out.data(), m_bytes.data() + offset, out.size());
        return {};
    }
    msb::Status write_at(uint64_t offset, std::span<const uint8_t> in) override {
        check(offset, in.size(), Change::Yes);
        if (fail()) return msb::Error("memory disk: injected write error");
        if (!in.empty()) std::memcpy(m_bytes.data() + offset, in.data(), in.size());
        return {};
    }
    msb::Status flush() override {
        if (fail()) return msb::Error("memory disk: injected flush error");
        return {};
    }
    bool supports_discard() const override { return m_discard; }
    msb::Status discard(uint64_t offset, uint64_t length) override {
        if (!m_discard) __builtin_trap();  // DISCARD was not offered
        return write_zeroes(offset, length);
    }
    msb::Status write_zeroes(uint64_t offset, uint64_t length) override {
        check(offset, length, Change::Yes);
        if (fail()) return msb::Error("memory disk: injected write-zeroes error");
        if (length > 0) std::memset(m_bytes.data() + offset, 0, length);
        return {};
    }

    const std::vector<uint8_t>& bytes() const { return m_bytes; }
    void fail_next_call(bool on) { m_fail_next = on; }

private:
    enum class Change { No, Yes };
    void check(uint64_t offset, uint64_t length, Change change) const {
        if (offset > m_bytes.size() || length > m_bytes.size() - offset) __builtin_trap();
        if (change == Change::Yes && !m_mutable) __builtin_trap();
    }
    bool fail() { return std::exchange(m_fail_next, false); }

    std::vector<uint8_t> m_bytes;
    DiskAccess m_access;
    bool m_mutable;
    bool m_discard;
    bool m_fail_next = false;
};

struct Fixture {
    msb::kvm::GuestMemory memory;
    msb::virtio::Interrupt interrupt;
    msb::EventLoop loop;
};

Fixture* make_fixture() {
    msb::log::set_level(msb::log::Level::Off);
    return new Fixture{MUST(msb::kvm::GuestMemory::create({{0, kRam}})),
                       MUST(msb::virtio::Interrupt::create()), MUST(msb::EventLoop::create())};
}

// A sector number: mostly near the disk (inside, at the end, just past it), sometimes anything.
uint64_t pick_sector(FuzzedDataProvider& fdp, uint64_t capacity) {
    if (fdp.ConsumeIntegralInRange(0, 7) == 0) return fdp.ConsumeIntegral<uint64_t>();
    return fdp.ConsumeIntegralInRange<uint64_t>(0, capacity + 2);
}

// A data length: mostly whole sectors, sometimes any byte count.
uint32_t pick_length(FuzzedDataProvider& fdp) {
    if (fdp.ConsumeIntegralInRange(0, 5) == 0)
        return fdp.ConsumeIntegralInRange<uint32_t>(0, kMaxBuffer);
    return fdp.ConsumeIntegralInRange<uint32_t>(0, 16) * uint32_t{kSector};
}

uint32_t pick_type(FuzzedDataProvider& fdp) {
    static constexpr uint32_t kTypes[] = {VIRTIO_BLK_T_IN,       VIRTIO_BLK_T_OUT,
                                          VIRTIO_BLK_T_FLUSH,    VIRTIO_BLK_T_GET_ID,
                                          VIRTIO_BLK_T_DISCARD,  VIRTIO_BLK_T_WRITE_ZEROES,
                                          VIRTIO_BLK_T_IN,       VIRTIO_BLK_T_OUT,
                                          10 /* GET_LIFETIME */, 14 /* SECURE_ERASE */};
    size_t i = fdp.ConsumeIntegralInRange<size_t>(0, std::size(kTypes));
    return i < std::size(kTypes) ? kTypes[i] : fdp.ConsumeIntegral<uint32_t>();
}

template <typename T>
void append(std::vector<uint8_t>& bytes, const T& value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof value);
}

// Splits `total` bytes into `parts` lengths at fuzzer-chosen cut points (some may be empty).
std::vector<uint32_t> split(FuzzedDataProvider& fdp, uint32_t total, size_t parts) {
    std::vector<uint32_t> cuts{0, total};
    for (size_t i = 1; i < parts; ++i)
        cuts.push_back(fdp.ConsumeIntegralInRange<uint32_t>(0, total));
    std::sort(cuts.begin(), cuts.end());
    std::vector<uint32_t> lengths;
    for (size_t i = 1; i < cuts.size(); ++i) lengths.push_back(cuts[i] - cuts[i - 1]);
    return lengths;
}

struct Request {
    uint32_t type = 0;
    uint64_t sector = 0;
    bool whole_header = false;
    std::vector<uint8_t> readable;  // header + payload as the guest wrote them
    uint32_t writable = 0;          // data-in bytes + status byte
};

Request make_request(FuzzedDataProvider& fdp, uint64_t capacity) {
    Request r;
    r.type = pick_type(fdp);
    r.sector = pick_sector(fdp, capacity);
    virtio_blk_outhdr header{r.type, fdp.ConsumeIntegral<uint8_t>(), r.sector};
    append(r.readable, header);
    if (r.type == VIRTIO_BLK_T_DISCARD || r.type == VIRTIO_BLK_T_WRITE_ZEROES) {
        size_t count = fdp.ConsumeIntegralInRange<size_t>(0, 34);
        for (size_t i = 0; i < count; ++i) {
            virtio_blk_discard_write_zeroes range{};
            range.sector = pick_sector(fdp, capacity);
            range.num_sectors = fdp.ConsumeIntegralInRange(0, 7) == 0
                                    ? fdp.ConsumeIntegral<uint32_t>()
                                    : fdp.ConsumeIntegralInRange<uint32_t>(0, capacity + 1);
            range.flags = fdp.ConsumeIntegralInRange(0, 7) == 0
                              ? fdp.ConsumeIntegral<uint32_t>()
                              : fdp.ConsumeIntegralInRange<uint32_t>(0, 1);
            append(r.readable, range);
        }
    } else if (r.type == VIRTIO_BLK_T_OUT || fdp.ConsumeIntegralInRange(0, 7) == 0) {
        uint32_t length = pick_length(fdp);
        auto bytes = noise().subspan(fdp.ConsumeIntegral<uint8_t>() * 64u, length);
        r.readable.insert(r.readable.end(), bytes.begin(), bytes.end());
    }
    if (fdp.ConsumeIntegralInRange(0, 15) == 0) {  // odd trailing bytes, or a short header
        if (fdp.ConsumeBool())
            r.readable.resize(fdp.ConsumeIntegralInRange<size_t>(0, r.readable.size()));
        else
            r.readable.resize(r.readable.size() + fdp.ConsumeIntegralInRange<size_t>(1, 15));
    }
    r.whole_header = r.readable.size() >= sizeof header;
    if (fdp.ConsumeIntegralInRange(0, 7) == 0) {
        r.writable = fdp.ConsumeIntegralInRange<uint32_t>(0, kMaxBuffer);
    } else if (r.type == VIRTIO_BLK_T_IN) {
        r.writable = pick_length(fdp) + 1;
    } else if (r.type == VIRTIO_BLK_T_GET_ID) {
        r.writable = VIRTIO_BLK_ID_BYTES + 1;
    } else {
        r.writable = 1;
    }
    return r;
}

struct Laid {
    std::vector<std::pair<uint64_t, uint32_t>> writable;  // guest address, length
    uint64_t end = kData;                                 // end of the buffers in guest RAM
};

// Writes the request's buffers and descriptors (head 0, a direct chain) into guest RAM and
// fills everything else in the data area with a canary.
Laid lay_out(FuzzedDataProvider& fdp, msb::kvm::GuestMemory& memory, const Request& r) {
    std::vector<uint32_t> readable =
        split(fdp, static_cast<uint32_t>(r.readable.size()),
              fdp.ConsumeIntegralInRange<size_t>(1, kMaxDescriptorsPerSide));
    std::vector<uint32_t> writable =
        r.writable == 0
            ? std::vector<uint32_t>{}
            : split(fdp, r.writable, fdp.ConsumeIntegralInRange<size_t>(1, kMaxDescriptorsPerSide));
    Laid laid;
    uint64_t address = kData;
    size_t consumed = 0;
    uint16_t index = 0;
    const size_t total = readable.size() + writable.size();
    const uint64_t extent = 64 * (total + 1) + r.readable.size() + r.writable;
    std::memset(memory.host_address(kData, extent), kCanary, extent);
    auto add = [&](uint32_t length, uint16_t flags) {
        address += 64;
        vring_desc desc{};
        desc.addr = address;
        desc.len = length;
        desc.flags = flags | (index + 1u < total ? VRING_DESC_F_NEXT : 0);
        desc.next = static_cast<uint16_t>(index + 1);
        MUST(memory.write_obj(kDesc + uint64_t{index} * sizeof desc, desc));
        ++index;
        address += length;
    };
    for (uint32_t length : readable) {
        MUST(memory.write(address + 64, std::span(r.readable).subspan(consumed, length)));
        consumed += length;
        add(length, 0);
    }
    for (uint32_t length : writable) {
        laid.writable.emplace_back(address + 64, length);
        add(length, VRING_DESC_F_WRITE);
    }
    laid.end = address;
    return laid;
}

// Checks what the device did with the request it just completed.
void check_completion(const msb::kvm::GuestMemory& memory, const MemoryDisk& disk,
                      const std::string& serial, const Request& r, const Laid& laid,
                      const vring_used_elem& used) {
    if (used.id != 0) __builtin_trap();
    if (r.writable == 0) {
        if (used.len != 0) __builtin_trap();
        return;
    }
    if (used.len != r.writable) __builtin_trap();
    std::vector<uint8_t> in;  // the writable bytes as the guest sees them
    for (auto [address, length] : laid.writable) {
        const uint8_t* p = memory.host_address(address, length);
        in.insert(in.end(), p, p + length);
    }
    // Everything between and around the buffers still holds the canary, except readable ones.
    uint64_t next = kData;
    auto canary = [&](uint64_t from, uint64_t to) {
        if (!all_equal(memory.host_address(from, to - from), to - from, kCanary)) __builtin_trap();
    };
    for (auto [address, length] : laid.writable) {
        canary(std::max(next, address - 64), address);
        next = address + length;
    }
    canary(next, laid.end + 64);

    const uint8_t status = in.back();
    in.pop_back();
    if (status != VIRTIO_BLK_S_OK && status != VIRTIO_BLK_S_IOERR && status != VIRTIO_BLK_S_UNSUPP)
        __builtin_trap();
    if (status != VIRTIO_BLK_S_OK) return;
    if (!r.whole_header) __builtin_trap();  // nothing to act on
    const std::vector<uint8_t>& bytes = disk.bytes();
    const bool io = r.type == VIRTIO_BLK_T_IN || r.type == VIRTIO_BLK_T_OUT;
    if (io && r.sector > bytes.size() / kSector) __builtin_trap();
    const std::span<const uint8_t> payload =
        std::span(r.readable).subspan(sizeof(virtio_blk_outhdr));
    switch (r.type) {
        case VIRTIO_BLK_T_IN:
            if (r.sector * kSector + in.size() > bytes.size() ||
                !same_bytes(in.data(), bytes.data() + r.sector * kSector, in.size()))
                __builtin_trap();
            break;
        case VIRTIO_BLK_T_OUT:
            if (r.sector * kSector + payload.size() > bytes.size() ||
                !same_bytes(payload.data(), bytes.data() + r.sector * kSector, payload.size()))
                __builtin_trap();
            break;
        case VIRTIO_BLK_T_GET_ID: {
            uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
            std::memcpy(id, serial.data(), serial.size());
            size_t n = std::min(in.size(), sizeof id);
            if (!same_bytes(in.data(), id, n)) __builtin_trap();
            break;
        }
        case VIRTIO_BLK_T_DISCARD:
        case VIRTIO_BLK_T_WRITE_ZEROES: {
            const size_t size = sizeof(virtio_blk_discard_write_zeroes);
            if (payload.empty() || payload.size() % size != 0) __builtin_trap();
            for (size_t i = 0; i < payload.size(); i += size) {
                virtio_blk_discard_write_zeroes range;
                std::memcpy(&range, payload.data() + i, size);
                uint64_t offset = range.sector * kSector;
                uint64_t length = uint64_t{range.num_sectors} * kSector;
                if (range.sector > bytes.size() / kSector || offset + length > bytes.size() ||
                    !all_equal(bytes.data() + offset, length, 0))
                    __builtin_trap();
            }
            break;
        }
        default:
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Fixture* fixture = make_fixture();
    auto& memory = fixture->memory;
    FuzzedDataProvider fdp(data, size);

    const uint64_t sectors = fdp.ConsumeIntegralInRange<uint64_t>(0, 64);
    const DiskAccess image_access =
        fdp.ConsumeBool() ? DiskAccess::ReadWrite : DiskAccess::ReadOnly;
    const DiskAccess config_access =
        fdp.ConsumeBool() ? DiskAccess::ReadWrite : DiskAccess::ReadOnly;
    const DiskAccess device_access =
        image_access == DiskAccess::ReadOnly ? DiskAccess::ReadOnly : config_access;
    const bool discard = fdp.ConsumeBool();
    std::string serial = fdp.ConsumeRandomLengthString(24);

    auto disk = std::make_shared<MemoryDisk>(sectors, image_access, device_access, discard);
    auto created = BlockDevice::create({.disk = disk, .serial = serial, .access = config_access});
    if (serial.size() > VIRTIO_BLK_ID_BYTES) {
        if (created.ok()) __builtin_trap();  // create() must refuse a serial over 20 bytes
        return 0;
    }
    if (!created.ok()) __builtin_trap();
    std::shared_ptr<BlockDevice> blk = std::move(created.value());
    if (blk->capacity_sectors() != sectors) __builtin_trap();
    if (msb::virtio::has_feature(blk->device_features(), VIRTIO_BLK_F_RO) !=
        (device_access == DiskAccess::ReadOnly))
        __builtin_trap();
    uint8_t config[8];
    blk->read_config(fdp.ConsumeIntegralInRange<uint64_t>(0, 80),
                     std::span(config).first(fdp.ConsumeIntegralInRange<size_t>(1, 8)));

    // What the transport does at DRIVER_OK, for a driver that set up the one queue.
    std::memset(memory.host_address(0, kData), 0, kData);
    const uint64_t offered = blk->device_features() | msb::virtio::feature_bit(VIRTIO_F_VERSION_1) |
                             msb::virtio::feature_bit(VIRTIO_RING_F_EVENT_IDX) |
                             msb::virtio::feature_bit(VIRTIO_RING_F_INDIRECT_DESC);
    const uint64_t features =
        fdp.ConsumeBool() ? offered : offered & fdp.ConsumeIntegral<uint64_t>();
    const msb::virtio::QueueConfig queue_config{.max_size = kQueueSize,
                                                .size = kQueueSize,
                                                .ready = true,
                                                .desc_table = kDesc,
                                                .avail_ring = kAvail,
                                                .used_ring = kUsed};
    MUST(msb::virtio::validate_queue_config(queue_config, memory));
    std::vector<msb::virtio::Queue> queues;
    queues.push_back(MUST(msb::virtio::Queue::create("blk-fuzz", queue_config, memory,
                                                     fixture->interrupt, features)));
    MUST(blk->activate({.queues = std::move(queues),
                        .features = features,
                        .memory = memory,
                        .interrupt = fixture->interrupt,
                        .loop = fixture->loop}));

    for (uint16_t n = 0; n < kMaxRequests && fdp.remaining_bytes() > 0; ++n) {
        Request request = make_request(fdp, sectors);
        Laid laid = lay_out(fdp, memory, request);
        disk->fail_next_call(fdp.ConsumeIntegralInRange(0, 15) == 0);

        // Publish head 0 as the next available entry and kick.
        MUST(memory.write_obj<uint16_t>(kAvail + 4 + (n % kQueueSize) * 2, 0));
        MUST(memory.write_obj<uint16_t>(kAvail + 2, static_cast<uint16_t>(n + 1)));
        blk->queue_notify(0);

        if (MUST(memory.read_obj<uint16_t>(kUsed + 2)) != n + 1) __builtin_trap();
        auto used = MUST(memory.read_obj<vring_used_elem>(kUsed + 4 + (n % kQueueSize) * 8));
        check_completion(memory, *disk, serial, request, laid, used);
    }
    blk->reset();
    fixture->interrupt.reset();
    return 0;
}
