// Extended attributes: passed through to the host object, except the ownership record, which the
// guest can neither read, write, remove nor see listed (EACCES; filtered out of lists and of the
// sizes of lists), and the system.* namespace (EOPNOTSUPP): without FUSE_POSIX_ACL the kernel
// hands ACLs to us as plain xattrs, and applying them to the host would change who may access the
// host files, which is the host permission policy's business, not the guest's.
//
// All four reach the object through its O_PATH fd's magic link (host_calls.hpp), so nothing is
// opened: a host FIFO or device is never opened just to read its xattrs.
#include <sys/xattr.h>

#include <cstring>
#include <vector>

#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

namespace {

constexpr size_t xattr_value_max = 64 * 1024;
constexpr size_t xattr_list_max = 64 * 1024;

bool refused_namespace(std::string_view name) {
  return name.starts_with("system.");
}

}  // namespace

Task<Status> PassthroughFs::setxattr(const RequestContext&, InodeId ino, std::string_view name,
                                     std::span<const char> value, uint32_t flags) {
  if ((flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) != 0) co_return Errno{EINVAL};
  if (name.empty() || name.size() > 255) co_return Errno{ERANGE};
  if (value.size() > xattr_value_max) co_return Errno{E2BIG};
  if (name == config_.stat_xattr) co_return Errno{EACCES};
  if (refused_namespace(name)) co_return Errno{EOPNOTSUPP};
  if (Status w = check_writable(); !w) co_return w;
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  const std::string key(name);
  const char* proc_name = (*fd)->proc_name();
  Result<long> r = co_await io::Ring::current().run_blocking([&]() -> long {
    return host::setxattrat(proc_fd_dir_, proc_name, 0, key.c_str(), value.data(), value.size(),
                            static_cast<int>(flags));
  });
  if (!r) co_return Errno{r.error()};
  // A capability set through us must be cleared by the next unprivileged write.
  if (name == "security.capability") (*n)->caps_checked.store(false);
  co_return ok_status();
}

Task<Result<XattrReply>> PassthroughFs::getxattr(const RequestContext&, InodeId ino,
                                                 std::string_view name, uint32_t size) {
  if (name.empty() || name.size() > 255) co_return Errno{ERANGE};
  if (name == config_.stat_xattr) co_return Errno{EACCES};
  if (refused_namespace(name)) co_return Errno{EOPNOTSUPP};
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  const std::string key(name);
  const char* proc_name = (*fd)->proc_name();
  XattrReply reply;
  reply.data.resize(std::min<size_t>(size, xattr_value_max));
  Result<long> r = co_await io::Ring::current().run_blocking([&]() -> long {
    return host::getxattrat(proc_fd_dir_, proc_name, 0, key.c_str(),
                            reply.data.empty() ? nullptr : reply.data.data(), reply.data.size());
  });
  if (!r) co_return Errno{r.error()};
  reply.size = static_cast<uint32_t>(*r);
  reply.data.resize(size == 0 ? 0 : static_cast<size_t>(*r));
  co_return reply;
}

Task<Result<XattrReply>> PassthroughFs::listxattr(const RequestContext&, InodeId ino,
                                                  uint32_t size) {
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  const char* proc_name = (*fd)->proc_name();
  // Always the whole list, whatever the guest's size: the record's name must not show, not even
  // as a few bytes of a size, nor make a list that fits without it fail with ERANGE.
  std::vector<char> list;
  Result<long> r = co_await io::Ring::current().run_blocking([&]() -> long {
    for (int attempt = 0; attempt < 4; ++attempt) {
      long need = host::listxattrat(proc_fd_dir_, proc_name, 0, nullptr, 0);
      if (need <= 0) return need;
      list.resize(static_cast<size_t>(need));
      long got = host::listxattrat(proc_fd_dir_, proc_name, 0, list.data(), list.size());
      if (got != -ERANGE) return got;  // grew in between: ask again
    }
    return -ERANGE;
  });
  if (!r) co_return Errno{r.error()};
  list.resize(static_cast<size_t>(std::max<long>(*r, 0)));

  XattrReply reply;
  size_t pos = 0;
  while (pos < list.size()) {
    const size_t len = strnlen(list.data() + pos, list.size() - pos);
    std::string_view entry(list.data() + pos, len);
    if (!entry.empty() && entry != config_.stat_xattr) {
      reply.data.insert(reply.data.end(), entry.begin(), entry.end());
      reply.data.push_back('\0');
    }
    pos += len + 1;
  }
  if (reply.data.size() > xattr_list_max) co_return Errno{E2BIG};
  reply.size = static_cast<uint32_t>(reply.data.size());
  if (size == 0) {
    reply.data.clear();
  } else if (size < reply.size) {
    co_return Errno{ERANGE};
  }
  co_return reply;
}

Task<Status> PassthroughFs::removexattr(const RequestContext&, InodeId ino, std::string_view name) {
  if (name.empty() || name.size() > 255) co_return Errno{ERANGE};
  if (name == config_.stat_xattr) co_return Errno{EACCES};
  if (refused_namespace(name)) co_return Errno{EOPNOTSUPP};
  if (Status w = check_writable(); !w) co_return w;
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  const std::string key(name);
  const char* proc_name = (*fd)->proc_name();
  Result<long> r = co_await io::Ring::current().run_blocking(
      [&]() -> long { return host::removexattrat(proc_fd_dir_, proc_name, 0, key.c_str()); });
  if (!r) co_return Errno{r.error()};
  co_return ok_status();
}

}  // namespace sandfs::passthrough
