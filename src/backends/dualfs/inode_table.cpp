#include "backends/dualfs/inode_table.hpp"

#include <algorithm>

#include "backends/dualfs/flight.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

InodeTable::InodeTable(bool root_has_b) {
  auto root = std::make_shared<Node>();
  root->ino = fuse::root_id;
  root->type = S_IFDIR;
  root->a = fuse::root_id;
  root->b = root_has_b ? fuse::root_id : 0;
  root->refs = 1;
  nodes_.emplace(root->ino, root);
  by_child_.emplace(Key{Side::a, fuse::root_id}, root->ino);
  if (root_has_b) by_child_.emplace(Key{Side::b, fuse::root_id}, root->ino);
}

NodePtr InodeTable::find(InodeId ino) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? nullptr : it->second;
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

void InodeTable::unmap_locked(Side s, InodeId child, InodeId ino) {
  auto it = by_child_.find(Key{s, child});
  if (it != by_child_.end() && it->second == ino) by_child_.erase(it);
}

void InodeTable::unname_locked(Node& n) {
  if (!n.by_name) return;
  n.by_name = false;
  auto it = by_name_.find(NameKey{n.parent, n.name});
  if (it != by_name_.end() && it->second == n.ino) by_name_.erase(it);
}

NodePtr InodeTable::bind_by_name_locked(const Binding& bind, InodeId parent, std::string_view name,
                                        std::vector<ChildRef>& drop) {
  NameKey key{parent, std::string(name)};
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    auto nit = nodes_.find(it->second);
    if (nit != nodes_.end()) {
      NodePtr n = nit->second;
      if (n->by_name && n->a == 0 && n->b == bind.b && n->type == (bind.type & S_IFMT)) {
        drop.push_back({Side::b, bind.b, 1});
        ++n->refs;
        return n;
      }
      // The name now stands for another B object: the old node keeps its (stale) pin until
      // forgotten, but no longer owns the name.
      nit->second->by_name = false;
    }
    by_name_.erase(it);
  }
  auto n = std::make_shared<Node>();
  n->type = bind.type & S_IFMT;
  // The first name takes the number listings already report for this B inode.
  if (auto r = reserved_.find(Key{Side::b, bind.b}); r != reserved_.end()) {
    n->ino = r->second;
    reserved_.erase(r);
  } else {
    n->ino = next_ino_++;
  }
  n->b = bind.b;
  n->refs = 1;
  n->parent = parent;
  n->name = key.name;
  n->by_name = true;
  by_name_.emplace(std::move(key), n->ino);
  nodes_.emplace(n->ino, n);
  return n;
}

NodePtr InodeTable::bind(const Binding& bind, InodeId parent, std::string_view name,
                         std::vector<ChildRef>& drop) {
  std::lock_guard lock(mu_);
  if (bind.by_name && bind.a == 0 && bind.b != 0 && !S_ISDIR(bind.type)) {
    return bind_by_name_locked(bind, parent, name, drop);
  }
  NodePtr n;
  for (Side s : {Side::a, Side::b}) {
    const InodeId child = s == Side::a ? bind.a : bind.b;
    if (child == 0) continue;
    auto it = by_child_.find(Key{s, child});
    if (it == by_child_.end()) continue;
    auto nit = nodes_.find(it->second);
    if (nit == nodes_.end()) continue;
    if ((nit->second->type & S_IFMT) != (bind.type & S_IFMT)) {
      // The child reused an inode number for another kind of object: the old node no longer
      // stands for it.
      by_child_.erase(it);
      continue;
    }
    n = nit->second;
    break;
  }
  if (n) {
    for (Side s : {Side::a, Side::b}) {
      const InodeId child = s == Side::a ? bind.a : bind.b;
      if (child == 0) continue;
      InodeId& slot = s == Side::a ? n->a : n->b;
      if (slot == 0 && (n->is_dir() || (n->a == 0 && n->b == 0))) {
        slot = child;
        by_child_[Key{s, child}] = n->ino;
      } else {
        drop.push_back({s, child, 1});
      }
    }
    ++n->refs;
    return n;
  }
  n = std::make_shared<Node>();
  n->type = bind.type & S_IFMT;
  const Key primary = bind.a != 0 ? Key{Side::a, bind.a} : Key{Side::b, bind.b};
  if (auto r = reserved_.find(primary); r != reserved_.end()) {
    n->ino = r->second;
    reserved_.erase(r);
  } else {
    n->ino = next_ino_++;
  }
  n->a = bind.a;
  n->b = bind.b;
  n->refs = 1;
  n->parent = parent;
  n->name = std::string(name);
  if (n->a != 0) by_child_[Key{Side::a, n->a}] = n->ino;
  if (n->b != 0) {
    by_child_[Key{Side::b, n->b}] = n->ino;
    if (n->a != 0) reserved_.erase(Key{Side::b, n->b});
  }
  nodes_.emplace(n->ino, n);
  return n;
}

void InodeTable::add_ref(const NodePtr& n, uint64_t count) {
  std::lock_guard lock(mu_);
  n->refs += count;
}

void InodeTable::release_ref(InodeId ino, uint64_t count, std::vector<ChildRef>& drop) {
  if (ino == fuse::root_id) return;
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  Node& n = *it->second;
  n.refs -= std::min(n.refs, count);
  if (n.refs > 0) return;
  unname_locked(n);
  if (n.a != 0) {
    unmap_locked(Side::a, n.a, n.ino);
    drop.push_back({Side::a, n.a, 1});
  }
  if (n.b != 0) {
    unmap_locked(Side::b, n.b, n.ino);
    drop.push_back({Side::b, n.b, 1});
  }
  n.a = n.b = 0;
  nodes_.erase(it);
}

void InodeTable::set_side(const NodePtr& n, Side s, InodeId child, bool drop_other,
                          std::vector<ChildRef>& drop) {
  std::lock_guard lock(mu_);
  InodeId& slot = s == Side::a ? n->a : n->b;
  if (slot == child) {
    drop.push_back({s, child, 1});
  } else {
    if (slot != 0) {
      unmap_locked(s, slot, n->ino);
      drop.push_back({s, slot, 1});
    }
    slot = child;
    by_child_[Key{s, child}] = n->ino;
  }
  if (drop_other) {
    unname_locked(*n);  // copied up: from now on an A node like any other
    const Side o = other(s);
    InodeId& os = o == Side::a ? n->a : n->b;
    if (os != 0) {
      unmap_locked(o, os, n->ino);
      drop.push_back({o, os, 1});
      os = 0;
    }
  }
}

void InodeTable::clear_side(const NodePtr& n, Side s, std::vector<ChildRef>& drop) {
  std::lock_guard lock(mu_);
  InodeId& slot = s == Side::a ? n->a : n->b;
  if (slot == 0) return;
  unmap_locked(s, slot, n->ino);
  drop.push_back({s, slot, 1});
  slot = 0;
}

void InodeTable::set_anchor(const NodePtr& n, InodeId parent, std::string_view name) {
  std::lock_guard lock(mu_);
  unname_locked(*n);
  n->parent = parent;
  n->name = std::string(name);
}

std::optional<std::string> InodeTable::path_of(uint64_t ino) const {
  std::vector<const Node*> chain;
  std::lock_guard lock(mu_);
  InodeId at = ino;
  while (at != fuse::root_id) {
    auto it = nodes_.find(at);
    // A node that left the table, or a cycle (a bound on the depth): the path is unknown.
    if (it == nodes_.end() || it->second->parent == 0 || chain.size() > 4096) return std::nullopt;
    chain.push_back(it->second.get());
    at = it->second->parent;
  }
  if (chain.empty()) return std::string(1, '/');
  size_t length = 0;
  for (const Node* n : chain)
    length += 1 + n->name.size();
  std::string path;
  path.reserve(length);
  for (auto n = chain.rbegin(); n != chain.rend(); ++n) {
    path += '/';
    path += (*n)->name;
  }
  return path;
}

InodeTable::View InodeTable::view(const Node& n) const {
  std::lock_guard lock(mu_);
  return View{n.a, n.b, n.parent, n.name, n.refs};
}

InodeId InodeTable::ino_for_listing(Side s, InodeId child) {
  std::lock_guard lock(mu_);
  if (auto it = by_child_.find(Key{s, child}); it != by_child_.end()) return it->second;
  auto [it, inserted] = reserved_.try_emplace(Key{s, child}, 0);
  if (inserted) it->second = next_ino_++;
  return it->second;
}

std::shared_ptr<Flight> InodeTable::claim_flight(const NodePtr& n, bool& leader) {
  std::lock_guard lock(mu_);
  leader = n->flight == nullptr;
  if (leader) n->flight = std::make_shared<Flight>();
  return n->flight;
}

void InodeTable::end_flight(const NodePtr& n) {
  std::lock_guard lock(mu_);
  n->flight.reset();
}

}  // namespace sandfs::dualfs
