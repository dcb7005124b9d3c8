// The split-ring wire layout from the kernel's uapi header, without its legacy helpers
// (vring_init() is C-only and does not compile as C++).
#pragma once

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>
