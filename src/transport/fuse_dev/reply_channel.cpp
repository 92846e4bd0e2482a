#include "transport/fuse_dev/reply_channel.hpp"

#include <limits.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::fuse_dev {

IoVecs FuseDevReplyChannel::payload_buffer(size_t size) {
  if (size > capacity_) return {};
  payload_ = iovec{buffer_, size};
  return IoVecs{std::span<const iovec>(&payload_, 1), size};
}

bool FuseDevReplyChannel::send(std::span<const iovec> iov) {
  if (iov.empty() || iov.size() > IOV_MAX) {
    counters_.failed.add();
    return false;
  }
  size_t total = 0;
  for (const iovec& part : iov)
    total += part.iov_len;
  ssize_t n;
  do {
    n = ::writev(fd_, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n >= 0 && static_cast<size_t>(n) == total) {
    counters_.sent.add();
    return true;
  }
  if (n < 0 && errno == ENOENT) {
    // The kernel forgot the request (interrupted, or the connection is going away). Normal.
    counters_.interrupted.add();
    return true;
  }
  const int e = n < 0 ? errno : EIO;
  counters_.failed.add();
  SANDFS_LOG(debug) << "/dev/fuse reply of " << total
                    << " bytes failed: " << (n < 0 ? std::strerror(e) : "short write");
  return false;
}

int FuseDevReplyChannel::open_backing(int fd) {
  fuse::fuse_backing_map map{};
  map.fd = fd;
  const int id = ::ioctl(fd_, fuse::FUSE_DEV_IOC_BACKING_OPEN, &map);
  return id < 0 ? -errno : id;
}

int FuseDevReplyChannel::close_backing(int id) {
  if (id <= 0) return -EINVAL;
  uint32_t value = static_cast<uint32_t>(id);
  return ::ioctl(fd_, fuse::FUSE_DEV_IOC_BACKING_CLOSE, &value) == 0 ? 0 : -errno;
}

}  // namespace sandfs::fuse_dev
