#include "backends/passthrough/inode_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <functional>

#include "backends/passthrough/confinement.hpp"
#include "core/io/ring.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::passthrough {

namespace {

constexpr unsigned ino_bits = 48;
constexpr uint64_t ino_limit = uint64_t{1} << ino_bits;
constexpr uint32_t max_mounts = (1u << (63 - ino_bits)) - 1;  // bit 63 marks overflow ids
constexpr uint64_t overflow_bit = uint64_t{1} << 63;
// Deeper than any real tree we serve; bounds a walk over aliases gone stale in a loop.
constexpr int max_walk_depth = 4096;
// A re-walk opens at most this much path per openat2 (PATH_MAX with room to spare).
constexpr size_t walk_chunk = 3500;

uint64_t dev_of(const struct statx& stx) {
  return makedev(stx.stx_dev_major, stx.stx_dev_minor);
}

}  // namespace

HostId host_id_of(const struct statx& stx) {
  return HostId{dev_of(stx), stx.stx_ino, stx.stx_mnt_id};
}

uint64_t btime_of(const struct statx& stx) {
  if ((stx.stx_mask & STATX_BTIME) == 0) return 0;
  return static_cast<uint64_t>(stx.stx_btime.tv_sec) * 1'000'000'000u + stx.stx_btime.tv_nsec;
}

Timespec ctime_of(const struct statx& stx) {
  return Timespec{stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
}

// ---- FdCache ----

FdCache::FdCache(size_t capacity) {
  capacity = std::max<size_t>(capacity, 1);
  const size_t count = std::clamp<size_t>(capacity / 64, 1, 16);
  shards_ = std::vector<Shard>(count);
  for (Shard& s : shards_)
    s.capacity = std::max<size_t>(capacity / count, 1);
}

std::vector<std::shared_ptr<Inode>> FdCache::insert(const std::shared_ptr<Inode>& n) {
  std::vector<std::shared_ptr<Inode>> victims;
  Shard& s = shard(*n);
  std::lock_guard lock(s.mu);
  if (n->in_lru_) {
    s.lru.splice(s.lru.begin(), s.lru, n->lru_pos_);
    return victims;
  }
  s.lru.push_front(n);
  n->lru_pos_ = s.lru.begin();
  n->in_lru_ = true;
  while (s.lru.size() > s.capacity && s.lru.back() != n) {
    std::shared_ptr<Inode> v = std::move(s.lru.back());
    s.lru.pop_back();
    v->in_lru_ = false;
    victims.push_back(std::move(v));
  }
  return victims;
}

void FdCache::touch(Inode& n) {
  Shard& s = shard(n);
  std::lock_guard lock(s.mu);
  if (n.in_lru_) s.lru.splice(s.lru.begin(), s.lru, n.lru_pos_);
}

void FdCache::remove(Inode& n) {
  std::shared_ptr<Inode> keep;  // released after the shard lock
  Shard& s = shard(n);
  std::lock_guard lock(s.mu);
  if (!n.in_lru_) return;
  keep = std::move(*n.lru_pos_);
  s.lru.erase(n.lru_pos_);
  n.in_lru_ = false;
}

void FdCache::drop_fds(const std::vector<std::shared_ptr<Inode>>& victims) {
  for (const std::shared_ptr<Inode>& v : victims) {
    SharedFd dropped;  // closed after the entry lock
    std::lock_guard lock(v->mu);
    // Popped from the cache, so nobody re-added it: only a pin can have happened meanwhile.
    if (!v->pinned) dropped = std::move(v->fd);
  }
}

size_t FdCache::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.lru.size();
  }
  return n;
}

// ---- InodeStore ----

size_t InodeStore::AliasHash::hash(InodeId parent, std::string_view name) {
  return std::hash<std::string_view>{}(name) ^ (parent * 0x9E3779B97F4A7C15ull);
}

size_t InodeStore::HostIdHash::operator()(const HostId& h) const {
  return std::hash<uint64_t>{}(h.ino * 31 + h.dev) ^ (h.mnt_id * 0x9E3779B97F4A7C15ull);
}

InodeStore::InodeStore(SharedFd root_fd, const struct statx& root_stx, size_t max_cached_fds)
    : fds_(max_cached_fds) {
  mounts_.emplace_back(dev_of(root_stx), root_stx.stx_mnt_id);
  root_host_ino_ = root_stx.stx_ino;
  root_ = std::make_shared<Inode>(fuse::root_id, next_generation_++, host_id_of(root_stx), S_IFDIR,
                                  btime_of(root_stx), 0);
  root_->fd = std::move(root_fd);
  root_->pinned = true;
  root_->lookup_refs_ = 1;
  shard(fuse::root_id).map.emplace(fuse::root_id, root_);
}

InodeStore::~InodeStore() = default;

uint32_t InodeStore::mount_index(uint64_t dev, uint64_t mnt_id) {
  {
    std::shared_lock lock(mounts_mu_);
    for (size_t i = 0; i < mounts_.size(); ++i)
      if (mounts_[i].first == dev && mounts_[i].second == mnt_id) return static_cast<uint32_t>(i);
  }
  std::unique_lock lock(mounts_mu_);
  for (size_t i = 0; i < mounts_.size(); ++i)
    if (mounts_[i].first == dev && mounts_[i].second == mnt_id) return static_cast<uint32_t>(i);
  if (mounts_.size() >= max_mounts) return no_index;
  mounts_.emplace_back(dev, mnt_id);
  return static_cast<uint32_t>(mounts_.size() - 1);
}

InodeId InodeStore::id_for(const struct statx& stx) {
  const uint32_t index = mount_index(dev_of(stx), stx.stx_mnt_id);
  if (index == 0 && stx.stx_ino == root_host_ino_) return fuse::root_id;
  if (index != no_index && stx.stx_ino < ino_limit && !(index == 0 && stx.stx_ino <= 1)) {
    return (uint64_t{index} << ino_bits) | stx.stx_ino;
  }
  std::lock_guard lock(overflow_mu_);
  auto [it, added] = overflow_ids_.try_emplace(host_id_of(stx), 0);
  if (added) it->second = overflow_bit | next_overflow_++;
  return it->second;
}

InodeId InodeStore::peek_id(const Inode& dir, uint64_t ino) const {
  const uint32_t index = dir.mount_index;
  if (index == 0 && ino == root_host_ino_) return fuse::root_id;
  if (index != no_index && ino < ino_limit && !(index == 0 && ino <= 1)) {
    return (uint64_t{index} << ino_bits) | ino;
  }
  std::lock_guard lock(overflow_mu_);
  auto it = overflow_ids_.find(HostId{dir.host.dev, ino, dir.host.mnt_id});
  return it == overflow_ids_.end() ? 0 : it->second;
}

bool InodeStore::same_object(const Inode& n, const struct statx& stx, InodeId id) {
  if (n.id != id || n.host_type != (stx.stx_mode & S_IFMT)) return false;
  const uint64_t b = btime_of(stx);
  return n.btime == 0 || b == 0 || n.btime == b;
}

std::shared_ptr<Inode> InodeStore::find(InodeId id) const {
  const Shard& s = shard(id);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(id);
  return it == s.map.end() ? nullptr : it->second;
}

std::shared_ptr<Inode> InodeStore::acquire(const struct statx& stx, const SharedFd& fd,
                                           const std::shared_ptr<Inode>& parent,
                                           std::string_view name, const RecordCache* record,
                                           uint64_t refs) {
  const InodeId id = id_for(stx);
  std::shared_ptr<Inode> n;
  std::shared_ptr<Inode> replaced;
  bool fresh = false;
  {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it != s.map.end() && (id == fuse::root_id || same_object(*it->second, stx, id))) {
      n = it->second;
      n->lookup_refs_ += refs;
    } else {
      uint64_t carried = 0;
      if (it != s.map.end()) {
        replaced = it->second;
        carried = replaced->lookup_refs_;
        replaced->lookup_refs_ = 0;
      }
      const uint32_t index = mount_index(dev_of(stx), stx.stx_mnt_id);
      n = std::make_shared<Inode>(id, next_generation_.fetch_add(1, std::memory_order_relaxed),
                                  host_id_of(stx), stx.stx_mode & S_IFMT, btime_of(stx), index);
      n->size.store(stx.stx_size, std::memory_order_relaxed);
      n->lookup_refs_ = carried + refs;
      s.map.insert_or_assign(id, n);
      fresh = true;
    }
  }
  if (replaced) {
    {
      std::lock_guard lock(replaced->mu);
      replaced->evicted = true;
    }
    retire(replaced);
  }
  if (parent && n != root_) add_alias(n, parent, name);
  if (record != nullptr) {
    std::lock_guard lock(n->mu);
    n->record = *record;
  }
  if (fd && n != root_) offer_fd(n, fd);
  (void)fresh;
  return n;
}

void InodeStore::forget(InodeId id, uint64_t count) {
  if (id == fuse::root_id) return;
  std::shared_ptr<Inode> gone;
  {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it == s.map.end()) return;
    Inode& n = *it->second;
    n.lookup_refs_ = n.lookup_refs_ > count ? n.lookup_refs_ - count : 0;
    if (n.lookup_refs_ != 0) return;
    gone = std::move(it->second);
    s.map.erase(it);
    std::lock_guard inode_lock(gone->mu);
    gone->evicted = true;
  }
  retire(gone);
}

void InodeStore::retire(const std::shared_ptr<Inode>& n) {
  fds_.remove(*n);
  std::vector<std::pair<InodeId, std::string>> names;
  SharedFd dropped;
  {
    std::lock_guard lock(n->mu);
    for (const Alias& a : n->aliases)
      names.emplace_back(a.parent->id, a.name);
    dropped = std::move(n->fd);
    n->pinned = false;
  }
  for (const auto& [parent, name] : names)
    unindex_alias(parent, name, n.get());
}

size_t InodeStore::size() const {
  size_t total = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    total += s.map.size();
  }
  return total;
}

uint64_t InodeStore::lookup_refs(InodeId id) const {
  const Shard& s = shard(id);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(id);
  return it == s.map.end() ? 0 : it->second->lookup_refs_;
}

// ---- aliases ----

std::shared_ptr<Inode> InodeStore::find_alias(InodeId parent, std::string_view name) const {
  const AliasShard& s = alias_shard(parent, name);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(AliasView{parent, name});
  return it == s.map.end() ? nullptr : it->second.lock();
}

void InodeStore::index_alias(InodeId parent, std::string_view name,
                             const std::shared_ptr<Inode>& child) {
  std::shared_ptr<Inode> previous;
  {
    AliasShard& s = alias_shard(parent, name);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(AliasView{parent, name});
    if (it == s.map.end()) {
      s.map.emplace(AliasKey{parent, std::string(name)}, child);
      return;
    }
    previous = it->second.lock();
    it->second = child;
  }
  // The name now leads elsewhere (changed behind our back): the previous object loses it.
  if (previous && previous != child) {
    std::lock_guard lock(previous->mu);
    std::erase_if(previous->aliases,
                  [&](const Alias& a) { return a.parent->id == parent && a.name == name; });
  }
}

void InodeStore::unindex_alias(InodeId parent, std::string_view name, const Inode* child) {
  AliasShard& s = alias_shard(parent, name);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(AliasView{parent, name});
  if (it == s.map.end()) return;
  std::shared_ptr<Inode> current = it->second.lock();
  if (!current || current.get() == child) s.map.erase(it);
}

void InodeStore::add_alias(const std::shared_ptr<Inode>& child,
                           const std::shared_ptr<Inode>& parent, std::string_view name) {
  if (child == root_ || !parent) return;
  {
    std::lock_guard lock(child->mu);
    bool found = false;
    for (Alias& a : child->aliases) {
      if (a.parent->id == parent->id && a.name == name) {
        a.parent = parent;  // the current entry for that id
        found = true;
        break;
      }
    }
    if (!found && child->aliases.size() < max_aliases) {
      child->aliases.push_back(Alias{parent, std::string(name)});
    }
  }
  index_alias(parent->id, name, child);
}

namespace {

// Drops (parent, name) from n's aliases; when none is left, pins n's fd (offering `fd` if n has
// none). The caller holds n.mu.
bool drop_alias_locked(Inode& n, InodeId parent, std::string_view name) {
  std::erase_if(n.aliases,
                [&](const Alias& a) { return a.parent->id == parent && a.name == name; });
  return n.aliases.empty();
}

}  // namespace

std::shared_ptr<Inode> InodeStore::remove_alias(InodeId parent, std::string_view name) {
  std::shared_ptr<Inode> child;
  {
    AliasShard& s = alias_shard(parent, name);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(AliasView{parent, name});
    if (it == s.map.end()) return nullptr;
    child = it->second.lock();
    s.map.erase(it);
  }
  if (!child) return nullptr;
  {
    std::lock_guard lock(child->mu);
    if (drop_alias_locked(*child, parent, name) && !child->evicted) {
      child->pinned = true;
      fds_.remove(*child);
    }
  }
  return child;
}

void InodeStore::rename_alias(const std::shared_ptr<Inode>& p1, std::string_view n1,
                              const std::shared_ptr<Inode>& p2, std::string_view n2,
                              bool exchange) {
  std::shared_ptr<Inode> a = find_alias(p1->id, n1);
  std::shared_ptr<Inode> b = find_alias(p2->id, n2);
  if (a && a == b) return;  // two names of one object: rename changes nothing, exchange neither

  // Rewrites the alias (from_parent, from) of `n` as (to_parent, to).
  auto move = [&](const std::shared_ptr<Inode>& n, InodeId from_parent, std::string_view from,
                  const std::shared_ptr<Inode>& to_parent, std::string_view to) {
    std::lock_guard lock(n->mu);
    for (Alias& al : n->aliases) {
      if (al.parent->id == from_parent && al.name == from) {
        al.parent = to_parent;
        al.name = std::string(to);
        return;
      }
    }
    if (n->aliases.size() < max_aliases) n->aliases.push_back(Alias{to_parent, std::string(to)});
  };

  if (exchange) {
    if (a) move(a, p1->id, n1, p2, n2);
    if (b) move(b, p2->id, n2, p1, n1);
    unindex_alias(p1->id, n1, a.get());
    unindex_alias(p2->id, n2, b.get());
    if (b) index_alias(p1->id, n1, b);
    if (a) index_alias(p2->id, n2, a);
    return;
  }
  if (b) remove_alias(p2->id, n2);
  if (a) {
    move(a, p1->id, n1, p2, n2);
    unindex_alias(p1->id, n1, a.get());
    index_alias(p2->id, n2, a);
  }
}

// ---- fds ----

SharedFd InodeStore::cached_fd(Inode& n) {
  std::lock_guard lock(n.mu);
  if (n.fd && !n.pinned) fds_.touch(n);
  return n.fd;
}

void InodeStore::offer_fd(const std::shared_ptr<Inode>& n, const SharedFd& fd) {
  if (!fd) return;
  std::vector<std::shared_ptr<Inode>> victims;
  {
    std::lock_guard lock(n->mu);
    if (n->evicted || n->fd) return;
    n->fd = fd;
    if (!n->pinned) victims = fds_.insert(n);
  }
  FdCache::drop_fds(victims);
}

void InodeStore::pin_fd(const std::shared_ptr<Inode>& n, const SharedFd& fd) {
  std::lock_guard lock(n->mu);
  if (n->evicted) return;
  if (!n->fd) n->fd = fd;
  n->pinned = true;
  fds_.remove(*n);
}

Task<Result<SharedFd>> InodeStore::fd_of(const std::shared_ptr<Inode>& n) {
  if (SharedFd fd = cached_fd(*n)) co_return fd;
  size_t alias_count = 0;
  {
    std::lock_guard lock(n->mu);
    alias_count = n->aliases.size();
  }
  int error = ESTALE;
  for (size_t i = 0; i < alias_count; ++i) {
    // The names from the nearest ancestor that has an fd down to n, deepest first.
    std::vector<std::string> names;
    SharedFd base;
    std::shared_ptr<Inode> cur;
    {
      std::lock_guard lock(n->mu);
      if (n->fd) co_return n->fd;  // cached meanwhile
      if (i >= n->aliases.size()) break;
      names.push_back(n->aliases[i].name);
      cur = n->aliases[i].parent;
    }
    bool broken = false;
    for (int depth = 0; !base; ++depth) {
      if (depth > max_walk_depth) {
        broken = true;
        break;
      }
      std::shared_ptr<Inode> next;
      {
        std::lock_guard lock(cur->mu);
        if (cur->fd) {
          base = cur->fd;
          if (!cur->pinned) fds_.touch(*cur);
          break;
        }
        if (cur->aliases.empty()) {
          broken = true;
          break;
        }
        names.push_back(cur->aliases.front().name);
        next = cur->aliases.front().parent;
      }
      cur = std::move(next);
    }
    if (broken) continue;

    // Open the path below `base`, a chunk at a time if it is long.
    Result<SharedFd> opened = Errno{ESTALE};
    while (!names.empty()) {
      std::string path;
      while (!names.empty() && (path.empty() || path.size() + names.back().size() < walk_chunk)) {
        if (!path.empty()) path += '/';
        path += names.back();
        names.pop_back();
      }
      const uint64_t flags = names.empty() ? O_PATH : O_PATH | O_DIRECTORY;
      opened = co_await open_beneath(base->get(), path.c_str(), flags);
      if (!opened) break;
      base = *opened;
    }
    if (!opened) {
      const int e = opened.error();
      if (e != ENOENT && e != ENOTDIR && e != ELOOP && e != EXDEV && e != ESTALE) error = e;
      continue;
    }
    Result<struct statx> stx = co_await io::Ring::current().statx(
        (*opened)->get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
        STATX_BASIC_STATS | STATX_MNT_ID | STATX_BTIME);
    if (!stx) {
      error = stx.error();
      continue;
    }
    if (!same_object(*n, *stx, id_for(*stx))) continue;
    if (i > 0) {
      // This name works where the first did not: use it first from now on.
      std::lock_guard lock(n->mu);
      if (i < n->aliases.size()) std::swap(n->aliases[0], n->aliases[i]);
    }
    offer_fd(n, *opened);
    co_return *opened;
  }
  co_return Errno{error};
}

}  // namespace sandfs::passthrough
