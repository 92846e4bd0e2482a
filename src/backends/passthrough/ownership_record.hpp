// The ownership record: what the guest sees as an object's owner, group, full mode and device
// number, kept in one xattr of the host object so the server never needs root and never changes
// host ownership.
//
// ## Format (20 bytes, host byte order; the layout the microsandbox runtime writes)
//   [0]      version, 1
//   [1..4)   zero
//   [4..8)   uid
//   [8..12)  gid
//   [12..16) mode: file type bits and permission bits, setuid/setgid/sticky included
//   [16..20) rdev, the guest's encoded dev_t (character and block devices)
// Anything else (shorter, longer, another version, non-zero padding, a type bit pattern that is
// not a file type) is corrupt, and a corrupt record fails closed: the operation answers EIO, it
// never falls back to the host's own attributes.
//
// ## Where it applies
// Regular host files and host directories only. A host directory's record must say S_IFDIR; a
// regular host file's record may say any non-directory type: FIFOs, sockets, devices and (in strict
// mode) symlinks are empty or small regular host files carrying their type here. Host symlinks and
// pre-existing host FIFOs/devices/sockets never have one (Linux refuses user.* xattrs on them).
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "core/result.hpp"

namespace sandfs::passthrough {

inline constexpr size_t record_size = 20;
inline constexpr uint8_t record_version = 1;

struct Record {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0;  // S_IFMT | 07777
  uint32_t rdev = 0;

  uint32_t type() const { return mode & S_IFMT; }
  bool operator==(const Record&) const = default;
};

std::array<char, record_size> encode_record(const Record& r);
// The record in `bytes`, or EIO when they are not exactly one well-formed record.
Result<Record> decode_record(std::span<const char> bytes);
// Whether a record of this type may sit on a host object of `host_type` (see above).
bool record_fits(const Record& r, uint32_t host_type);

// How a raw getxattr of the record ended, turned into "the record", "no record" or an errno.
// `n` is the byte count or -errno; `strict` makes an unsupported xattr namespace an error (EIO)
// instead of "no record".
Result<std::optional<Record>> classify_record_read(long n, std::span<const char> buffer,
                                                   bool strict);

// Size of the buffer to read a record into: one byte more than a record, so a longer value is
// seen as such instead of being cut short.
inline constexpr size_t record_read_buffer = record_size + 1;

}  // namespace sandfs::passthrough
