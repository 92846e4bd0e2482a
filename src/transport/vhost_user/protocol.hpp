// The vhost-user wire protocol, as far as a vhost-user-fs backend needs it.
//
// Names follow QEMU's docs/interop/vhost-user.rst so a reviewer can compare the two. Every
// message is a 12-byte header (request, flags, payload size) and a payload of at most
// max_payload bytes, with file descriptors passed alongside in SCM_RIGHTS. The frontend (the VMM)
// sends requests; the backend (sandfs) replies only where the spec says so, or when REPLY_ACK was
// negotiated and the request carries NEED_REPLY.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sandfs::vhost_user {

// ---- header ----

inline constexpr uint32_t version_mask = 0x3;
inline constexpr uint32_t version = 0x1;
inline constexpr uint32_t flag_reply = 1u << 2;
inline constexpr uint32_t flag_need_reply = 1u << 3;

struct MessageHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(MessageHeader) == 12);

// Front-end requests (vhost-user.rst "Front-end message types").
enum class Request : uint32_t {
  none = 0,
  get_features = 1,
  set_features = 2,
  set_owner = 3,
  reset_owner = 4,
  set_mem_table = 5,
  set_log_base = 6,
  set_log_fd = 7,
  set_vring_num = 8,
  set_vring_addr = 9,
  set_vring_base = 10,
  get_vring_base = 11,
  set_vring_kick = 12,
  set_vring_call = 13,
  set_vring_err = 14,
  get_protocol_features = 15,
  set_protocol_features = 16,
  get_queue_num = 17,
  set_vring_enable = 18,
  send_rarp = 19,
  net_set_mtu = 20,
  set_backend_req_fd = 21,
  iotlb_msg = 22,
  set_vring_endian = 23,
  get_config = 24,
  set_config = 25,
  create_crypto_session = 26,
  close_crypto_session = 27,
  postcopy_advise = 28,
  postcopy_listen = 29,
  postcopy_end = 30,
  get_inflight_fd = 31,
  set_inflight_fd = 32,
  gpu_set_socket = 33,
  reset_device = 34,
  vring_kick = 35,
  get_max_mem_slots = 36,
  add_mem_reg = 37,
  rem_mem_reg = 38,
  set_status = 39,
  get_status = 40,
};

const char* request_name(uint32_t request);

// ---- feature bits ----

// Virtio device features (virtio 1.2 §6) that a vhost-user-fs backend may offer.
inline constexpr uint64_t virtio_ring_f_indirect_desc = 1ull << 28;
inline constexpr uint64_t virtio_ring_f_event_idx = 1ull << 29;
inline constexpr uint64_t vhost_user_f_protocol_features = 1ull << 30;
inline constexpr uint64_t virtio_f_version_1 = 1ull << 32;

// Protocol features (vhost-user.rst "Protocol features").
inline constexpr uint64_t protocol_f_mq = 1ull << 0;
inline constexpr uint64_t protocol_f_reply_ack = 1ull << 3;
inline constexpr uint64_t protocol_f_config = 1ull << 9;

// Device type of virtio-fs (virtio 1.2 §5.11).
inline constexpr uint32_t virtio_id_fs = 26;

// ---- payloads ----

// SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE.
struct VringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VringState) == 8);

// SET_VRING_ADDR: the three ring addresses in the frontend's own (user) address space.
struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: log the used ring (dirty logging; never negotiated here)
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

// One region of SET_MEM_TABLE; its fd arrives in SCM_RIGHTS at the same position.
struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

// The most regions (and so fds) one SET_MEM_TABLE carries.
inline constexpr size_t max_mem_regions = 8;

struct MemoryTable {
  uint32_t nregions;
  uint32_t padding;
  MemoryRegion regions[max_mem_regions];
};
static_assert(sizeof(MemoryTable) == 8 + 32 * max_mem_regions);

// SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR payload (a u64).
inline constexpr uint64_t vring_index_mask = 0xff;
inline constexpr uint64_t vring_nofd_mask = 1ull << 8;  // no fd: poll the ring instead

// The largest payload any message we accept may have (SET_MEM_TABLE is the largest).
inline constexpr uint32_t max_payload = sizeof(MemoryTable);
// The most fds one message may carry.
inline constexpr size_t max_fds = max_mem_regions;

}  // namespace sandfs::vhost_user
