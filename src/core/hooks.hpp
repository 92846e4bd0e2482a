// Hooks: observe every operation of a mount, optionally refuse it, and hear backend events.
//
// A mount's Session runs one chain of Hooks (SessionOptions::hooks, after the mount's Stats,
// which is itself the chain's first hook). The Session is where every opcode passes, from
// /dev/fuse and from vhost-user alike, so a hook sees every request of every backend.
//
// ## Per request
// * before(op) runs on each hook in chain order once the message is decoded (fuse_in_header
//   valid, length right) and before anything else: argument checks, the FUSE_INIT state, the
//   backend. It returns 0 to let the request go on, or a positive errno to refuse it: the chain
//   stops there, the backend is not called and the kernel gets that errno. A refused request is
//   refused before its arguments are checked, so a malformed one gets the hook's errno rather
//   than EINVAL.
// * after(result) runs, in chain order, on every hook whose before() ran (the refusing hook
//   included, the ones after it not), once the reply was sent: the errno the guest got (0:
//   success; the refusal's for a refused request), the time from decoding to reply, and the
//   payload bytes moved (READ: bytes read; WRITE, COPY_FILE_RANGE: bytes written; else 0).
// * Refusable: every opcode except the ones the kernel or the server cannot do without:
//   INIT and DESTROY (set up and tear down the connection), FORGET, BATCH_FORGET, INTERRUPT and
//   NOTIFY_REPLY (no reply exists to carry an errno, and a lost FORGET leaks the inode), RELEASE
//   and RELEASEDIR (the kernel has closed the file already and ignores the answer: refusing
//   would only leak the backend's handle). before() still runs for them with
//   RequestInfo::refusable false, and what it returns is ignored. op_refusable() says which are.
//   Refusing LOOKUP, GETATTR or OPENDIR of the root makes the mount unusable; that is the
//   caller's choice.
// * Malformed messages (too short, lengths that disagree) reach no hook: the Session answers
//   EINVAL itself and counts them (Stats::add_malformed).
//
// ## Backend events
// A backend reports what happens inside it through the EventSink it is given at init
// (SessionParams::events): DualFs reports each copy-up and directory promotion (node, bytes,
// duration, outcome). The chain hands each event to every hook's event(), in chain order. An
// event happens inside some request, on that request's thread; it carries no request context.
//
// ## Rules for hook code
// * Called from every server thread at once: a hook must be thread-safe, and must not block
//   (no host I/O, no waiting on a lock another request may hold for long). It runs on the event
//   loop between a request's decoding and its backend call.
// * No allocation and no strings per request on the hot path: the chain is fixed when the
//   Session is built; RequestInfo points into the request (its name view is valid only during the
//   call). A mount with no hook but its Stats pays for one virtual call before and one after
//   each request.
// * Hooks must not throw. An exception escaping before() is a refusal with EIO (for a refusable
//   opcode); one escaping after() or event() is dropped.
#pragma once

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/filesystem.hpp"

namespace sandfs {

// One request, as before() sees it.
struct RequestInfo {
  uint32_t opcode = 0;  // FUSE_* (opcode_name() gives the kernel's name)
  InodeId node = 0;     // fuse_in_header.nodeid: the inode, or the parent for name operations
  // The request's first name where it sits at a fixed place: LOOKUP, UNLINK, RMDIR, MKDIR, MKNOD,
  // CREATE, SYMLINK, LINK (the new name), RENAME and RENAME2 (the old name). Empty otherwise.
  // The guest's bytes, not yet validated (the request may still fail with EINVAL); filled only
  // when the chain holds a hook beyond the mount's Stats.
  std::string_view name;
  const RequestContext* ctx = nullptr;  // uid, gid, pid, unique; never null
  bool refusable = true;                // false: before()'s answer is ignored (see above)
};

// One finished request, as after() sees it.
struct RequestOutcome {
  uint32_t opcode = 0;
  InodeId node = 0;
  const RequestContext* ctx = nullptr;
  int error = 0;                        // 0 or the positive errno the guest got
  std::chrono::nanoseconds duration{};  // decoding to reply
  uint64_t bytes = 0;                   // payload: READ read, WRITE / COPY_FILE_RANGE written
};

// Something that happened inside a backend.
struct BackendEvent {
  enum class Kind {
    copy_up,    // a file, symlink or special file given an upper copy (DualFs)
    promotion,  // a directory created on the upper side to hold a copy-up (DualFs)
  };
  Kind kind = Kind::copy_up;
  InodeId node = 0;                     // the backend's inode (DualFs's number)
  uint64_t bytes = 0;                   // data bytes copied (0 for a promotion or a failure)
  std::chrono::nanoseconds duration{};  // including the promotion of missing ancestors
  int error = 0;                        // 0: done; else why it failed
};

const char* to_string(BackendEvent::Kind kind);

// Where a backend reports events. Thread-safe; never blocks.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void event(const BackendEvent& e) const = 0;
};

class Hook {
 public:
  virtual ~Hook() = default;
  // 0: go on; a positive errno: refuse (ignored when !op.refusable).
  virtual int before(const RequestInfo& op) {
    (void)op;
    return 0;
  }
  virtual void after(const RequestOutcome& result) { (void)result; }
  virtual void event(const BackendEvent& e) { (void)e; }
};

// The hooks of one mount, in order. Fixed at construction; thread-safe to call.
class HookChain final : public EventSink {
 public:
  explicit HookChain(std::vector<std::shared_ptr<Hook>> hooks);

  // Runs before() in order. Returns 0 or the refusing errno; `ran` is how many hooks ran (pass
  // it to after()).
  int before(const RequestInfo& op, size_t& ran) const;
  // Runs after() on the first `ran` hooks.
  void after(const RequestOutcome& result, size_t ran) const;
  void event(const BackendEvent& e) const override;

  size_t size() const { return hooks_.size(); }

 private:
  std::vector<std::shared_ptr<Hook>> hooks_;
};

// Whether a hook may refuse `opcode` (see "Refusable" above).
bool op_refusable(uint32_t opcode);

// The opcode a kernel name stands for ("UNLINK", "unlink", "SETXATTR", ...), if any.
std::optional<uint32_t> opcode_from_name(std::string_view name);

// A built-in refusal: every request with `opcode` gets `error`.
struct DenyRule {
  uint32_t opcode = 0;
  int error = EPERM;
};

// Parses "OP[=ERRNO]" (`sandfsd mount --deny`): OP an opcode name (UNLINK, SETXATTR, ...; any
// case), ERRNO a name (EACCES) or a number (1-4095), EPERM when left out. Returns why it is
// wrong: an unknown opcode or errno, or an opcode that cannot be refused.
std::optional<std::string> parse_deny_rule(std::string_view text, DenyRule& out);

// Refuses each rule's opcode with its errno (the last rule for an opcode wins). A table lookup
// per request.
class DenyHook final : public Hook {
 public:
  explicit DenyHook(const std::vector<DenyRule>& rules);
  int before(const RequestInfo& op) override;

 private:
  static constexpr size_t slots = 64;
  std::array<int, slots> errors_{};
};

}  // namespace sandfs
