// The /dev/fuse side of one request's reply.
//
// A reply is one writev(2) of the fuse_out_header and the payload parts on the /dev/fuse fd of
// the thread that read the request (each server thread has its own cloned fd). The kernel takes
// the whole reply or nothing, and a write never blocks.
//
// payload_buffer() hands out the request's own receive buffer. Rule for the Session: once it has
// asked for the payload buffer it must not read the request bytes (the message span given to
// handle()) any more, because the backend's read() overwrites them. The buffer is
// request_buffer_size() bytes (max_write + 4096 rounded up to pages), so a READ of max_write bytes
// always fits; a larger request gets an empty view.
//
// Write errors: ENOENT means the kernel no longer waits for this request (it was interrupted, or
// the connection is being aborted): counted, and send() still returns true since the connection
// is fine. Any other error (ENODEV after unmount, EINVAL for a malformed reply) is counted, logged
// at debug level, and send() returns false.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/session.hpp"
#include "transport/fuse_dev/thread_counter.hpp"

namespace sandfs::fuse_dev {

struct ReplyCounters {
  ThreadCounter sent;         // replies the kernel accepted
  ThreadCounter interrupted;  // ENOENT: the request was interrupted or aborted meanwhile
  ThreadCounter failed;       // any other write error (ENODEV after unmount, EINVAL, ...)
};

class FuseDevReplyChannel final : public ReplyChannel {
 public:
  // `buffer` is the request's receive buffer of `capacity` bytes; `fd` the /dev/fuse fd it was
  // read from. All must outlive the channel.
  FuseDevReplyChannel(int fd, std::byte* buffer, size_t capacity, ReplyCounters& counters)
      : fd_(fd), buffer_(buffer), capacity_(capacity), counters_(counters) {}

  IoVecs payload_buffer(size_t size) override;
  bool send(std::span<const iovec> iov) override;

  // Kernel passthrough: FUSE_DEV_IOC_BACKING_OPEN / _CLOSE on this request's /dev/fuse fd. Ids
  // belong to the connection, so any of its fds (the mount fd or a clone) will do. The kernel
  // answers EPERM when the calling thread lacks CAP_SYS_ADMIN, when passthrough was not
  // enabled at FUSE_INIT, and before the INIT reply; ENOTTY on anything but /dev/fuse.
  bool supports_backing() const override { return true; }
  int open_backing(int fd) override;
  int close_backing(int id) override;

 private:
  int fd_;
  std::byte* buffer_;
  size_t capacity_;
  ReplyCounters& counters_;
  iovec payload_{};
};

}  // namespace sandfs::fuse_dev
