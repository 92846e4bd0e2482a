// Policies: what the guest's view of ownership and permissions does to the host.
//
// ## Stat virtualization (where the guest's owner, group, mode, type and rdev come from)
//   strict   (default) the ownership record (ownership_record.hpp). Probed at mount: the mount
//            fails when the host filesystem cannot store user xattrs. A record that cannot be read
//            because xattrs are unsupported is EIO.
//   relaxed  the record where there is one; a host filesystem without user xattrs is served with
//            the host's own ownership (new files and directories are created without a record
//            rather than refused; only mknod of special files, which needs one, is EOPNOTSUPP).
//            Symlinks are real host symlinks.
//   off      the host's own attributes; records are neither read nor written. chown is EPERM,
//            chmod changes the host mode (regular files and directories: the 0777 bits with the
//            owner floor; setuid/setgid/sticky never reach the host), mknod of anything but a
//            regular file is EOPNOTSUPP, symlinks are real host symlinks.
// In strict mode symlinks are regular host files holding the target (so they carry a record
// like everything else, and the host never sees a symlink the guest made).
//
// ## Host permissions (what host mode new and chmod-ed objects get)
//   private  (default) regular files 0600, directories 0700, whatever the guest asks: the host
//            tree stays private to the server's user.
//   mirror   regular files and directories get the guest's 0777 bits, never less than 0600 / 0700
//            (the server must keep access), never setuid/setgid/sticky; kept in step on chmod.
//            FIFOs, devices, sockets and strict-mode symlinks stay 0600.
// off + mirror is refused at start-up: off already puts the guest's bits on the host.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace sandfs::passthrough {

enum class StatVirtualization { strict, relaxed, off };
enum class HostPermissions { private_, mirror };

bool parse_stat_virtualization(std::string_view text, StatVirtualization& out);
std::string_view to_string(StatVirtualization v);
bool parse_host_permissions(std::string_view text, HostPermissions& out);
std::string_view to_string(HostPermissions p);

inline constexpr uint32_t file_floor = 0600;
inline constexpr uint32_t dir_floor = 0700;

struct Policy {
  StatVirtualization virt = StatVirtualization::strict;
  HostPermissions perms = HostPermissions::private_;

  bool records() const { return virt != StatVirtualization::off; }
  bool strict() const { return virt == StatVirtualization::strict; }
  // Guest symlinks become regular host files holding the target.
  bool file_backed_symlinks() const { return virt == StatVirtualization::strict; }
  // Host permission bits follow the guest's (mirror, or off).
  bool host_follows_guest() const {
    return perms == HostPermissions::mirror || virt == StatVirtualization::off;
  }

  // Host mode bits for a new host object that represents a guest object of `guest_type` with
  // permission bits `perm`. Host objects are only ever regular files or directories.
  uint32_t host_create_mode(uint32_t guest_type, uint32_t perm) const {
    if (guest_type == S_IFDIR) return host_follows_guest() ? (perm & 0777) | dir_floor : dir_floor;
    if (guest_type == S_IFREG && host_follows_guest()) return (perm & 0777) | file_floor;
    return file_floor;
  }
  // The host mode a chmod to `perm` should set on a host object of `host_type` that represents
  // `guest_type`, or nothing when the host mode stays as it is.
  std::optional<uint32_t> host_chmod(uint32_t host_type, uint32_t guest_type, uint32_t perm) const {
    if (!host_follows_guest()) return std::nullopt;
    if (host_type == S_IFDIR) return (perm & 0777) | dir_floor;
    if (host_type == S_IFREG && guest_type == S_IFREG) return (perm & 0777) | file_floor;
    if (virt == StatVirtualization::off && host_type != S_IFLNK) return perm & 0777;
    return std::nullopt;
  }
};

// Suid always, sgid only with group-exec (without it, sgid marks mandatory locking, not
// privilege): what HANDLE_KILLPRIV_V2 clears on write, truncate and chown.
inline uint32_t kill_suidgid_bits(uint32_t mode) {
  mode &= ~static_cast<uint32_t>(S_ISUID);
  if ((mode & S_IXGRP) != 0) mode &= ~static_cast<uint32_t>(S_ISGID);
  return mode;
}
inline bool has_suidgid(uint32_t mode) {
  return kill_suidgid_bits(mode) != mode;
}

}  // namespace sandfs::passthrough
