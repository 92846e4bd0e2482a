#include "backends/dualfs/whiteouts.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "backends/dualfs/child_listing.hpp"

namespace sandfs::dualfs {

namespace {

// Markers are written as the server's own root: they are DualFs bookkeeping, not the guest's.
RequestContext server_ctx() {
  return RequestContext{};
}

constexpr size_t name_max = 255;

}  // namespace

Task<Result<std::shared_ptr<const DirMarks>>> Whiteouts::marks(InodeId dir) {
  {
    std::lock_guard lock(mu_);
    if (auto it = dirs_.find(dir); it != dirs_.end()) co_return it->second;
  }
  auto loaded = std::make_shared<DirMarks>();
  if (storage_ == WhiteoutStorage::markers) {
    const RequestContext ctx = server_ctx();
    Result<std::vector<ChildDirEntry>> listing = co_await list_child_dir(a_, ctx, dir);
    if (!listing) co_return Errno{listing.error()};
    for (const ChildDirEntry& e : *listing) {
      if (e.dtype != DT_DIR && !is_reserved(e.name)) {
        loaded->a_files.push_back(DirMarks::name_hash(e.name));
      }
      if (e.name == opaque_marker) {
        loaded->opaque = true;
      } else if (e.name.size() > whiteout_prefix.size() &&
                 e.name.compare(0, whiteout_prefix.size(), whiteout_prefix) == 0) {
        loaded->names.insert(e.name.substr(whiteout_prefix.size()));
      }
    }
    std::sort(loaded->a_files.begin(), loaded->a_files.end());
  }
  // A concurrent loader may have been first; both read the same markers, keep the first.
  std::lock_guard lock(mu_);
  auto [it, inserted] = dirs_.try_emplace(dir, std::move(loaded));
  (void)inserted;
  co_return it->second;
}

template <class F>
void Whiteouts::change(InodeId dir, const std::shared_ptr<const DirMarks>& base, F&& change) {
  std::lock_guard lock(mu_);
  // Start from the newest snapshot, which may already have changes made after `base`.
  auto it = dirs_.find(dir);
  const DirMarks& from = it != dirs_.end() ? *it->second : *base;
  auto next = std::make_shared<DirMarks>(from);
  change(*next);
  dirs_[dir] = std::move(next);
}

Task<Result<bool>> Whiteouts::whited_out(InodeId dir, std::string_view name) {
  Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
  if (!m) co_return Errno{m.error()};
  co_return (*m)->whited_out(name);
}

Task<Result<bool>> Whiteouts::is_copy(InodeId dir, std::string_view name) {
  const RequestContext ctx = server_ctx();
  Result<Entry> there = co_await a_.lookup(ctx, dir, name);
  if (!there) {
    if (there.error() == ENOENT) co_return false;
    co_return Errno{there.error()};
  }
  if (there->ino == 0) co_return false;
  const InodeId ino = there->ino;
  bool copy = false;
  if (!S_ISDIR(there->attr.mode)) {
    Result<XattrReply> mark = co_await a_.getxattr(ctx, ino, copy_up_xattr, 0);
    copy = mark.ok();
  }
  a_.forget(ino, 1);
  co_return copy;
}

Task<Result<bool>> Whiteouts::hides(InodeId dir, std::string_view name) {
  Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
  if (!m) co_return Errno{m.error()};
  const DirMarks& d = **m;
  if (d.whited_out(name) || d.copied.count(name) != 0) co_return true;
  if (!d.unchecked_candidate(name)) co_return false;
  Result<bool> copy = co_await is_copy(dir, name);
  if (!copy) co_return Errno{copy.error()};
  const bool is = *copy;
  change(dir, *m, [&](DirMarks& next) {
    if (is) {
      next.copied.emplace(name);
    } else {
      next.not_copied.emplace(name);
    }
  });
  co_return is;
}

void Whiteouts::update(InodeId dir, const std::shared_ptr<const DirMarks>& base, bool opaque,
                       std::string_view name) {
  change(dir, base, [&](DirMarks& next) {
    if (opaque) next.opaque = true;
    if (!name.empty()) next.names.emplace(name);
  });
}

Task<Status> Whiteouts::note_copy(InodeId dir, std::string_view name) {
  Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
  if (!m) co_return Errno{m.error()};
  change(dir, *m, [&](DirMarks& next) {
    next.copied.emplace(name);
    next.not_copied.erase(std::string(name));
  });
  co_return ok_status();
}

Task<Status> Whiteouts::make_marker(InodeId dir, const std::string& marker) {
  const RequestContext ctx = server_ctx();
  Result<Entry> made = co_await a_.mknod(ctx, dir, marker, S_IFREG | 0600, 0, 0);
  if (!made) {
    if (made.error() == EEXIST) co_return ok_status();
    co_return Errno{made.error()};
  }
  if (made->ino != 0) a_.forget(made->ino, 1);
  co_return ok_status();
}

Task<Status> Whiteouts::add(InodeId dir, std::string_view name) {
  Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
  if (!m) co_return Errno{m.error()};
  if ((*m)->names.find(name) != (*m)->names.end()) co_return ok_status();
  if (storage_ == WhiteoutStorage::markers) {
    if (whiteout_prefix.size() + name.size() > name_max) co_return Errno{ENAMETOOLONG};
    const std::string marker = std::string(whiteout_prefix) + std::string(name);
    Status s = co_await make_marker(dir, marker);
    if (!s) co_return s;
  }
  update(dir, *m, false, name);
  co_return ok_status();
}

Task<Status> Whiteouts::set_opaque(InodeId dir) {
  Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
  if (!m) co_return Errno{m.error()};
  if ((*m)->opaque) co_return ok_status();
  if (storage_ == WhiteoutStorage::markers) {
    const std::string marker(opaque_marker);
    Status s = co_await make_marker(dir, marker);
    if (!s) co_return s;
  }
  update(dir, *m, true, {});
  co_return ok_status();
}

Task<Status> Whiteouts::clear(InodeId dir) {
  if (storage_ == WhiteoutStorage::markers) {
    Result<std::shared_ptr<const DirMarks>> m = co_await marks(dir);
    if (!m) co_return Errno{m.error()};
    const RequestContext ctx = server_ctx();
    std::vector<std::string> markers;
    if ((*m)->opaque) markers.emplace_back(opaque_marker);
    for (const std::string& n : (*m)->names)
      markers.push_back(std::string(whiteout_prefix) + n);
    for (const std::string& marker : markers) {
      Status s = co_await a_.unlink(ctx, dir, marker);
      if (!s && s.error() != ENOENT) co_return s;
    }
  }
  forget_dir(dir);
  co_return ok_status();
}

void Whiteouts::forget_dir(InodeId dir) {
  std::lock_guard lock(mu_);
  dirs_.erase(dir);
}

}  // namespace sandfs::dualfs
