// The Filesystem interface: the contract between the FUSE Session and every backend.
//
// One coroutine per FUSE operation, each returning a value or an errno (Result<T>). The Session
// decodes and validates the wire format, then calls these; backends never see raw protocol bytes.
//
// ## Who calls, from where
// * One Filesystem instance serves one mount. The Session calls it from several threads at once
//   (one io_context per thread, one coroutine per request), so every implementation must be
//   thread-safe. Operations on different inodes must not serialise on a global lock.
// * A coroutine may suspend (awaiting host I/O). It must not hold a mutex across a co_await.
// * No operation may throw for an ordinary outcome. An escaping exception is a bug; the Session
//   turns std::bad_alloc into ENOMEM and anything else into EIO and logs it.
//
// ## Inodes and the lookup count
// * Inode ids are chosen by the backend. 1 (fuse::root_id) is the root and always exists. 0 is
//   never a valid inode: an Entry whose ino is 0 is a *negative* entry ("this name does not
//   exist, cache that for entry_timeout").
// * Every successful reply that hands an inode to the kernel (lookup, mknod, mkdir, symlink, link,
//   create, and each readdirplus entry other than "." and "..") adds one to that inode's lookup
//   count. forget(ino, n) subtracts n. When the count reaches zero and the inode has no links
//   left and no open handles, the backend may free it. The kernel never uses an inode whose count
//   it has forgotten to zero, but a hostile guest may: every inode-addressed operation must
//   check the id and answer EBADF (or ENOENT) for unknown ones, never crash.
// * A negative entry (ino 0) does not take a lookup reference.
// * generation: if the backend ever reuses an inode id, (ino, generation) must stay unique.
//
// ## Handles
// * open/create/opendir return a 64-bit handle (fh) that the kernel passes back on read, write,
//   release, ... A guest may send any fh: backends validate it (EBADF for unknown handles).
// * After release/releasedir the handle is gone; a later use answers EBADF.
//
// ## Timeouts
// * entry_timeout: how long the kernel may trust name -> inode (and a negative entry).
// * attr_timeout: how long the kernel may trust the attributes.
//   Zero means "ask again every time". Backends derive them from their cache policy.
//
// ## What a guest may lie about
// Names (the Session rejects empty names, names longer than 255 bytes, and names containing '/'
// or NUL before they reach a backend; backends still must treat "." and ".." as hostile), inode
// ids, handles, offsets and sizes (offset + size may overflow: check), modes and flags (unknown
// bits), xattr sizes. Everything is checked; bad input is an errno, never a crash.
//
// ## Data
// read() writes into, and write() reads from, memory owned by the transport (a /dev/fuse buffer
// or guest memory), described by an IoVecs view. A passthrough backend can preadv/pwritev straight
// between the host file and that memory; MemFs copies between its pages and it. Nothing outside
// the transport dereferences a guest address except through these views.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "core/result.hpp"

namespace sandfs {

template <class T>
using Task = boost::asio::awaitable<T>;

class EventSink;  // core/hooks.hpp

using InodeId = uint64_t;
using HandleId = uint64_t;

// How much the kernel may cache. Mapped onto open flags and timeouts by each backend:
//   Never  -> FOPEN_DIRECT_IO on files and dirs, zero timeouts
//   Auto   -> page cache kept until attributes change (no open flags), short timeouts
//   Always -> FOPEN_KEEP_CACHE on files, FOPEN_CACHE_DIR on dirs, long timeouts
enum class CachePolicy { never, auto_, always };

// The entry/attr timeout and the open-reply FOPEN_* flags each policy stands for (table above).
std::chrono::nanoseconds cache_timeout(CachePolicy policy);
uint32_t cache_open_flags(CachePolicy policy, bool dir);

// Parses "never" | "auto" | "always".
bool parse_cache_policy(std::string_view text, CachePolicy& out);
std::string_view to_string(CachePolicy policy);

// The caller's credentials as the kernel reports them (fuse_in_header).
struct RequestContext {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  uint64_t unique = 0;
  // Set by the Session when the kernel sends FUSE_INTERRUPT for this request. Long operations
  // (copies, tree walks) poll it and may stop early with EINTR.
  const volatile bool* interrupted = nullptr;

  bool is_interrupted() const { return interrupted != nullptr && *interrupted; }
};

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
};

// The attributes a backend reports; the Session converts them to fuse_attr.
struct Attr {
  InodeId ino = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // in 512-byte units
  Timespec atime, mtime, ctime;
  uint32_t mode = 0;  // file type and permission bits (S_IFMT | 07777)
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint32_t blksize = 4096;
};

struct AttrReply {
  Attr attr;
  std::chrono::nanoseconds attr_timeout{0};
};

struct Entry {
  InodeId ino = 0;  // 0: negative entry
  uint64_t generation = 0;
  Attr attr;
  std::chrono::nanoseconds entry_timeout{0};
  std::chrono::nanoseconds attr_timeout{0};
};

struct OpenReply {
  HandleId fh = 0;
  uint32_t open_flags = 0;  // fuse::FOPEN_*
  // Kernel FUSE passthrough (files only; ignored for opendir). A host fd, owned by the backend
  // and kept open until release() of this handle, on the regular host file whose bytes this
  // handle serves. When SessionParams::passthrough is true the Session registers it with the
  // kernel, which then reads, writes and mmaps this handle directly on the host file: no read()
  // or write() call reaches the backend for it. -1: serve this handle's data through read() and
  // write() as usual. See "Kernel passthrough" above Capabilities for what the backend gives up.
  // The fd may be O_RDONLY or O_PATH: the kernel opens its own file on the same path with the
  // guest's open flags and the server's credentials.
  int backing_fd = -1;
};

struct CreateReply {
  Entry entry;
  OpenReply open;
};

// What setattr should change; a field is used only when its bit in `valid` is set.
struct SetAttrIn {
  uint32_t valid = 0;  // fuse::FATTR_*
  std::optional<HandleId> fh;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  Timespec atime, mtime, ctime;
};

struct StatFs {
  uint64_t blocks = 0;
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint32_t bsize = 4096;
  uint32_t namelen = 255;
  uint32_t frsize = 4096;
};

// getxattr/listxattr: a request with size 0 asks only for the size.
struct XattrReply {
  uint32_t size = 0;       // the size of the value (or name list)
  std::vector<char> data;  // the value, empty when only the size was asked for
};

// A scatter/gather view of transport memory. `iov` covers at least `size` bytes.
struct IoVecs {
  std::span<const iovec> iov;
  size_t size = 0;
};

// Receives directory entries. add() returns false when the reply buffer is full: the entry was
// NOT sent, and the backend must stop (and, for readdirplus, not take a lookup reference for it).
// `next_offset` is the offset the kernel passes back to continue after this entry.
class DirSink {
 public:
  virtual ~DirSink() = default;
  virtual bool add(std::string_view name, InodeId ino, uint32_t dtype, uint64_t next_offset) = 0;
};

class DirPlusSink {
 public:
  virtual ~DirPlusSink() = default;
  // For "." and ".." pass an Entry with ino set and the rest zeroed; the kernel does not take a
  // lookup reference for them.
  virtual bool add(std::string_view name, const Entry& entry, uint32_t dtype,
                   uint64_t next_offset) = 0;
};

// ## Kernel passthrough
// A backend that serves host files (PassthroughFs) sets Capabilities::passthrough. The Session
// then asks the kernel for FUSE_PASSTHROUGH when the transport can register host fds with the
// kernel (/dev/fuse can, as root with CAP_SYS_ADMIN; vhost-user cannot), the kernel offers it,
// and FUSE_WRITEBACK_CACHE is not negotiated (the kernel refuses the two together; writeback
// wins, because it is an explicit mount option and helps every file, not only host-backed ones).
// SessionParams::passthrough says what was agreed. Only then should open/create return a
// backing_fd, and only for handles where the backend is fine with being bypassed:
// * The kernel does the handle's reads AND writes itself, as the server's credentials, on the
//   host file. The backend sees no WRITE: no quota accounting, no clearing of guest-visible
//   suid/sgid/caps on write (killpriv), no write-time checks of any kind. A backend that needs
//   those should offer a backing fd only for opens that cannot write (O_RDONLY without O_TRUNC).
// * The file's size and mtime as the guest sees them change without a setattr; getattr must
//   report the host file's size (stat it, do not cache it).
// * The kernel allows one host file per inode at a time, and all concurrent opens of an inode
//   must agree: while one open of an inode is in passthrough mode, an open of the same inode
//   that the backend answers without a backing fd (or with an fd on a different host file)
//   fails in the kernel with EIO. The reverse is handled: an open with a backing fd while the
//   inode is open in the ordinary (cached) mode is served the ordinary way. So a backend that
//   offers backing fds only for read-only opens makes writers fail while a reader holds the
//   file open; one that can live without seeing writes should offer them for every open.
// * Registration may still fail (no CAP_SYS_ADMIN, a backing file on a stacked filesystem, ...);
//   the Session then serves the handle the ordinary way, so read()/write() must keep working.
// The Session keeps one kernel backing id per inode while any passthrough handle of it is open
// and drops it when the last one is released; the backend only manages its own fds.

// What a backend can do; the Session intersects this with what the kernel offers at FUSE_INIT.
struct Capabilities {
  bool writeback_cache = false;     // kernel page cache buffers writes (FUSE_WRITEBACK_CACHE)
  bool readdirplus = true;          // FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO
  bool handle_killpriv_v2 = false;  // the backend clears suid/sgid/caps itself
  bool atomic_o_trunc = false;      // open() honours O_TRUNC
  bool cache_symlinks = false;      // the kernel may cache readlink results
  bool posix_acl = false;
  bool export_support = false;  // lookup of "." and ".." is supported
  bool direct_io_allow_mmap = true;
  // The backend can hand out host fds for kernel passthrough (OpenReply::backing_fd).
  bool passthrough = false;
};

// What the Session agreed with the kernel, told to the backend once before any other request.
struct SessionParams {
  bool writeback_cache = false;
  bool handle_killpriv_v2 = false;
  bool dont_mask = false;  // umask arrives separately and the backend applies it
  uint32_t proto_minor = 0;
  uint32_t max_write = 0;
  // FUSE_PASSTHROUGH was agreed: backing fds returned by open/create will be used (unless the
  // kernel later refuses to register one, in which case the handle is served normally).
  bool passthrough = false;
  // Where the backend reports its events (copy-ups, ...) to the mount's hooks (hooks.hpp). Set by
  // the Session; null when a test calls init() directly. A backend that keeps it must keep the
  // latest one (a vhost-user mount is initialised again on each reconnect).
  std::shared_ptr<const EventSink> events;
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;

  virtual Capabilities capabilities() const { return {}; }

  // Called once, after negotiation and before any other operation.
  virtual Task<Status> init(const SessionParams& params);
  // The kernel is going away (FUSE_DESTROY, or the transport closed). No further calls follow.
  virtual Task<void> destroy();

  virtual Task<Result<Entry>> lookup(const RequestContext& ctx, InodeId parent,
                                     std::string_view name);
  // No reply is sent for forget; it must not fail.
  virtual void forget(InodeId ino, uint64_t nlookup);

  virtual Task<Result<AttrReply>> getattr(const RequestContext& ctx, InodeId ino,
                                          std::optional<HandleId> fh);
  virtual Task<Result<AttrReply>> setattr(const RequestContext& ctx, InodeId ino,
                                          const SetAttrIn& in);
  virtual Task<Result<std::string>> readlink(const RequestContext& ctx, InodeId ino);

  virtual Task<Result<Entry>> mknod(const RequestContext& ctx, InodeId parent,
                                    std::string_view name, uint32_t mode, uint32_t rdev,
                                    uint32_t umask);
  virtual Task<Result<Entry>> mkdir(const RequestContext& ctx, InodeId parent,
                                    std::string_view name, uint32_t mode, uint32_t umask);
  virtual Task<Result<Entry>> symlink(const RequestContext& ctx, InodeId parent,
                                      std::string_view name, std::string_view target);
  virtual Task<Result<Entry>> link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                                   std::string_view new_name);
  virtual Task<Status> unlink(const RequestContext& ctx, InodeId parent, std::string_view name);
  virtual Task<Status> rmdir(const RequestContext& ctx, InodeId parent, std::string_view name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE (RENAME_WHITEOUT may be refused with EINVAL).
  virtual Task<Status> rename(const RequestContext& ctx, InodeId parent, std::string_view name,
                              InodeId new_parent, std::string_view new_name, uint32_t flags);

  // flags are the guest's open(2) flags (Linux values).
  virtual Task<Result<OpenReply>> open(const RequestContext& ctx, InodeId ino, uint32_t flags,
                                       bool kill_suidgid);
  virtual Task<Result<CreateReply>> create(const RequestContext& ctx, InodeId parent,
                                           std::string_view name, uint32_t mode, uint32_t flags,
                                           uint32_t umask, bool kill_suidgid);
  // Reads up to `size` bytes at `offset` into `dst`; returns the count (short at end of file).
  virtual Task<Result<size_t>> read(const RequestContext& ctx, InodeId ino, HandleId fh,
                                    uint64_t offset, uint32_t size, const IoVecs& dst);
  // Writes `src.size` bytes at `offset`; returns the count written.
  virtual Task<Result<size_t>> write(const RequestContext& ctx, InodeId ino, HandleId fh,
                                     uint64_t offset, const IoVecs& src, bool kill_suidgid);
  virtual Task<Status> flush(const RequestContext& ctx, InodeId ino, HandleId fh,
                             uint64_t lock_owner);
  virtual Task<Status> release(const RequestContext& ctx, InodeId ino, HandleId fh, uint32_t flags);
  virtual Task<Status> fsync(const RequestContext& ctx, InodeId ino, HandleId fh, bool datasync);

  virtual Task<Result<OpenReply>> opendir(const RequestContext& ctx, InodeId ino, uint32_t flags);
  // Offsets: 0 starts the listing; otherwise the next_offset of an entry sent before. Offsets
  // must stay valid while entries are added and removed concurrently.
  virtual Task<Status> readdir(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                               DirSink& sink);
  virtual Task<Status> readdirplus(const RequestContext& ctx, InodeId ino, HandleId fh,
                                   uint64_t offset, DirPlusSink& sink);
  virtual Task<Status> releasedir(const RequestContext& ctx, InodeId ino, HandleId fh);
  virtual Task<Status> fsyncdir(const RequestContext& ctx, InodeId ino, HandleId fh, bool datasync);

  virtual Task<Result<StatFs>> statfs(const RequestContext& ctx, InodeId ino);

  virtual Task<Status> setxattr(const RequestContext& ctx, InodeId ino, std::string_view name,
                                std::span<const char> value, uint32_t flags);
  // size 0: return only the size. Value longer than size: ERANGE.
  virtual Task<Result<XattrReply>> getxattr(const RequestContext& ctx, InodeId ino,
                                            std::string_view name, uint32_t size);
  // The names, each NUL-terminated. size 0: only the size; too small: ERANGE.
  virtual Task<Result<XattrReply>> listxattr(const RequestContext& ctx, InodeId ino, uint32_t size);
  virtual Task<Status> removexattr(const RequestContext& ctx, InodeId ino, std::string_view name);

  virtual Task<Status> access(const RequestContext& ctx, InodeId ino, uint32_t mask);
  virtual Task<Status> fallocate(const RequestContext& ctx, InodeId ino, HandleId fh,
                                 uint64_t offset, uint64_t length, uint32_t mode);
  virtual Task<Result<uint64_t>> lseek(const RequestContext& ctx, InodeId ino, HandleId fh,
                                       uint64_t offset, uint32_t whence);
  virtual Task<Result<size_t>> copy_file_range(const RequestContext& ctx, InodeId ino_in,
                                               HandleId fh_in, uint64_t off_in, InodeId ino_out,
                                               HandleId fh_out, uint64_t off_out, uint64_t len,
                                               uint64_t flags);

  // ---- host files, for a backend stacked on others (DualFs copy-up) ----
  // Never reached by a guest request. Together they let a stacking backend copy a file of one
  // child into a file of another with copy_file_range(2) when both are host files.
  //
  // The host fd behind open file handle `fh` of `ino`, open for reading, whose bytes are exactly
  // what read() of that handle returns. Borrowed: valid until release() of the handle; the caller
  // only reads it, positionally. -1 (the default): no such fd; use read().
  virtual int host_fd(InodeId ino, HandleId fh) const;
  // Copies up to `len` bytes from the host fd `fd_in` (another backend's host_fd()) at `off_in`
  // into open file handle `fh_out` of `ino_out` at `off_out` with copy_file_range(2), off the
  // event loop, with the checks and accounting (read-only mount, quota) a write() of those bytes
  // would get. Returns the count copied, possibly short; 0 at the end of fd_in. EXDEV,
  // EOPNOTSUPP, EINVAL or ENOSYS: the host cannot copy between these two files (the default
  // answers EXDEV); the caller then copies through read() and write().
  virtual Task<Result<size_t>> copy_from_host_fd(const RequestContext& ctx, int fd_in,
                                                 uint64_t off_in, InodeId ino_out, HandleId fh_out,
                                                 uint64_t off_out, uint64_t len);
};

}  // namespace sandfs
