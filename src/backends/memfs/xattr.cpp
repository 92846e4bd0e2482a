// Extended attributes: opaque names and values in the user., trusted. and security. namespaces
// (any prefix but system.), charged against the capacity (name plus value bytes), so a guest
// cannot grow memory without bound through them.
#include <sys/xattr.h>  // XATTR_CREATE, XATTR_REPLACE

#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

namespace {

bool bad_xattr_name(std::string_view name) {
  return name.empty() || name.size() > xattr_name_max;
}

// "system." names are interpreted by the kernel's filesystems, not stored: MemFs does not offer
// FUSE_POSIX_ACL, so system.posix_acl_access reaches us as a plain setxattr, and storing it would
// silently drop the mode change it means (cp -a sets final modes that way and falls back to chmod
// only on EOPNOTSUPP). Refuse the namespace, as a filesystem without ACL support does.
bool unsupported_namespace(std::string_view name) {
  return name.starts_with("system.");
}

}  // namespace

Task<Status> MemFs::setxattr(const RequestContext&, InodeId ino, std::string_view name,
                             std::span<const char> value, uint32_t flags) {
  if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0) co_return Errno{EINVAL};
  if (bad_xattr_name(name)) co_return Errno{ERANGE};
  if (unsupported_namespace(name)) co_return Errno{EOPNOTSUPP};
  if (value.size() > xattr_value_max) co_return Errno{E2BIG};
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};

  std::unique_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  auto it = n->xattrs.find(name);
  const bool exists = it != n->xattrs.end();
  if ((flags & XATTR_CREATE) != 0 && exists) co_return Errno{EEXIST};
  if ((flags & XATTR_REPLACE) != 0 && !exists) co_return Errno{ENODATA};

  const uint64_t old_cost = exists ? name.size() + it->second.size() : 0;
  const uint64_t new_cost = name.size() + value.size();
  const uint64_t grow = new_cost > old_cost ? new_cost - old_cost : 0;
  if (!bytes_.try_reserve(grow)) co_return Errno{ENOSPC};
  Reservation reserved(bytes_, grow);
  std::vector<char> copy(value.begin(), value.end());
  if (exists) {
    it->second.swap(copy);
  } else {
    n->xattrs.emplace(std::string(name), std::move(copy));
  }
  reserved.commit();
  if (old_cost > new_cost) bytes_.release(old_cost - new_cost);
  n->xattr_bytes = n->xattr_bytes - old_cost + new_cost;
  n->ctime = now();
  co_return ok_status();
}

Task<Result<XattrReply>> MemFs::getxattr(const RequestContext&, InodeId ino, std::string_view name,
                                         uint32_t size) {
  if (bad_xattr_name(name)) co_return Errno{ERANGE};
  if (unsupported_namespace(name)) co_return Errno{EOPNOTSUPP};
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};

  std::shared_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  auto it = n->xattrs.find(name);
  if (it == n->xattrs.end()) co_return Errno{ENODATA};
  XattrReply reply;
  reply.size = static_cast<uint32_t>(it->second.size());
  if (size == 0) co_return reply;
  if (size < reply.size) co_return Errno{ERANGE};
  reply.data = it->second;
  co_return reply;
}

Task<Result<XattrReply>> MemFs::listxattr(const RequestContext&, InodeId ino, uint32_t size) {
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};

  std::shared_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  uint64_t total = 0;
  for (const auto& attr : n->xattrs)
    total += attr.first.size() + 1;
  XattrReply reply;
  reply.size = static_cast<uint32_t>(total);
  if (size == 0) co_return reply;
  if (size < total) co_return Errno{ERANGE};
  // The map is ordered by byte value, so the list comes out sorted.
  reply.data.reserve(total);
  for (const auto& attr : n->xattrs) {
    reply.data.insert(reply.data.end(), attr.first.begin(), attr.first.end());
    reply.data.push_back('\0');
  }
  co_return reply;
}

Task<Status> MemFs::removexattr(const RequestContext&, InodeId ino, std::string_view name) {
  if (bad_xattr_name(name)) co_return Errno{ERANGE};
  if (unsupported_namespace(name)) co_return Errno{EOPNOTSUPP};
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};

  std::unique_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  auto it = n->xattrs.find(name);
  if (it == n->xattrs.end()) co_return Errno{ENODATA};
  const uint64_t cost = it->first.size() + it->second.size();
  n->xattrs.erase(it);
  n->xattr_bytes -= cost;
  bytes_.release(cost);
  n->ctime = now();
  co_return ok_status();
}

}  // namespace sandfs::memfs
