#include "core/session.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "core/backing_table.hpp"
#include "core/log.hpp"
#include "core/protocol/decoder.hpp"
#include "core/protocol/encoder.hpp"

namespace sandfs {

using namespace fuse;

namespace {

using Clock = std::chrono::steady_clock;
using IovList = boost::container::small_vector<iovec, 8>;

constexpr uint32_t page_size = 4096;
constexpr uint32_t max_write_limit = 256 * page_size;  // the kernel's default max_pages limit
constexpr uint32_t default_max_pages = 32;             // without FUSE_MAX_PAGES
constexpr uint64_t offset_max = static_cast<uint64_t>(INT64_MAX);

// Opcodes that are answered with no reply at all.
bool is_no_reply(uint32_t opcode) {
  return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
         opcode == FUSE_NOTIFY_REPLY;
}

// The first name of a request whose name sits at a fixed place (RequestInfo::name): up to its NUL,
// unvalidated; empty when absent or longer than a name may be.
std::string_view first_name(uint32_t opcode, std::span<const std::byte> args) {
  size_t skip = 0;
  switch (opcode) {
    case FUSE_LOOKUP:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_SYMLINK:
      break;
    case FUSE_MKDIR:
      skip = sizeof(fuse_mkdir_in);
      break;
    case FUSE_MKNOD:
      skip = sizeof(fuse_mknod_in);
      break;
    case FUSE_CREATE:
      skip = sizeof(fuse_create_in);
      break;
    case FUSE_LINK:
      skip = sizeof(fuse_link_in);
      break;
    case FUSE_RENAME:
      skip = sizeof(fuse_rename_in);
      break;
    case FUSE_RENAME2:
      skip = sizeof(fuse_rename2_in);
      break;
    default:
      return {};
  }
  if (args.size() <= skip) return {};
  const char* p = reinterpret_cast<const char*>(args.data()) + skip;
  const size_t room = std::min(args.size() - skip, name_max + 1);
  const void* nul = std::memchr(p, 0, room);
  if (!nul) return {};
  return std::string_view(p, static_cast<size_t>(static_cast<const char*>(nul) - p));
}

}  // namespace

// Requests being served, so FUSE_INTERRUPT can find them. Each request links a node that lives
// in its own coroutine frame into one of a few sharded intrusive lists: no allocation per
// request, and a shard lock held only to link or unlink. Interrupts are rare, so finding one
// scans a shard (a handful of requests in flight at most).
class Session::InFlight {
 public:
  struct Node {
    uint64_t unique = 0;
    volatile bool* flag = nullptr;
    Node* prev = nullptr;
    Node* next = nullptr;
  };

  void add(Node& n) {
    Shard& s = shard(n.unique);
    std::lock_guard lock(s.mutex);
    n.prev = nullptr;
    n.next = s.head;
    if (s.head) s.head->prev = &n;
    s.head = &n;
  }
  void remove(Node& n) {
    Shard& s = shard(n.unique);
    std::lock_guard lock(s.mutex);
    if (n.prev) {
      n.prev->next = n.next;
    } else {
      s.head = n.next;
    }
    if (n.next) n.next->prev = n.prev;
  }
  bool interrupt(uint64_t unique) {
    Shard& s = shard(unique);
    std::lock_guard lock(s.mutex);
    for (Node* n = s.head; n; n = n->next) {
      if (n->unique == unique) {
        *n->flag = true;
        return true;
      }
    }
    return false;
  }

 private:
  struct Shard {
    std::mutex mutex;
    Node* head = nullptr;
  };
  Shard& shard(uint64_t unique) { return shards_[(unique >> 1) % shards_.size()]; }
  std::array<Shard, 16> shards_;
};

// One request being answered: decoding of its arguments, the call into the filesystem, and the
// reply. Every reply goes through reply_*(), which sends exactly once.
struct Session::Dispatch {
  Session& s;
  ReplyChannel& ch;
  const RawRequest& req;
  RequestContext ctx;
  const IoVecs* trailing = nullptr;  // a WRITE's data kept by the transport (handle_write)
  int error = 0;
  uint64_t bytes = 0;  // payload moved, for the hooks (RequestOutcome::bytes)
  bool replied = false;

  Filesystem& fs() { return *s.fs_; }
  InodeId node() const { return req.header.nodeid; }

  void send(std::span<const iovec> payload) {
    fuse_out_header out{};
    size_t len = sizeof out;
    for (const iovec& v : payload)
      len += v.iov_len;
    out.len = static_cast<uint32_t>(len);
    out.error = -error;
    out.unique = req.header.unique;
    IovList iov;
    iov.push_back(iovec{&out, sizeof out});
    iov.insert(iov.end(), payload.begin(), payload.end());
    replied = true;
    ch.send(iov);
  }
  void reply_error(int e) {
    error = e > 0 ? e : EIO;
    send({});
  }
  void reply_ok() { send({}); }
  void reply_bytes(const void* data, size_t size) {
    iovec v{const_cast<void*>(data), size};
    send(std::span<const iovec>(&v, size ? 1 : 0));
  }
  template <class T>
  void reply_struct(const T& value) {
    reply_bytes(&value, sizeof value);
  }
  template <class T>
  void reply_status(const Result<T>& r) {
    if (!r) return reply_error(r.error());
    reply_ok();
  }
  void reply_entry(const Entry& e) { reply_struct(to_entry_out(e)); }
  // The fuse_open_out for a file or directory handle the backend opened, with passthrough
  // decided and registered when it was agreed.
  fuse_open_out open_out(InodeId ino, const OpenReply& r, bool dir);

  // Reads a fixed-size argument or answers EINVAL.
  template <class T>
  bool arg(ArgReader& r, T& out) {
    if (r.read(out)) return true;
    reply_error(EINVAL);
    return false;
  }
  // Reads and validates one path component.
  bool name(ArgReader& r, std::string_view& out) {
    if (!r.read_cstring(out, name_max)) {
      // Either no terminator or too long: tell them apart for a useful errno.
      reply_error(r.size() > name_max ? ENAMETOOLONG : EINVAL);
      return false;
    }
    if (int e = check_name(out); e != 0) {
      reply_error(e);
      return false;
    }
    return true;
  }
  bool offset_ok(uint64_t offset) {
    if (offset <= offset_max) return true;
    reply_error(EINVAL);
    return false;
  }

  Task<void> run();
  Task<void> op_init(ArgReader& r);
  Task<void> op_lookup(ArgReader& r);
  Task<void> op_getattr(ArgReader& r);
  Task<void> op_setattr(ArgReader& r);
  Task<void> op_readlink();
  Task<void> op_symlink(ArgReader& r);
  Task<void> op_mknod(ArgReader& r);
  Task<void> op_mkdir(ArgReader& r);
  Task<void> op_unlink(ArgReader& r, bool dir);
  Task<void> op_rename(ArgReader& r, bool v2);
  Task<void> op_link(ArgReader& r);
  Task<void> op_open(ArgReader& r, bool dir);
  Task<void> op_create(ArgReader& r);
  Task<void> op_read(ArgReader& r);
  Task<void> op_write(ArgReader& r);
  Task<void> op_release(ArgReader& r, bool dir);
  Task<void> op_flush(ArgReader& r);
  Task<void> op_fsync(ArgReader& r, bool dir);
  Task<void> op_readdir(ArgReader& r, bool plus);
  Task<void> op_statfs();
  Task<void> op_setxattr(ArgReader& r);
  Task<void> op_getxattr(ArgReader& r, bool list);
  Task<void> op_removexattr(ArgReader& r);
  Task<void> op_access(ArgReader& r);
  Task<void> op_fallocate(ArgReader& r);
  Task<void> op_lseek(ArgReader& r);
  Task<void> op_copy_file_range(ArgReader& r, bool wide);
  Task<void> op_destroy();
};

Session::Session(std::shared_ptr<Filesystem> fs, SessionOptions options)
    : fs_(std::move(fs)),
      options_(std::move(options)),
      stats_owner_(options_.stats ? options_.stats : std::make_shared<Stats>()),
      stats_(*stats_owner_),
      in_flight_(std::make_unique<InFlight>()) {
  std::vector<std::shared_ptr<Hook>> chain{stats_owner_};
  chain.insert(chain.end(), options_.hooks.begin(), options_.hooks.end());
  hooks_ = std::make_shared<HookChain>(std::move(chain));
  uint32_t w = options_.max_write / page_size * page_size;
  options_.max_write = std::clamp(w, page_size, max_write_limit);
  // Header, the largest fixed argument struct and a full WRITE payload, with room to spare; the
  // kernel refuses reads into buffers smaller than 8 KiB. Fixed here: INIT may only shrink
  // max_write, and transports size their buffers before INIT arrives.
  buffer_size_ = std::max<size_t>(min_read_buffer, size_t{options_.max_write} + page_size);
}

Session::~Session() = default;

size_t Session::request_buffer_size() const {
  return buffer_size_;
}

Task<void> Session::shutdown() {
  if (!fs_destroyed_.exchange(true)) co_await fs_->destroy();
}

Task<void> Session::handle(std::span<const std::byte> message, ReplyChannel& reply) {
  co_await handle_message(message, nullptr, reply);
}

Task<void> Session::handle_write(std::span<const std::byte> message, const IoVecs& data,
                                 ReplyChannel& reply) {
  co_await handle_message(message, &data, reply);
}

Task<void> Session::handle_message(std::span<const std::byte> message, const IoVecs* trailing,
                                   ReplyChannel& reply) {
  RawRequest req;
  std::optional<DecodeError> bad = split_request(message, req, trailing ? trailing->size : 0);
  if (!bad && trailing && req.header.opcode != FUSE_WRITE) bad = DecodeError::bad_length;
  if (auto err = bad) {
    stats_.add_malformed();
    SANDFS_LOG(debug) << options_.name << ": malformed request ("
                      << (*err == DecodeError::too_short ? "short" : "bad length") << ", "
                      << message.size() << " bytes)";
    if (*err != DecodeError::too_short && !is_no_reply(req.header.opcode)) {
      fuse_out_header out{sizeof(fuse_out_header), -EINVAL, req.header.unique};
      iovec v{&out, sizeof out};
      reply.send(std::span<const iovec>(&v, 1));
    }
    co_return;
  }

  const uint32_t opcode = req.header.opcode;
  const auto start = Clock::now();
  volatile bool interrupted = false;
  RequestContext ctx;
  ctx.uid = req.header.uid;
  ctx.gid = req.header.gid;
  ctx.pid = req.header.pid;
  ctx.unique = req.header.unique;
  ctx.interrupted = &interrupted;

  RequestInfo info;
  info.opcode = opcode;
  info.node = req.header.nodeid;
  info.ctx = &ctx;
  info.refusable = op_refusable(opcode);
  // Only hooks beyond the Stats look at names: no parsing for a mount without any.
  if (hooks_->size() > 1) info.name = first_name(opcode, req.args);
  size_t ran = 0;
  const int refused = hooks_->before(info, ran);
  const auto finish = [&](int error, uint64_t bytes) {
    RequestOutcome r;
    r.opcode = opcode;
    r.node = req.header.nodeid;
    r.ctx = &ctx;
    r.error = error;
    r.duration = Clock::now() - start;
    r.bytes = bytes;
    hooks_->after(r, ran);
  };

  // Requests without a reply are handled inline (none of them can be refused).
  if (opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET) {
    ArgReader r(req.args);
    int err = 0;
    if (opcode == FUSE_FORGET) {
      fuse_forget_in in{};
      if (r.read(in)) {
        fs_->forget(req.header.nodeid, in.nlookup);
      } else {
        err = EINVAL;
      }
    } else {
      fuse_batch_forget_in in{};
      if (r.read(in) && size_t{in.count} <= r.size() / sizeof(fuse_forget_one)) {
        for (uint32_t i = 0; i < in.count; ++i) {
          fuse_forget_one one{};
          r.read(one);
          fs_->forget(one.nodeid, one.nlookup);
        }
      } else {
        err = EINVAL;
      }
    }
    if (err) stats_.add_malformed();
    finish(err, 0);
    co_return;
  }
  if (opcode == FUSE_INTERRUPT) {
    ArgReader r(req.args);
    fuse_interrupt_in in{};
    int err = 0;
    if (r.read(in)) {
      // An unknown id means the request already finished (or never reached us): nothing to do.
      in_flight_->interrupt(in.unique);
    } else {
      err = EINVAL;
    }
    finish(err, 0);
    co_return;
  }
  if (opcode == FUSE_NOTIFY_REPLY) {
    finish(0, 0);
    co_return;
  }
  if (refused != 0) {
    fuse_out_header out{sizeof(fuse_out_header), -refused, req.header.unique};
    iovec v{&out, sizeof out};
    reply.send(std::span<const iovec>(&v, 1));
    finish(refused, 0);
    co_return;
  }

  Dispatch d{*this, reply, req, ctx};
  d.trailing = trailing;

  InFlight::Node registration{req.header.unique, &interrupted};
  in_flight_->add(registration);
  int failure = 0;
  try {
    co_await d.run();
  } catch (const std::bad_alloc&) {
    failure = ENOMEM;
  } catch (const std::exception& e) {
    SANDFS_LOG(error) << options_.name << ": " << opcode_name(opcode) << " threw: " << e.what();
    failure = EIO;
  }
  in_flight_->remove(registration);
  if (!d.replied) d.reply_error(failure ? failure : EIO);
  finish(d.error, d.bytes);
}

Task<void> Session::Dispatch::run() {
  const uint32_t opcode = req.header.opcode;
  ArgReader r(req.args);
  if (opcode == FUSE_INIT) co_return co_await op_init(r);
  if (!s.initialized()) co_return reply_error(EIO);
  if (s.destroyed()) co_return reply_error(ENODEV);

  switch (opcode) {
    case FUSE_LOOKUP:
      co_return co_await op_lookup(r);
    case FUSE_GETATTR:
      co_return co_await op_getattr(r);
    case FUSE_SETATTR:
      co_return co_await op_setattr(r);
    case FUSE_READLINK:
      co_return co_await op_readlink();
    case FUSE_SYMLINK:
      co_return co_await op_symlink(r);
    case FUSE_MKNOD:
      co_return co_await op_mknod(r);
    case FUSE_MKDIR:
      co_return co_await op_mkdir(r);
    case FUSE_UNLINK:
      co_return co_await op_unlink(r, false);
    case FUSE_RMDIR:
      co_return co_await op_unlink(r, true);
    case FUSE_RENAME:
      co_return co_await op_rename(r, false);
    case FUSE_RENAME2:
      co_return co_await op_rename(r, true);
    case FUSE_LINK:
      co_return co_await op_link(r);
    case FUSE_OPEN:
      co_return co_await op_open(r, false);
    case FUSE_OPENDIR:
      co_return co_await op_open(r, true);
    case FUSE_CREATE:
      co_return co_await op_create(r);
    case FUSE_READ:
      co_return co_await op_read(r);
    case FUSE_WRITE:
      co_return co_await op_write(r);
    case FUSE_RELEASE:
      co_return co_await op_release(r, false);
    case FUSE_RELEASEDIR:
      co_return co_await op_release(r, true);
    case FUSE_FLUSH:
      co_return co_await op_flush(r);
    case FUSE_FSYNC:
      co_return co_await op_fsync(r, false);
    case FUSE_FSYNCDIR:
      co_return co_await op_fsync(r, true);
    case FUSE_READDIR:
      co_return co_await op_readdir(r, false);
    case FUSE_READDIRPLUS:
      co_return co_await op_readdir(r, true);
    case FUSE_STATFS:
      co_return co_await op_statfs();
    case FUSE_SETXATTR:
      co_return co_await op_setxattr(r);
    case FUSE_GETXATTR:
      co_return co_await op_getxattr(r, false);
    case FUSE_LISTXATTR:
      co_return co_await op_getxattr(r, true);
    case FUSE_REMOVEXATTR:
      co_return co_await op_removexattr(r);
    case FUSE_ACCESS:
      co_return co_await op_access(r);
    case FUSE_FALLOCATE:
      co_return co_await op_fallocate(r);
    case FUSE_LSEEK:
      co_return co_await op_lseek(r);
    case FUSE_COPY_FILE_RANGE:
      co_return co_await op_copy_file_range(r, false);
    case FUSE_COPY_FILE_RANGE_64:
      co_return co_await op_copy_file_range(r, true);
    case FUSE_DESTROY:
      co_return co_await op_destroy();
    default:
      // Locks (not negotiated: the kernel keeps them local), ioctl, poll, bmap, DAX mappings,
      // syncfs, tmpfile, statx: the kernel remembers ENOSYS and falls back.
      co_return reply_error(ENOSYS);
  }
}

Task<void> Session::Dispatch::op_init(ArgReader& r) {
  fuse_init_in in{};
  if (!r.read_compat(in, FUSE_COMPAT_INIT_IN_SIZE)) co_return reply_error(EINVAL);
  if (s.initialized()) co_return reply_error(EPROTO);

  fuse_init_out out{};
  out.major = kernel_version;
  out.minor = kernel_minor_version;
  if (in.major > kernel_version) {
    // The kernel proposes a newer major: answer with ours and it will ask again.
    co_return reply_struct(out);
  }
  if (in.major < kernel_version || in.minor < min_minor_version) {
    SANDFS_LOG(error) << s.options_.name << ": FUSE protocol " << in.major << '.' << in.minor
                      << " is too old (sandfs needs 7." << min_minor_version << "+)";
    co_return reply_error(EPROTO);
  }

  uint64_t offered = in.flags;
  if (offered & FUSE_INIT_EXT) offered |= uint64_t{in.flags2} << 32;

  const Capabilities caps = fs().capabilities();
  uint64_t wanted = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_PARALLEL_DIROPS |
                    FUSE_MAX_PAGES | FUSE_ASYNC_DIO | FUSE_ABORT_ERROR | FUSE_INIT_EXT;
  if (caps.writeback_cache) wanted |= FUSE_WRITEBACK_CACHE;
  if (caps.readdirplus) wanted |= FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;
  if (caps.handle_killpriv_v2) wanted |= FUSE_HANDLE_KILLPRIV_V2;
  if (caps.atomic_o_trunc) wanted |= FUSE_ATOMIC_O_TRUNC;
  if (caps.cache_symlinks) wanted |= FUSE_CACHE_SYMLINKS;
  if (caps.posix_acl) wanted |= FUSE_POSIX_ACL;
  if (caps.export_support) wanted |= FUSE_EXPORT_SUPPORT;
  if (caps.direct_io_allow_mmap) wanted |= FUSE_DIRECT_IO_ALLOW_MMAP;
  // Kernel passthrough: the kernel ignores FUSE_PASSTHROUGH next to FUSE_WRITEBACK_CACHE (and
  // then refuses every backing file), so only one of them is asked for. Writeback wins: it is
  // an explicit mount option, and it helps every file rather than only host-backed ones.
  if (caps.passthrough && s.options_.passthrough && ch.supports_backing() &&
      (offered & FUSE_PASSTHROUGH)) {
    if (wanted & offered & FUSE_WRITEBACK_CACHE) {
      SANDFS_LOG(info) << s.options_.name
                       << ": kernel passthrough not requested: the writeback cache is on, and "
                          "the kernel allows only one of the two";
    } else {
      wanted |= FUSE_PASSTHROUGH;
    }
  }
  const uint64_t agreed = offered & wanted;

  uint32_t max_write = s.options_.max_write;
  if (!(agreed & FUSE_MAX_PAGES)) max_write = std::min(max_write, default_max_pages * page_size);

  SessionParams params;
  params.writeback_cache = (agreed & FUSE_WRITEBACK_CACHE) != 0;
  params.handle_killpriv_v2 = (agreed & FUSE_HANDLE_KILLPRIV_V2) != 0;
  params.dont_mask = (agreed & FUSE_DONT_MASK) != 0;
  params.proto_minor = std::min(in.minor, kernel_minor_version);
  params.max_write = max_write;
  params.passthrough = (agreed & FUSE_PASSTHROUGH) != 0;
  params.events = s.hooks_;
  // The backend must be ready before the kernel sees the reply and starts sending requests.
  Status st = co_await fs().init(params);
  if (!st) co_return reply_error(st.error());

  out.minor = params.proto_minor;
  out.max_readahead = in.max_readahead;
  out.flags = static_cast<uint32_t>(agreed);
  out.flags2 = static_cast<uint32_t>(agreed >> 32);
  out.max_background = s.options_.max_background;
  out.congestion_threshold = s.options_.congestion_threshold;
  out.max_write = max_write;
  out.time_gran = 1;
  out.max_pages = static_cast<uint16_t>(max_write / page_size);
  if (params.passthrough) {
    // Without a stack depth the kernel silently leaves passthrough off. 1: backing files must
    // live on an unstacked filesystem (ext4, xfs, tmpfs, ...; not overlayfs or another FUSE
    // passthrough mount, which the kernel refuses with ELOOP), and this mount counts as one
    // level, so overlayfs may still stack on top of it.
    out.max_stack_depth = 1;
    s.backing_ = std::make_unique<BackingTable>(s.options_.name, s.stats_);
  }

  s.proto_minor_ = params.proto_minor;
  s.negotiated_flags_ = agreed;
  s.options_.max_write = max_write;
  s.initialized_.store(true, std::memory_order_release);
  SANDFS_LOG(info) << s.options_.name << ": FUSE 7." << params.proto_minor
                   << " negotiated, flags 0x" << std::hex << agreed << std::dec << ", max_write "
                   << max_write << (params.writeback_cache ? ", writeback cache" : "")
                   << (params.passthrough ? ", passthrough" : "");
  reply_struct(out);
}

Task<void> Session::Dispatch::op_destroy() {
  co_await s.shutdown();
  s.destroyed_.store(true, std::memory_order_release);
  reply_ok();
}

Task<void> Session::Dispatch::op_lookup(ArgReader& r) {
  std::string_view n;
  if (!name(r, n)) co_return;
  auto res = co_await fs().lookup(ctx, node(), n);
  if (!res) co_return reply_error(res.error());
  reply_entry(*res);
}

Task<void> Session::Dispatch::op_getattr(ArgReader& r) {
  fuse_getattr_in in{};
  // Some peers send GETATTR with no argument at all; treat that as "no handle".
  r.read_compat(in, 0);
  std::optional<HandleId> fh;
  if (in.getattr_flags & FUSE_GETATTR_FH) fh = in.fh;
  auto res = co_await fs().getattr(ctx, node(), fh);
  if (!res) co_return reply_error(res.error());
  reply_struct(to_attr_out(*res));
}

Task<void> Session::Dispatch::op_setattr(ArgReader& r) {
  fuse_setattr_in in{};
  if (!arg(r, in)) co_return;
  SetAttrIn a;
  a.valid = in.valid;
  if (in.valid & FATTR_FH) a.fh = in.fh;
  a.mode = in.mode;
  a.uid = in.uid;
  a.gid = in.gid;
  a.size = in.size;
  a.atime = Timespec{static_cast<int64_t>(in.atime), in.atimensec};
  a.mtime = Timespec{static_cast<int64_t>(in.mtime), in.mtimensec};
  a.ctime = Timespec{static_cast<int64_t>(in.ctime), in.ctimensec};
  if ((in.valid & FATTR_SIZE) && in.size > offset_max) co_return reply_error(EFBIG);
  if (((in.valid & FATTR_ATIME) && in.atimensec >= 1'000'000'000) ||
      ((in.valid & FATTR_MTIME) && in.mtimensec >= 1'000'000'000)) {
    co_return reply_error(EINVAL);
  }
  auto res = co_await fs().setattr(ctx, node(), a);
  if (!res) co_return reply_error(res.error());
  reply_struct(to_attr_out(*res));
}

Task<void> Session::Dispatch::op_readlink() {
  auto res = co_await fs().readlink(ctx, node());
  if (!res) co_return reply_error(res.error());
  reply_bytes(res->data(), res->size());
}

Task<void> Session::Dispatch::op_symlink(ArgReader& r) {
  std::string_view n, target;
  if (!name(r, n)) co_return;
  if (!r.read_cstring(target, path_max - 1)) co_return reply_error(ENAMETOOLONG);
  if (target.empty()) co_return reply_error(ENOENT);
  auto res = co_await fs().symlink(ctx, node(), n, target);
  if (!res) co_return reply_error(res.error());
  reply_entry(*res);
}

Task<void> Session::Dispatch::op_mknod(ArgReader& r) {
  fuse_mknod_in in{};
  std::string_view n;
  if (!arg(r, in) || !name(r, n)) co_return;
  const uint32_t umask = (s.negotiated_flags_ & FUSE_DONT_MASK) ? in.umask : 0;
  auto res = co_await fs().mknod(ctx, node(), n, in.mode, in.rdev, umask);
  if (!res) co_return reply_error(res.error());
  reply_entry(*res);
}

Task<void> Session::Dispatch::op_mkdir(ArgReader& r) {
  fuse_mkdir_in in{};
  std::string_view n;
  if (!arg(r, in) || !name(r, n)) co_return;
  const uint32_t umask = (s.negotiated_flags_ & FUSE_DONT_MASK) ? in.umask : 0;
  auto res = co_await fs().mkdir(ctx, node(), n, in.mode, umask);
  if (!res) co_return reply_error(res.error());
  reply_entry(*res);
}

Task<void> Session::Dispatch::op_unlink(ArgReader& r, bool dir) {
  std::string_view n;
  if (!name(r, n)) co_return;
  Status st = dir ? co_await fs().rmdir(ctx, node(), n) : co_await fs().unlink(ctx, node(), n);
  reply_status(st);
}

Task<void> Session::Dispatch::op_rename(ArgReader& r, bool v2) {
  uint64_t new_dir = 0;
  uint32_t flags = 0;
  if (v2) {
    fuse_rename2_in in{};
    if (!arg(r, in)) co_return;
    new_dir = in.newdir;
    flags = in.flags;
  } else {
    fuse_rename_in in{};
    if (!arg(r, in)) co_return;
    new_dir = in.newdir;
  }
  std::string_view from, to;
  if (!name(r, from) || !name(r, to)) co_return;
  reply_status(co_await fs().rename(ctx, node(), from, new_dir, to, flags));
}

Task<void> Session::Dispatch::op_link(ArgReader& r) {
  fuse_link_in in{};
  std::string_view n;
  if (!arg(r, in) || !name(r, n)) co_return;
  auto res = co_await fs().link(ctx, in.oldnodeid, node(), n);
  if (!res) co_return reply_error(res.error());
  reply_entry(*res);
}

Task<void> Session::Dispatch::op_open(ArgReader& r, bool dir) {
  fuse_open_in in{};
  if (!arg(r, in)) co_return;
  auto res = dir ? co_await fs().opendir(ctx, node(), in.flags)
                 : co_await fs().open(ctx, node(), in.flags,
                                      (in.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0);
  if (!res) co_return reply_error(res.error());
  reply_struct(open_out(node(), *res, dir));
}

fuse_open_out Session::Dispatch::open_out(InodeId ino, const OpenReply& r, bool dir) {
  fuse_open_out out{};
  out.fh = r.fh;
  out.open_flags = r.open_flags & ~FOPEN_PASSTHROUGH;  // only set with a registered id
  if (dir || !s.backing_) return out;
  // Decided and recorded before the reply goes out: the kernel may send this handle's RELEASE
  // as soon as it has the reply.
  const BackingTable::Answer a = s.backing_->open(ino, r, ch);
  out.open_flags = a.open_flags;
  out.backing_id = a.backing_id;
  return out;
}

Task<void> Session::Dispatch::op_create(ArgReader& r) {
  fuse_create_in in{};
  std::string_view n;
  if (!arg(r, in) || !name(r, n)) co_return;
  const uint32_t umask = (s.negotiated_flags_ & FUSE_DONT_MASK) ? in.umask : 0;
  auto res = co_await fs().create(ctx, node(), n, in.mode, in.flags, umask,
                                  (in.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0);
  if (!res) co_return reply_error(res.error());
  struct {
    fuse_entry_out entry;
    fuse_open_out open;
  } out{};
  static_assert(sizeof out == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  out.entry = to_entry_out(res->entry);
  out.open = open_out(res->entry.ino, res->open, false);
  reply_struct(out);
}

Task<void> Session::Dispatch::op_read(ArgReader& r) {
  fuse_read_in in{};
  if (!arg(r, in) || !offset_ok(in.offset)) co_return;
  // The request bytes may share memory with the payload buffer from here on: use only `in`.
  uint32_t size = std::min(in.size, s.options_.max_write);
  IoVecs dst = size ? ch.payload_buffer(size) : IoVecs{};
  if (dst.size < size) size = static_cast<uint32_t>(dst.size);
  auto res = co_await fs().read(ctx, node(), in.fh, in.offset, size, dst);
  if (!res) co_return reply_error(res.error());
  size_t n = std::min<size_t>(*res, size);
  bytes = n;
  IovList payload;
  for (const iovec& v : dst.iov) {
    if (n == 0) break;
    const size_t take = std::min(n, v.iov_len);
    payload.push_back(iovec{v.iov_base, take});
    n -= take;
  }
  send(payload);
}

Task<void> Session::Dispatch::op_write(ArgReader& r) {
  fuse_write_in in{};
  if (!arg(r, in) || !offset_ok(in.offset)) co_return;
  if (in.size > s.options_.max_write) co_return reply_error(EINVAL);
  iovec v{};
  IoVecs src;
  if (trailing) {
    // The data stayed in the transport's memory: exactly in.size bytes, nothing else after
    // fuse_write_in.
    if (r.size() != 0 || trailing->size != in.size) co_return reply_error(EINVAL);
    src = *trailing;
  } else {
    std::span<const std::byte> data;
    if (!r.read_bytes(in.size, data)) co_return reply_error(EINVAL);
    v = iovec{const_cast<std::byte*>(data.data()), data.size()};
    src = IoVecs{std::span<const iovec>(&v, 1), data.size()};
  }
  auto res = co_await fs().write(ctx, node(), in.fh, in.offset, src,
                                 (in.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0);
  if (!res) co_return reply_error(res.error());
  const auto n = static_cast<uint32_t>(std::min<size_t>(*res, in.size));
  bytes = n;
  reply_struct(fuse_write_out{n, 0});
}

Task<void> Session::Dispatch::op_release(ArgReader& r, bool dir) {
  fuse_release_in in{};
  if (!arg(r, in)) co_return;
  // The kernel has closed the file; its backing id, if this was the inode's last passthrough
  // handle, is not needed any more.
  if (!dir && s.backing_) s.backing_->release(node(), in.fh, ch);
  reply_status(dir ? co_await fs().releasedir(ctx, node(), in.fh)
                   : co_await fs().release(ctx, node(), in.fh, in.flags));
}

Task<void> Session::Dispatch::op_flush(ArgReader& r) {
  fuse_flush_in in{};
  if (!arg(r, in)) co_return;
  reply_status(co_await fs().flush(ctx, node(), in.fh, in.lock_owner));
}

Task<void> Session::Dispatch::op_fsync(ArgReader& r, bool dir) {
  fuse_fsync_in in{};
  if (!arg(r, in)) co_return;
  const bool datasync = (in.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0;
  reply_status(dir ? co_await fs().fsyncdir(ctx, node(), in.fh, datasync)
                   : co_await fs().fsync(ctx, node(), in.fh, datasync));
}

namespace {
class PackingSink final : public DirSink, public DirPlusSink {
 public:
  explicit PackingSink(std::span<std::byte> buffer) : packer_(buffer) {}
  bool add(std::string_view name, InodeId ino, uint32_t dtype, uint64_t next_offset) override {
    return packer_.add(name, ino, dtype, next_offset);
  }
  bool add(std::string_view name, const Entry& entry, uint32_t dtype,
           uint64_t next_offset) override {
    return packer_.add_plus(name, entry, dtype, next_offset);
  }
  size_t used() const { return packer_.used(); }

 private:
  DirentPacker packer_;
};
}  // namespace

Task<void> Session::Dispatch::op_readdir(ArgReader& r, bool plus) {
  fuse_read_in in{};
  if (!arg(r, in)) co_return;
  const size_t size = std::min<size_t>(in.size, s.options_.max_write);
  // Pack straight into transport memory when it is one contiguous piece; otherwise into a
  // buffer owned by this request (never a thread-local one: the backend may suspend).
  std::vector<std::byte> owned;
  std::span<std::byte> buffer;
  IoVecs dst = size ? ch.payload_buffer(size) : IoVecs{};
  if (dst.iov.size() == 1 && dst.iov[0].iov_len >= size) {
    buffer = std::span<std::byte>(static_cast<std::byte*>(dst.iov[0].iov_base), size);
  } else {
    owned.resize(size);
    buffer = owned;
  }
  PackingSink sink(buffer);
  Status st = plus ? co_await fs().readdirplus(ctx, node(), in.fh, in.offset, sink)
                   : co_await fs().readdir(ctx, node(), in.fh, in.offset, sink);
  if (!st) co_return reply_error(st.error());
  reply_bytes(buffer.data(), sink.used());
}

Task<void> Session::Dispatch::op_statfs() {
  auto res = co_await fs().statfs(ctx, node());
  if (!res) co_return reply_error(res.error());
  reply_struct(fuse_statfs_out{to_kstatfs(*res)});
}

Task<void> Session::Dispatch::op_setxattr(ArgReader& r) {
  // Without FUSE_SETXATTR_EXT the kernel sends only {size, flags}.
  fuse_setxattr_in in{};
  if (s.negotiated_flags_ & FUSE_SETXATTR_EXT) {
    if (!arg(r, in)) co_return;
  } else {
    struct {
      uint32_t size, flags;
    } compat{};
    static_assert(sizeof compat == FUSE_COMPAT_SETXATTR_IN_SIZE);
    if (!arg(r, compat)) co_return;
    in.size = compat.size;
    in.flags = compat.flags;
  }
  std::string_view n;
  if (!r.read_cstring(n, xattr_name_max)) co_return reply_error(ERANGE);
  if (n.empty()) co_return reply_error(EINVAL);
  if (in.size > xattr_size_max) co_return reply_error(E2BIG);
  std::span<const std::byte> value;
  if (!r.read_bytes(in.size, value)) co_return reply_error(EINVAL);
  reply_status(co_await fs().setxattr(
      ctx, node(), n,
      std::span<const char>(reinterpret_cast<const char*>(value.data()), value.size()), in.flags));
}

Task<void> Session::Dispatch::op_getxattr(ArgReader& r, bool list) {
  fuse_getxattr_in in{};
  if (!arg(r, in)) co_return;
  Result<XattrReply> res = Errno{EIO};
  if (list) {
    res = co_await fs().listxattr(ctx, node(), in.size);
  } else {
    std::string_view n;
    if (!r.read_cstring(n, xattr_name_max)) co_return reply_error(ERANGE);
    if (n.empty()) co_return reply_error(EINVAL);
    res = co_await fs().getxattr(ctx, node(), n, in.size);
  }
  if (!res) co_return reply_error(res.error());
  if (in.size == 0) co_return reply_struct(fuse_getxattr_out{res->size, 0});
  if (res->data.size() > in.size) co_return reply_error(ERANGE);
  reply_bytes(res->data.data(), res->data.size());
}

Task<void> Session::Dispatch::op_removexattr(ArgReader& r) {
  std::string_view n;
  if (!r.read_cstring(n, xattr_name_max)) co_return reply_error(ERANGE);
  if (n.empty()) co_return reply_error(EINVAL);
  reply_status(co_await fs().removexattr(ctx, node(), n));
}

Task<void> Session::Dispatch::op_access(ArgReader& r) {
  fuse_access_in in{};
  if (!arg(r, in)) co_return;
  reply_status(co_await fs().access(ctx, node(), in.mask));
}

Task<void> Session::Dispatch::op_fallocate(ArgReader& r) {
  fuse_fallocate_in in{};
  if (!arg(r, in) || !offset_ok(in.offset)) co_return;
  if (in.length == 0 || in.length > offset_max - in.offset) co_return reply_error(EINVAL);
  reply_status(co_await fs().fallocate(ctx, node(), in.fh, in.offset, in.length, in.mode));
}

Task<void> Session::Dispatch::op_lseek(ArgReader& r) {
  fuse_lseek_in in{};
  if (!arg(r, in)) co_return;
  auto res = co_await fs().lseek(ctx, node(), in.fh, in.offset, in.whence);
  if (!res) co_return reply_error(res.error());
  reply_struct(fuse_lseek_out{*res});
}

Task<void> Session::Dispatch::op_copy_file_range(ArgReader& r, bool wide) {
  fuse_copy_file_range_in in{};
  if (!arg(r, in) || !offset_ok(in.off_in) || !offset_ok(in.off_out)) co_return;
  uint64_t len = in.len;
  if (!wide) len = std::min<uint64_t>(len, UINT32_MAX & ~uint64_t{page_size - 1});
  auto res = co_await fs().copy_file_range(ctx, node(), in.fh_in, in.off_in, in.nodeid_out,
                                           in.fh_out, in.off_out, len, in.flags);
  if (!res) co_return reply_error(res.error());
  const uint64_t n = std::min<uint64_t>(*res, len);
  bytes = n;
  if (wide) co_return reply_struct(fuse_copy_file_range_out{n});
  reply_struct(fuse_write_out{static_cast<uint32_t>(n), 0});
}

}  // namespace sandfs
