#include "transport/fuse_dev/fuse_mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/log.hpp"
#include "transport/fuse_dev/fusermount.hpp"

namespace sandfs::fuse_dev {

namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

// Option values end up in a comma-separated list the kernel splits naively.
void check_option_value(const char* what, const std::string& value) {
  if (value.empty() || value.find_first_of(",\\\n") != std::string::npos) {
    throw MountError(EINVAL, std::string(what) + " '" + value +
                                 "' must be non-empty and contain no ',', '\\' or newline");
  }
}

}  // namespace

std::string check_mountpoint(const std::string& path) {
  if (path.empty()) throw MountError(EINVAL, "no mountpoint given");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    switch (e) {
      case ENOENT:
        throw MountError(e, "mountpoint " + path + " does not exist");
      case ENOTDIR:
        throw MountError(e, "mountpoint " + path + ": a parent is not a directory");
      case ENOTCONN:
        throw MountError(e, "mountpoint " + path +
                                " is a dead FUSE mount (its server exited); remove it with "
                                "'umount -l " +
                                path + "' or 'fusermount3 -u -z " + path + "'");
      case EACCES:
        throw MountError(e, "mountpoint " + path + " is not accessible: permission denied");
      default:
        throw MountError(e, "mountpoint " + path + ": " + errno_text(e));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    throw MountError(ENOTDIR, "mountpoint " + path + " is not a directory");
  }
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    const int e = errno;
    throw MountError(e, "mountpoint " + path + ": " + errno_text(e));
  }
  return resolved;
}

std::string kernel_mount_data(const MountConfig& config, int fd, uid_t uid, gid_t gid) {
  // rootmode is octal: 040000 is S_IFDIR. user_id/group_id name the mount's owner, the only
  // user allowed in without allow_other.
  std::string data = "fd=" + std::to_string(fd) + ",rootmode=40000,user_id=" + std::to_string(uid) +
                     ",group_id=" + std::to_string(gid);
  if (config.default_permissions) data += ",default_permissions";
  if (config.allow_other) data += ",allow_other";
  return data;
}

std::string fusermount_options(const MountConfig& config, bool allow_other) {
  std::string opts = "fsname=" + config.fsname + ",subtype=" + config.subtype;
  if (config.default_permissions) opts += ",default_permissions";
  if (allow_other) opts += ",allow_other";
  // fusermount3 adds nosuid,nodev for non-root users on its own; saying so keeps it explicit.
  if (config.nosuid) opts += ",nosuid";
  if (config.nodev) opts += ",nodev";
  if (config.noexec) opts += ",noexec";
  if (config.readonly) opts += ",ro";
  return opts;
}

bool fuse_conf_allows_other(std::string_view contents) {
  while (!contents.empty()) {
    const size_t eol = contents.find('\n');
    std::string_view line = contents.substr(0, eol);
    contents = eol == std::string_view::npos ? std::string_view{} : contents.substr(eol + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t'))
      line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (line == "user_allow_other") return true;
  }
  return false;
}

FuseMount FuseMount::mount(const MountConfig& config) {
  check_option_value("fsname", config.fsname);
  check_option_value("subtype", config.subtype);
  FuseMount m;
  m.mountpoint_ = check_mountpoint(config.mountpoint);
  m.fusermount_program_ = config.fusermount_program;

  bool use_kernel = config.method == MountConfig::Method::kernel ||
                    (config.method == MountConfig::Method::automatic && ::geteuid() == 0);
  if (use_kernel) {
    UniqueFd fd(::open(config.device_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
      const int e = errno;
      throw MountError(e, "cannot open " + config.device_path + ": " + errno_text(e) +
                              (e == ENOENT ? " (is the fuse module loaded?)" : ""));
    }
    const std::string data = kernel_mount_data(config, fd.get(), ::getuid(), ::getgid());
    const std::string type = "fuse." + config.subtype;
    unsigned long flags = 0;
    if (config.nosuid) flags |= MS_NOSUID;
    if (config.nodev) flags |= MS_NODEV;
    if (config.noexec) flags |= MS_NOEXEC;
    if (config.readonly) flags |= MS_RDONLY;
    if (::mount(config.fsname.c_str(), m.mountpoint_.c_str(), type.c_str(), flags, data.c_str()) ==
        0) {
      m.fd_ = std::move(fd);
      m.via_ = Via::kernel;
      m.allow_other_ = config.allow_other;
      m.mounted_.store(true);
      SANDFS_LOG(debug) << "mount(2) " << type << " on " << m.mountpoint_ << " with " << data;
      return m;
    }
    const int e = errno;
    if (e != EPERM || config.method == MountConfig::Method::kernel) {
      throw MountError(e, "mount(2) of " + m.mountpoint_ + " failed: " + errno_text(e));
    }
    SANDFS_LOG(info) << "mount(2) not permitted; trying " << config.fusermount_program;
  }

  bool allow_other = config.allow_other;
  if (allow_other && ::getuid() != 0) {
    std::string conf;
    if (!read_file(config.fuse_conf_path, conf) || !fuse_conf_allows_other(conf)) {
      SANDFS_LOG(warn) << "not using allow_other: " << config.fuse_conf_path
                       << " lacks 'user_allow_other', so only uid " << ::getuid()
                       << " can access the mount";
      allow_other = false;
    }
  }
  m.fd_ = fusermount_mount(config.fusermount_program, fusermount_options(config, allow_other),
                           m.mountpoint_);
  m.via_ = Via::fusermount;
  m.allow_other_ = allow_other;
  m.mounted_.store(true);
  return m;
}

FuseMount::FuseMount(FuseMount&& other) noexcept
    : fd_(std::move(other.fd_)),
      mountpoint_(std::move(other.mountpoint_)),
      fusermount_program_(std::move(other.fusermount_program_)),
      via_(other.via_),
      allow_other_(other.allow_other_),
      mounted_(other.mounted_.exchange(false)) {}

FuseMount& FuseMount::operator=(FuseMount&& other) noexcept {
  if (this != &other) {
    unmount();
    fd_ = std::move(other.fd_);
    mountpoint_ = std::move(other.mountpoint_);
    fusermount_program_ = std::move(other.fusermount_program_);
    via_ = other.via_;
    allow_other_ = other.allow_other_;
    mounted_.store(other.mounted_.exchange(false));
  }
  return *this;
}

FuseMount::~FuseMount() {
  unmount();
}

int FuseMount::unmount() {
  if (!mounted_.exchange(false)) return 0;
  if (via_ == Via::kernel || ::geteuid() == 0) {
    if (::umount2(mountpoint_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) return 0;
    const int e = errno;
    if (e == EINVAL) return 0;  // not a mount point (any more)
    if (e != EPERM || via_ == Via::kernel) {
      SANDFS_LOG(error) << "umount2(" << mountpoint_ << ") failed: " << errno_text(e);
      return e;
    }
  }
  return fusermount_unmount(fusermount_program_, mountpoint_);
}

}  // namespace sandfs::fuse_dev
