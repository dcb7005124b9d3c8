// Feature-bit helpers shared by the transport, queues and devices.
#pragma once

#include <cstdint>

namespace msb::virtio {

constexpr uint64_t feature_bit(unsigned bit) { return uint64_t{1} << bit; }
constexpr bool has_feature(uint64_t features, unsigned bit) {
    return (features & feature_bit(bit)) != 0;
}

}  // namespace msb::virtio
