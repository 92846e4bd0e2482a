// The virtio 1.x split-ring ABI (virtio spec 1.2 section 2.7), written out for sandfs.
//
// Names are Linux's own (include/uapi/linux/virtio_ring.h, virtio_config.h) so a reviewer can
// diff against them; sizes are pinned by static_asserts. The structs document the layout and give
// offsetof() values: nothing dereferences them in guest memory (the guest writes those bytes
// concurrently; see virtqueue.cpp for how they are read).
//
// Everything is little-endian (VIRTIO_F_VERSION_1; legacy devices are not supported), which is
// also the host's byte order on every platform sandfs builds for.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace sandfs::vhost_user {

static_assert(std::endian::native == std::endian::little,
              "virtio 1.x rings are little-endian; a big-endian host needs byte swaps here");

// ---- feature bits ------------------------------------------------------------------------------
inline constexpr unsigned VIRTIO_RING_F_INDIRECT_DESC = 28;
inline constexpr unsigned VIRTIO_RING_F_EVENT_IDX = 29;
inline constexpr unsigned VIRTIO_F_VERSION_1 = 32;

// ---- vring_desc.flags --------------------------------------------------------------------------
inline constexpr uint16_t VRING_DESC_F_NEXT = 1;
inline constexpr uint16_t VRING_DESC_F_WRITE = 2;
inline constexpr uint16_t VRING_DESC_F_INDIRECT = 4;

// ---- vring_used.flags / vring_avail.flags ------------------------------------------------------
inline constexpr uint16_t VRING_USED_F_NO_NOTIFY = 1;
inline constexpr uint16_t VRING_AVAIL_F_NO_INTERRUPT = 1;

// The largest split-ring queue size (the spec's limit; sizes are powers of two).
inline constexpr uint32_t max_queue_size = 32768;

struct vring_desc {
  uint64_t addr;  // guest physical
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(vring_desc) == 16);
static_assert(offsetof(vring_desc, len) == 8);
static_assert(offsetof(vring_desc, flags) == 12);
static_assert(offsetof(vring_desc, next) == 14);

// vring_avail: le16 flags, le16 idx, le16 ring[num], then le16 used_event (with EVENT_IDX).
struct vring_avail_header {
  uint16_t flags;
  uint16_t idx;
};
static_assert(sizeof(vring_avail_header) == 4);

struct vring_used_elem {
  uint32_t id;  // head index of the chain (u32 in the ABI, always < queue size)
  uint32_t len;
};
static_assert(sizeof(vring_used_elem) == 8);

// vring_used: le16 flags, le16 idx, vring_used_elem ring[num], then le16 avail_event (with
// EVENT_IDX).
struct vring_used_header {
  uint16_t flags;
  uint16_t idx;
};
static_assert(sizeof(vring_used_header) == 4);

inline constexpr size_t vring_desc_align = 16;
inline constexpr size_t vring_avail_align = 2;
inline constexpr size_t vring_used_align = 4;

// Byte sizes of the three parts for `num` entries; the trailing event field is counted only when
// EVENT_IDX was negotiated (without it the driver need not allocate it).
constexpr size_t vring_desc_bytes(uint32_t num) {
  return sizeof(vring_desc) * num;
}
constexpr size_t vring_avail_bytes(uint32_t num, bool event_idx) {
  return sizeof(vring_avail_header) + sizeof(uint16_t) * num + (event_idx ? sizeof(uint16_t) : 0);
}
constexpr size_t vring_used_bytes(uint32_t num, bool event_idx) {
  return sizeof(vring_used_header) + sizeof(vring_used_elem) * num +
         (event_idx ? sizeof(uint16_t) : 0);
}

// The EVENT_IDX test, as the spec states it: should the side that moved its index from `old_idx`
// to `new_idx` notify a peer that asked to hear once `event_idx` is passed? All arithmetic is
// modulo 2^16, so it stays right when the indices wrap.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

}  // namespace sandfs::vhost_user
