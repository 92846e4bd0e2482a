// DualFs construction, negotiation and the helpers the operation files share.
#include "backends/dualfs/dualfs.hpp"

#include <sys/stat.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/dualfs/child_listing.hpp"
#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

namespace {

const DualFsConfig& checked(const DualFsConfig& c) {
  if (!c.a || !c.b) throw std::invalid_argument("dualfs: both backends are required");
  if (!c.policy) throw std::invalid_argument("dualfs: a policy is required");
  if (c.copy_chunk == 0) throw std::invalid_argument("dualfs: copy_chunk must be positive");
  return c;
}

}  // namespace

DualFs::DualFs(DualFsConfig config)
    : config_(checked(config)),
      entry_timeout_(cache_timeout(config_.cache)),
      attr_timeout_(cache_timeout(config_.cache)),
      table_(config_.policy->lookup_order().contains(Side::b)),
      whiteouts_(*config_.a, config_.whiteouts),
      instance_tag_(
          static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {}

DualFs::~DualFs() = default;

std::shared_ptr<DualFs> make_dualfs(DualFsConfig config) {
  return std::make_shared<DualFs>(std::move(config));
}

Capabilities DualFs::capabilities() const {
  const Capabilities a = config_.a->capabilities();
  const Capabilities b = config_.b->capabilities();
  Capabilities caps;
  caps.writeback_cache = false;
  caps.readdirplus = true;
  // Writes and truncation only ever reach A, so A alone decides these.
  caps.handle_killpriv_v2 = a.handle_killpriv_v2;
  caps.atomic_o_trunc = a.atomic_o_trunc;
  caps.cache_symlinks = a.cache_symlinks && b.cache_symlinks && config_.cache != CachePolicy::never;
  caps.posix_acl = false;
  caps.export_support = false;
  caps.passthrough = false;
  return caps;
}

Task<Status> DualFs::init(const SessionParams& params) {
  {
    std::lock_guard lock(events_mu_);
    events_ = params.events;
  }
  SessionParams child = params;
  child.passthrough = false;
  child.writeback_cache = false;
  Status a = co_await config_.a->init(child);
  if (!a) co_return a;
  Status b = co_await config_.b->init(child);
  if (!b) co_return b;
  co_await remove_leftovers();
  co_return ok_status();
}

std::shared_ptr<const EventSink> DualFs::event_sink() const {
  std::lock_guard lock(events_mu_);
  return events_;
}

void DualFs::report_upgrade(const EventSink& sink, const NodePtr& n,
                            std::chrono::steady_clock::time_point start, const Status& outcome,
                            uint64_t data_size) {
  BackendEvent e;
  e.kind = n->is_dir() ? BackendEvent::Kind::promotion : BackendEvent::Kind::copy_up;
  e.node = n->ino;
  e.duration = std::chrono::steady_clock::now() - start;
  e.error = outcome ? 0 : outcome.error();
  e.bytes = outcome ? data_size : 0;
  sink.event(e);
}

Task<void> DualFs::remove_leftovers() {
  // A copy-up interrupted by a crash leaves its temporary in A's staging directory; nothing else
  // ever refers to it. Best effort: a failure here only leaves the file where it was.
  const RequestContext root;
  const std::string name(staging_name);
  Result<Entry> staging = co_await config_.a->lookup(root, fuse::root_id, name);
  if (!staging || staging->ino == 0) co_return;
  const InodeId dir = staging->ino;
  Result<std::vector<ChildDirEntry>> left = co_await list_child_dir(*config_.a, root, dir);
  if (left) {
    for (const ChildDirEntry& e : *left) {
      Status removed = co_await config_.a->unlink(root, dir, e.name);
      if (!removed) {
        SANDFS_LOG(warn) << "dualfs: cannot remove staging leftover " << e.name;
      }
    }
  }
  std::lock_guard lock(staging_mu_);
  if (staging_ == 0) {
    staging_ = dir;
  } else {
    config_.a->forget(dir, 1);
  }
}

Task<void> DualFs::destroy() {
  {
    std::lock_guard lock(handles_mu_);
    handles_.clear();
  }
  co_await config_.a->destroy();
  co_await config_.b->destroy();
}

Result<NodePtr> DualFs::node_of(InodeId ino) const {
  NodePtr n = table_.find(ino);
  if (!n) return Errno{ENOENT};
  return n;
}

void DualFs::give_back(std::vector<ChildRef>& refs) {
  for (const ChildRef& r : refs)
    fs(r.side).forget(r.ino, r.count);
  refs.clear();
}

void DualFs::drop_ref(const NodePtr& n) {
  std::vector<ChildRef> drop;
  table_.release_ref(n->ino, 1, drop);
  give_back(drop);
}

void DualFs::forget(InodeId ino, uint64_t nlookup) {
  std::vector<ChildRef> drop;
  table_.release_ref(ino, nlookup, drop);
  give_back(drop);
}

Entry DualFs::entry_for(const NodePtr& n, Attr attr) const {
  Entry e;
  e.ino = n->ino;
  attr.ino = n->ino;
  e.attr = attr;
  e.entry_timeout = entry_timeout_;
  e.attr_timeout = attr_timeout_;
  return e;
}

AttrReply DualFs::attr_reply(const NodePtr& n, Attr attr) const {
  attr.ino = n->ino;
  return AttrReply{attr, attr_timeout_};
}

int DualFs::admit(OpKind op, InodeId ino, std::string_view name, uint32_t flags,
                  bool write_intent) const {
  OpInfo info;
  info.op = op;
  info.ino = ino;
  info.name = name;
  info.flags = flags;
  info.write_intent = write_intent;
  return admit(info);
}

int DualFs::admit(OpInfo info) const {
  info.ns = &table_;
  return config_.policy->admit(info);
}

Task<Status> DualFs::make_changeable(const NodePtr& n, bool truncate) {
  if (table_.view(*n).a != 0) co_return ok_status();
  if (!n->is_dir() && !config_.policy->copy_up()) co_return Errno{EROFS};
  co_return co_await upgrade(n, truncate);
}

HandleId DualFs::add_handle(std::shared_ptr<Handle> h) {
  const HandleId fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(handles_mu_);
  handles_.emplace(fh, std::move(h));
  return fh;
}

Result<std::shared_ptr<DualFs::Handle>> DualFs::handle_of(HandleId fh, InodeId ino,
                                                          bool dir) const {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second->node->ino != ino || it->second->dir != dir) {
    return Errno{EBADF};
  }
  return it->second;
}

std::shared_ptr<DualFs::Handle> DualFs::take_handle(HandleId fh, InodeId ino, bool dir) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second->node->ino != ino || it->second->dir != dir) {
    return nullptr;
  }
  std::shared_ptr<Handle> h = std::move(it->second);
  handles_.erase(it);
  return h;
}

}  // namespace sandfs::dualfs
