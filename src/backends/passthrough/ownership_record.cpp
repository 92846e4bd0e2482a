#include "backends/passthrough/ownership_record.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sandfs::passthrough {

namespace {

void put_u32(char* p, uint32_t v) {
  std::memcpy(p, &v, sizeof v);
}
uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool valid_type(uint32_t type) {
  switch (type) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::array<char, record_size> encode_record(const Record& r) {
  std::array<char, record_size> out{};
  out[0] = static_cast<char>(record_version);
  put_u32(out.data() + 4, r.uid);
  put_u32(out.data() + 8, r.gid);
  put_u32(out.data() + 12, r.mode);
  put_u32(out.data() + 16, r.rdev);
  return out;
}

Result<Record> decode_record(std::span<const char> bytes) {
  if (bytes.size() != record_size) return Errno{EIO};
  if (static_cast<uint8_t>(bytes[0]) != record_version) return Errno{EIO};
  if (bytes[1] != 0 || bytes[2] != 0 || bytes[3] != 0) return Errno{EIO};
  Record r;
  r.uid = get_u32(bytes.data() + 4);
  r.gid = get_u32(bytes.data() + 8);
  r.mode = get_u32(bytes.data() + 12);
  r.rdev = get_u32(bytes.data() + 16);
  if ((r.mode & ~(S_IFMT | 07777u)) != 0 || !valid_type(r.type())) return Errno{EIO};
  return r;
}

bool record_fits(const Record& r, uint32_t host_type) {
  if (host_type == S_IFDIR) return r.type() == S_IFDIR;
  if (host_type == S_IFREG) return r.type() != S_IFDIR;
  return false;
}

Result<std::optional<Record>> classify_record_read(long n, std::span<const char> buffer,
                                                   bool strict) {
  if (n >= 0) {
    Result<Record> r = decode_record(buffer.first(std::min<size_t>(n, buffer.size())));
    if (!r) return Errno{r.error()};
    return std::optional<Record>(*r);
  }
  const int err = static_cast<int>(-n);
  if (err == ENODATA) return std::optional<Record>();
  if (err == EOPNOTSUPP) {
    if (strict) return Errno{EIO};
    return std::optional<Record>();
  }
  // A value longer than a record (ERANGE) is corrupt like any other malformed one.
  if (err == ERANGE) return Errno{EIO};
  return Errno{err};
}

}  // namespace sandfs::passthrough
