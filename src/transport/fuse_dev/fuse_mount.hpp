// Mounting and unmounting a /dev/fuse filesystem without libfuse.
//
// As root the mount is a plain mount(2) of type "fuse.<subtype>" whose data names an open
// /dev/fuse fd ("fd=N,rootmode=40000,user_id=U,group_id=G,..."). Without the privilege (not
// root, or mount(2) answers EPERM, e.g. in a user namespace) the setuid helper fusermount3 mounts
// for us and hands the /dev/fuse fd back over a Unix socket (see fusermount.hpp).
//
// Mounting happens at start-up, so failures throw MountError with a message a person can act on
// ("mountpoint /x does not exist", "... is not a directory", "fusermount3 failed: ...").
#pragma once

#include <sys/types.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <string_view>

#include "transport/fuse_dev/unique_fd.hpp"

namespace sandfs::fuse_dev {

class MountError : public std::runtime_error {
 public:
  MountError(int error, const std::string& message) : std::runtime_error(message), error_(error) {}
  // The errno behind the failure (EINVAL for a bad configuration).
  int error() const { return error_; }

 private:
  int error_;
};

struct MountConfig {
  enum class Method {
    automatic,   // mount(2) when root, fusermount3 otherwise or when mount(2) says EPERM
    kernel,      // mount(2) only
    fusermount,  // fusermount3 only
  };

  std::string mountpoint;
  std::string fsname = "sandfs";    // the "device" column of /proc/mounts
  std::string subtype = "sandfs";   // the type shows as fuse.<subtype>
  bool allow_other = true;          // other users may access the mount
  bool default_permissions = true;  // the kernel checks mode bits, not the server
  bool nosuid = true;
  bool nodev = true;
  bool noexec = false;
  bool readonly = false;  // MS_RDONLY: the kernel refuses every write with EROFS before asking us
  Method method = Method::automatic;

  // Where things live; tests point these at fakes.
  std::string fusermount_program = "fusermount3";  // searched in PATH unless it has a '/'
  std::string fuse_conf_path = "/etc/fuse.conf";
  std::string device_path = "/dev/fuse";
};

// A live mount. Owns the /dev/fuse fd until take_fd() hands it to the server, and unmounts
// (lazily) on destruction unless unmount() already ran or forget() said the kernel did it.
class FuseMount {
 public:
  enum class Via { kernel, fusermount };

  // Mounts `config.mountpoint`. Throws MountError.
  static FuseMount mount(const MountConfig& config);

  FuseMount() = default;
  FuseMount(FuseMount&& other) noexcept;
  FuseMount& operator=(FuseMount&& other) noexcept;
  ~FuseMount();

  int fd() const { return fd_.get(); }
  // Hands the /dev/fuse fd over; the mount itself stays until unmount().
  UniqueFd take_fd() { return std::move(fd_); }

  // The absolute mountpoint path.
  const std::string& mountpoint() const { return mountpoint_; }
  Via via() const { return via_; }
  // Whether allow_other made it into the mount options (fusermount3 may have had to drop it).
  bool allow_other() const { return allow_other_; }
  bool mounted() const { return mounted_.load(); }

  // Detaches the mount (umount2 MNT_DETACH as root, `fusermount3 -u -z` otherwise). Open files
  // keep the filesystem alive until closed; the server's reads fail with ENODEV once it is gone.
  // Returns 0 or an errno; "not mounted" counts as success. Safe to call from any thread, once.
  int unmount();
  // The kernel already removed the mount (the server saw ENODEV): don't unmount on destruction,
  // since something else may be mounted there by now.
  void forget() { mounted_.store(false); }

 private:
  UniqueFd fd_;
  std::string mountpoint_;
  std::string fusermount_program_;
  Via via_ = Via::kernel;
  bool allow_other_ = false;
  std::atomic<bool> mounted_{false};
};

// ---- building blocks, exposed for tests ----

// Resolves `path` to an absolute path and checks that it is an existing directory. Throws
// MountError naming the problem (missing, not a directory, a dead FUSE mount, ...).
std::string check_mountpoint(const std::string& path);

// The data argument of mount(2) for a fuse mount on /dev/fuse fd `fd`.
std::string kernel_mount_data(const MountConfig& config, int fd, uid_t uid, gid_t gid);

// The -o argument for fusermount3. `allow_other` is the decision after consulting fuse.conf.
std::string fusermount_options(const MountConfig& config, bool allow_other);

// Whether fuse.conf contents contain a `user_allow_other` line.
bool fuse_conf_allows_other(std::string_view contents);

}  // namespace sandfs::fuse_dev
