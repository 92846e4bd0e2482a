// InodeStore: guest inodes <-> host objects, their O_PATH fds and the names they were reached by.
//
// ## Identity and inode numbers
// A host object is (st_dev, st_ino, mnt_id). Its guest inode id (the FUSE nodeid, also reported as
// st_ino and as d_ino in every listing, so all three agree) is derived from it, not allocated:
//   id = mount_index << 48 | host_ino
// where mount_index numbers the (st_dev, mnt_id) pairs met under the root in order of discovery,
// 0 being the root's own. The root is always id 1. Deriving ids lets plain READDIR report d_ino for
// names nobody looked up (no table entry, no memory per listed name) and still match the st_ino a
// later lookup returns; distinct mounts under the root never collide (reference defect §8.10).
// Objects that do not fit (host inode >= 2^48, more than 32767 mounts, or a host inode number 1
// that is not the root) get an allocated id with bit 63 set from a side table; those alone may see
// d_ino differ from st_ino in a plain listing before their first lookup.
//
// ## Generations
// A host inode number can be reused after the host deletes a file behind our back. Each store
// entry remembers the object's birth time and type; when a lookup finds the same id with a
// different birth time or type, the entry is replaced by a new one with a new generation
// (generations come from one counter), so the kernel sees (id, generation) change and drops the
// old inode instead of mixing the two files. The lookup count belongs to the id and moves to the
// new entry, because FORGET carries only the id.
//
// ## Lookup counts and eviction
// An entry lives in the table while its lookup count is above zero. Counts change only under the
// table shard's mutex, so a concurrent lookup and forget cannot lose each other. An evicted entry
// stays alive as long as something holds it (an open handle, an operation in flight, a child's
// alias), it just is no longer found by id.
//
// ## Names (aliases)
// Each entry remembers the (parent entry, name) pairs it was reached by: up to max_aliases, the
// first one being the one re-walks use. An index (parent id, name) -> entry lets unlink/rename find
// the entry they affect and lets a repeated lookup check an already-known name with one statx
// instead of an open. Renames move aliases, unlink/rmdir drop them; host-side renames make them
// stale, which re-walks detect (identity check) and repair by trying the other aliases.
//
// ## O_PATH fds
// The root's fd is pinned. Other entries keep their O_PATH fd in a bounded cache (LRU, sharded,
// max_cached_fds in all). fd_of() returns the cached fd or re-walks: it follows aliases up to the
// nearest ancestor that has an fd, opens the remaining path below it in one openat2 beneath that
// ancestor (confinement.hpp) and accepts the result only if statx shows the same identity. So fds
// never run out, whatever the number of inodes the kernel holds. An entry whose last alias is
// removed (unlink, rmdir, replaced by a rename) cannot be re-walked any more: its fd is pinned
// until the entry is evicted, which keeps "open/getattr after unlink" working.
//
// ## Records
// Each entry caches its decoded ownership record with the host ctime seen when it was read. Every
// change to an xattr (ours or the host's) moves ctime, so a cached record is used only while
// statx still shows that ctime: getattr is one statx, and a host-side edit of the record is seen
// at the next request that stats the object. (A host edit within the same ctime tick as our read
// could be missed until the next change; multigrain ctime on 6.13+ makes that window tiny.)
//
// ## Locks
// Order: table shard -> entry mutex -> fd cache shard. Alias index shards are leaves. No lock is
// held across a co_await, and no two entry mutexes are ever held together.
#pragma once

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/passthrough/host_fd.hpp"
#include "backends/passthrough/ownership_record.hpp"
#include "core/filesystem.hpp"

namespace sandfs::passthrough {

struct HostId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t mnt_id = 0;
  bool operator==(const HostId&) const = default;
};

HostId host_id_of(const struct statx& stx);
uint64_t btime_of(const struct statx& stx);  // 0 when the filesystem does not report one
Timespec ctime_of(const struct statx& stx);

// The cached ownership record of an entry (see "Records").
struct RecordCache {
  enum class State : uint8_t { unknown, absent, present, corrupt };
  State state = State::unknown;
  Record record;
  Timespec ctime;  // host ctime when it was read
  int error = 0;   // for corrupt: the errno to answer
  // The host's own mode and owner at that time: what the guest sees when there is no record.
  uint32_t host_mode = 0;
  uint32_t host_uid = 0;
  uint32_t host_gid = 0;

  void note_host(const struct statx& stx) {
    ctime = Timespec{stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
    host_mode = stx.stx_mode;
    host_uid = stx.stx_uid;
    host_gid = stx.stx_gid;
  }

  bool valid_for(const Timespec& now) const {
    return state != State::unknown && ctime.sec == now.sec && ctime.nsec == now.nsec;
  }
};

class Inode;

struct Alias {
  std::shared_ptr<Inode> parent;
  std::string name;
};

class Inode {
 public:
  Inode(InodeId id, uint64_t generation, const HostId& host, uint32_t host_type, uint64_t btime,
        uint32_t mount_index)
      : id(id),
        generation(generation),
        host(host),
        host_type(host_type),
        btime(btime),
        mount_index(mount_index) {}
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  const InodeId id;
  const uint64_t generation;
  const HostId host;
  const uint32_t host_type;  // S_IFMT of the host object; never changes
  const uint64_t btime;
  const uint32_t mount_index;

  bool is_dir() const { return host_type == S_IFDIR; }
  bool is_reg() const { return host_type == S_IFREG; }

  // Quota accounting: the size the accounting believes the host file has (quota.hpp).
  std::atomic<uint64_t> size{0};
  // The host kernel clears suid and security.capability itself when an unprivileged server
  // writes; a privileged server looks once per entry whether there is a capability to remove.
  std::atomic<bool> caps_checked{false};

  mutable std::mutex mu;
  // ---- guarded by mu ----
  SharedFd fd;           // cached or pinned O_PATH fd (null: re-walk)
  bool pinned = false;   // root, or no alias left: the fd stays until eviction
  bool evicted = false;  // no longer in the table
  std::vector<Alias> aliases;
  RecordCache record;

 private:
  friend class InodeStore;
  friend class FdCache;
  // ---- guarded by the table shard's mutex ----
  uint64_t lookup_refs_ = 0;
  // ---- guarded by the fd cache shard's mutex ----
  bool in_lru_ = false;
  std::list<std::shared_ptr<Inode>>::iterator lru_pos_;
};

// A bounded set of inodes holding an O_PATH fd, least recently used first out.
class FdCache {
 public:
  explicit FdCache(size_t capacity);
  // Adds `n` (whose mutex the caller holds; n.fd is set). Returns the inodes pushed out; the
  // caller drops their fds with drop_fds() after letting go of n.mu.
  std::vector<std::shared_ptr<Inode>> insert(const std::shared_ptr<Inode>& n);
  void touch(Inode& n);
  void remove(Inode& n);
  static void drop_fds(const std::vector<std::shared_ptr<Inode>>& victims);
  size_t size() const;

 private:
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::list<std::shared_ptr<Inode>> lru;  // most recent first
    size_t capacity = 1;
  };
  Shard& shard(const Inode& n) { return shards_[n.id % shards_.size()]; }
  std::vector<Shard> shards_;
};

class InodeStore {
 public:
  static constexpr size_t max_aliases = 8;

  // `root_fd`: O_PATH fd of the root; `proc_fd_dir`: O_PATH fd on /proc/self/fd (not owned).
  InodeStore(SharedFd root_fd, const struct statx& root_stx, size_t max_cached_fds);
  ~InodeStore();
  InodeStore(const InodeStore&) = delete;
  InodeStore& operator=(const InodeStore&) = delete;

  const std::shared_ptr<Inode>& root() const { return root_; }
  // The entry with this id, or null.
  std::shared_ptr<Inode> find(InodeId id) const;

  // The id a host object gets (allocating an overflow id if needed).
  InodeId id_for(const struct statx& stx);
  // The id a listing reports for host inode `ino` found in directory `dir` (same mount). 0 if the
  // object needs an overflow id that was never allocated (then the host number is reported).
  InodeId peek_id(const Inode& dir, uint64_t ino) const;

  // Counts one more lookup of the object `stx` describes (reached as `name` in `parent`, which may
  // be null for none) and returns its entry: the existing one if it is the same object, else a new
  // one (new object, or a reused host inode number: new generation). `fd` (may be null) is an
  // O_PATH fd on the object, kept in the fd cache if the entry has none. `record`, when known, is
  // stored as the entry's record cache.
  std::shared_ptr<Inode> acquire(const struct statx& stx, const SharedFd& fd,
                                 const std::shared_ptr<Inode>& parent, std::string_view name,
                                 const RecordCache* record, uint64_t refs = 1);
  // Drops `count` lookups of `id` (clamped at zero); evicts at zero. Never fails.
  void forget(InodeId id, uint64_t count);

  // Whether `n` is the object `stx` describes (same id, type and birth time).
  static bool same_object(const Inode& n, const struct statx& stx, InodeId id);

  // ---- names ----
  std::shared_ptr<Inode> find_alias(InodeId parent, std::string_view name) const;
  void add_alias(const std::shared_ptr<Inode>& child, const std::shared_ptr<Inode>& parent,
                 std::string_view name);
  // Forgets that (parent, name) names something; returns what it named (or null) and pins its fd
  // when that was its last known name.
  std::shared_ptr<Inode> remove_alias(InodeId parent, std::string_view name);
  // (p1, n1) now names what (p2, n2) named and, with exchange, the other way round.
  void rename_alias(const std::shared_ptr<Inode>& p1, std::string_view n1,
                    const std::shared_ptr<Inode>& p2, std::string_view n2, bool exchange);

  // ---- fds ----
  // The O_PATH fd of `n`: cached, or re-walked (ESTALE when no known name leads to it any more).
  Task<Result<SharedFd>> fd_of(const std::shared_ptr<Inode>& n);
  // The cached fd, if any (marks it recently used).
  SharedFd cached_fd(Inode& n);
  // Offers `fd` as n's cached fd (kept only if n has none).
  void offer_fd(const std::shared_ptr<Inode>& n, const SharedFd& fd);
  // Keeps n's fd until eviction (offering `fd` first if n has none).
  void pin_fd(const std::shared_ptr<Inode>& n, const SharedFd& fd);
  size_t cached_fds() const { return fds_.size(); }

  // For tests and stats.
  size_t size() const;
  uint64_t lookup_refs(InodeId id) const;

 private:
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<InodeId, std::shared_ptr<Inode>> map;
  };
  Shard& shard(InodeId id) { return shards_[id % shards_.size()]; }
  const Shard& shard(InodeId id) const { return shards_[id % shards_.size()]; }

  struct AliasKey {
    InodeId parent;
    std::string name;
  };
  struct AliasView {
    InodeId parent;
    std::string_view name;
  };
  struct AliasHash {
    using is_transparent = void;
    size_t operator()(const AliasKey& k) const { return hash(k.parent, k.name); }
    size_t operator()(const AliasView& k) const { return hash(k.parent, k.name); }
    static size_t hash(InodeId parent, std::string_view name);
  };
  struct AliasEq {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return a.parent == b.parent && std::string_view(a.name) == std::string_view(b.name);
    }
  };
  struct alignas(64) AliasShard {
    mutable std::mutex mu;
    std::unordered_map<AliasKey, std::weak_ptr<Inode>, AliasHash, AliasEq> map;
  };
  AliasShard& alias_shard(InodeId parent, std::string_view name) {
    return alias_shards_[AliasHash::hash(parent, name) % alias_shards_.size()];
  }
  const AliasShard& alias_shard(InodeId parent, std::string_view name) const {
    return alias_shards_[AliasHash::hash(parent, name) % alias_shards_.size()];
  }
  void index_alias(InodeId parent, std::string_view name, const std::shared_ptr<Inode>& child);
  // Removes (parent, name) from the index if it points at `child`.
  void unindex_alias(InodeId parent, std::string_view name, const Inode* child);
  // After eviction or replacement: takes n out of the fd cache and the alias index.
  void retire(const std::shared_ptr<Inode>& n);

  // Mount index of (dev, mnt_id), registering it; npos when the table is full.
  uint32_t mount_index(uint64_t dev, uint64_t mnt_id);
  static constexpr uint32_t no_index = UINT32_MAX;

  std::shared_ptr<Inode> root_;
  uint64_t root_host_ino_ = 0;

  std::array<Shard, 64> shards_;
  std::array<AliasShard, 64> alias_shards_;
  FdCache fds_;
  std::atomic<uint64_t> next_generation_{1};

  mutable std::shared_mutex mounts_mu_;
  std::vector<std::pair<uint64_t, uint64_t>> mounts_;  // index -> (dev, mnt_id)

  struct HostIdHash {
    size_t operator()(const HostId& h) const;
  };
  mutable std::mutex overflow_mu_;
  std::unordered_map<HostId, InodeId, HostIdHash> overflow_ids_;
  uint64_t next_overflow_ = 1;
};

}  // namespace sandfs::passthrough
