// Mounting through the setuid helper fusermount3.
//
// The protocol: we create a Unix socketpair, start
//   fusermount3 -o OPTIONS -- MOUNTPOINT
// with the environment variable _FUSE_COMMFD naming the child's end of the pair, and fusermount3
// opens /dev/fuse, mounts, and sends the open fd back as SCM_RIGHTS ancillary data on a one-byte
// message. If it fails it prints why on stderr (inherited) and exits non-zero without sending.
// Unmounting is `fusermount3 -u -q -z -- MOUNTPOINT`.
#pragma once

#include <string>

#include "transport/fuse_dev/unique_fd.hpp"

namespace sandfs::fuse_dev {

// Runs fusermount3 and returns the /dev/fuse fd it mounted. Throws MountError.
UniqueFd fusermount_mount(const std::string& program, const std::string& options,
                          const std::string& mountpoint);

// Runs `program -u -q -z -- mountpoint`; returns 0 or an errno-like code (EIO when the helper
// failed, with its message on stderr).
int fusermount_unmount(const std::string& program, const std::string& mountpoint);

// Receives one fd sent with SCM_RIGHTS on `socket`. Returns the fd (close-on-exec), or -1 with
// errno set (0 bytes received = the peer closed without sending: errno ECONNRESET).
int receive_fd(int socket);

}  // namespace sandfs::fuse_dev
