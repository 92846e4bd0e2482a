#include "core/hooks.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "core/protocol/fuse_kernel.hpp"
#include "core/stats.hpp"

namespace sandfs {

const char* to_string(BackendEvent::Kind kind) {
  switch (kind) {
    case BackendEvent::Kind::copy_up:
      return "copy_up";
    case BackendEvent::Kind::promotion:
      return "promotion";
  }
  return "unknown";
}

HookChain::HookChain(std::vector<std::shared_ptr<Hook>> hooks) : hooks_(std::move(hooks)) {
  std::erase(hooks_, nullptr);
}

int HookChain::before(const RequestInfo& op, size_t& ran) const {
  ran = 0;
  for (const auto& h : hooks_) {
    int e = 0;
    try {
      e = h->before(op);
    } catch (...) {
      e = EIO;
    }
    ++ran;
    if (e != 0 && op.refusable) return e > 0 ? e : EIO;
  }
  return 0;
}

// A hook that throws from after() or event() breaks its contract; the request and the other
// hooks go on (the Session promises never to throw).
void HookChain::after(const RequestOutcome& result, size_t ran) const {
  const size_t n = std::min(ran, hooks_.size());
  for (size_t i = 0; i < n; ++i) {
    try {
      hooks_[i]->after(result);
    } catch (...) {
    }
  }
}

void HookChain::event(const BackendEvent& e) const {
  for (const auto& h : hooks_) {
    try {
      h->event(e);
    } catch (...) {
    }
  }
}

bool op_refusable(uint32_t opcode) {
  using namespace fuse;
  switch (opcode) {
    case FUSE_INIT:
    case FUSE_DESTROY:
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
    case FUSE_NOTIFY_REPLY:
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
      return false;
    default:
      return true;
  }
}

std::optional<uint32_t> opcode_from_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return std::nullopt;
  char upper[33] = {};
  for (size_t i = 0; i < name.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[i])));
  const std::string_view wanted(upper, name.size());
  // opcode_name() is the one table of names; opcodes are small numbers. Its fallback for
  // numbers without a name is no opcode.
  if (wanted == "UNKNOWN") return std::nullopt;
  for (uint32_t op = 1; op < 64; ++op) {
    if (wanted == opcode_name(op)) return op;
  }
  return std::nullopt;
}

namespace {

constexpr int max_errno = 4095;

std::optional<int> parse_errno(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    int n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end != text.data() + text.size() || n < 1 || n > max_errno) {
      return std::nullopt;
    }
    return n;
  }
  for (int e = 1; e < 200; ++e) {
    const char* name = ::strerrorname_np(e);
    if (name && text == name) return e;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> parse_deny_rule(std::string_view text, DenyRule& out) {
  const size_t eq = text.find('=');
  const std::string_view op = text.substr(0, eq);
  const std::optional<uint32_t> code = opcode_from_name(op);
  if (!code) {
    return "unknown operation '" + std::string(op) +
           "' (a FUSE opcode name: UNLINK, RMDIR, MKDIR, SETXATTR, WRITE, ...)";
  }
  if (!op_refusable(*code)) {
    return std::string(opcode_name(*code)) +
           " cannot be refused (INIT, DESTROY, FORGET, BATCH_FORGET, INTERRUPT, NOTIFY_REPLY, "
           "RELEASE and RELEASEDIR always run)";
  }
  if (*code >= 64) return "operation '" + std::string(op) + "' cannot be refused";
  int error = EPERM;
  if (eq != std::string_view::npos) {
    const std::string_view value = text.substr(eq + 1);
    const std::optional<int> e = parse_errno(value);
    if (!e) {
      return "unknown errno '" + std::string(value) + "' (a name such as EACCES, or 1-" +
             std::to_string(max_errno) + ")";
    }
    error = *e;
  }
  out.opcode = *code;
  out.error = error;
  return std::nullopt;
}

DenyHook::DenyHook(const std::vector<DenyRule>& rules) {
  for (const DenyRule& r : rules) {
    if (r.opcode < slots && op_refusable(r.opcode) && r.error > 0) errors_[r.opcode] = r.error;
  }
}

int DenyHook::before(const RequestInfo& op) {
  return op.opcode < slots ? errors_[op.opcode] : 0;
}

}  // namespace sandfs
