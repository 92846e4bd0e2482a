// Hooks: the chain a Session runs on every request (order, refusals, what after() sees), backend
// events reaching the Stats and every hook, the built-in DenyHook and its "OP[=ERRNO]" parser.
#include <mutex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/hooks.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"
#include "session_harness.hpp"

using namespace sandfs;
using namespace sandfs::fuse;
using namespace sandfs::session_test;

namespace {

// Records what it sees under a tag; refuses one opcode when told to.
class Recorder final : public Hook {
 public:
  Recorder(std::string tag, std::vector<std::string>& log) : tag_(std::move(tag)), log_(log) {}

  uint32_t refuse_opcode = 0;
  int refuse_with = 0;
  std::vector<RequestInfo> befores;
  std::vector<std::string> names;
  std::vector<RequestOutcome> afters;
  std::vector<BackendEvent> events;

  int before(const RequestInfo& op) override {
    log_.push_back(tag_ + ":before:" + opcode_name(op.opcode));
    befores.push_back(op);
    names.emplace_back(op.name);
    return op.opcode == refuse_opcode ? refuse_with : 0;
  }
  void after(const RequestOutcome& r) override {
    log_.push_back(tag_ + ":after:" + opcode_name(r.opcode));
    afters.push_back(r);
  }
  void event(const BackendEvent& e) override { events.push_back(e); }

 private:
  std::string tag_;
  std::vector<std::string>& log_;
};

struct Chain {
  std::vector<std::string> log;
  std::shared_ptr<Recorder> first = std::make_shared<Recorder>("first", log);
  std::shared_ptr<Recorder> second = std::make_shared<Recorder>("second", log);
  std::unique_ptr<Harness> h;

  Chain() {
    SessionOptions o;
    o.hooks = {first, second};
    h = std::make_unique<Harness>(true, std::move(o));
    log.clear();
    first->befores.clear();
    first->names.clear();
    first->afters.clear();
    second->befores.clear();
    second->names.clear();
    second->afters.clear();
  }
};

uint64_t op_count(const Stats::Snapshot& s, uint32_t opcode, uint64_t* errors = nullptr) {
  for (const auto& op : s.ops) {
    if (op.opcode == opcode) {
      if (errors) *errors = op.errors;
      return op.count;
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("hooks see every request in order, before and after", "[hooks]") {
  Chain c;
  c.h->send(Msg(FUSE_LOOKUP, 5, 7).str("name").done());
  CHECK(c.h->ch.header().error == 0);
  CHECK(c.h->fs->lookups == 1);
  CHECK(c.log == std::vector<std::string>{"first:before:LOOKUP", "second:before:LOOKUP",
                                          "first:after:LOOKUP", "second:after:LOOKUP"});
  REQUIRE(c.first->befores.size() == 1);
  const RequestInfo& op = c.first->befores[0];
  CHECK(op.opcode == FUSE_LOOKUP);
  CHECK(op.node == 5);
  CHECK(op.refusable);
  REQUIRE(op.ctx != nullptr);
  CHECK(c.first->names[0] == "name");
  REQUIRE(c.second->afters.size() == 1);
  const RequestOutcome& r = c.second->afters[0];
  CHECK(r.opcode == FUSE_LOOKUP);
  CHECK(r.node == 5);
  CHECK(r.error == 0);
  CHECK(r.duration.count() >= 0);
  CHECK(r.bytes == 0);
}

TEST_CASE("hooks see the request's credentials", "[hooks]") {
  struct Creds final : Hook {
    uint32_t uid = 0, gid = 0, pid = 0;
    uint64_t unique = 0;
    int before(const RequestInfo& op) override {
      uid = op.ctx->uid;
      gid = op.ctx->gid;
      pid = op.ctx->pid;
      unique = op.ctx->unique;
      return 0;
    }
  };
  auto creds = std::make_shared<Creds>();
  SessionOptions o;
  o.hooks = {creds};
  Harness h(true, std::move(o));
  h.send(Msg(FUSE_GETATTR, 1, 77).add(fuse_getattr_in{}).done());
  CHECK(creds->uid == 1000);
  CHECK(creds->gid == 1000);
  CHECK(creds->pid == 42);
  CHECK(creds->unique == 77);
}

TEST_CASE("a refusal stops the chain and the backend, and the guest gets its errno", "[hooks]") {
  Chain c;
  c.first->refuse_opcode = FUSE_LOOKUP;
  c.first->refuse_with = EACCES;
  c.h->send(Msg(FUSE_LOOKUP, 1, 9).str("name").done());
  const fuse_out_header hdr = c.h->ch.header();
  CHECK(hdr.error == -EACCES);
  CHECK(hdr.unique == 9);
  CHECK(hdr.len == sizeof(fuse_out_header));
  CHECK(c.h->fs->lookups == 0);
  // The second hook never saw it; the first one's after() reports the refusal.
  CHECK(c.log == std::vector<std::string>{"first:before:LOOKUP", "first:after:LOOKUP"});
  REQUIRE(c.first->afters.size() == 1);
  CHECK(c.first->afters[0].error == EACCES);
  // The Stats (first in every chain) counted it as an error, with nothing left in flight.
  const Stats::Snapshot s = c.h->session->stats().snapshot();
  uint64_t errors = 0;
  CHECK(op_count(s, FUSE_LOOKUP, &errors) == 1);
  CHECK(errors == 1);
  CHECK(s.in_flight == 0);
  REQUIRE(s.errors_by_errno.size() == 1);
  CHECK(s.errors_by_errno[0].first == EACCES);

  SECTION("other opcodes still run") {
    c.h->send(Msg(FUSE_MKDIR, 1, 10).add(fuse_mkdir_in{0755, 022}).str("d").done());
    CHECK(c.h->ch.header(1).error == 0);
    CHECK(c.h->fs->last_name == "d");
    CHECK(c.second->names.back() == "d");
  }
  SECTION("the second hook's refusal runs the first's after() too") {
    c.first->refuse_opcode = 0;
    c.second->refuse_opcode = FUSE_LOOKUP;
    c.second->refuse_with = EROFS;
    c.log.clear();
    c.h->send(Msg(FUSE_LOOKUP, 1, 11).str("x").done());
    CHECK(c.h->ch.header(1).error == -EROFS);
    CHECK(c.log == std::vector<std::string>{"first:before:LOOKUP", "second:before:LOOKUP",
                                            "first:after:LOOKUP", "second:after:LOOKUP"});
    CHECK(c.h->fs->lookups == 0);
  }
}

TEST_CASE("what a hook answers for an unrefusable opcode is ignored", "[hooks]") {
  Chain c;
  c.first->refuse_opcode = FUSE_FORGET;
  c.first->refuse_with = EPERM;
  c.h->send(Msg(FUSE_FORGET, 33).add(fuse_forget_in{4}).done());
  CHECK(c.h->ch.replies.empty());
  REQUIRE(c.h->fs->forgets.size() == 1);  // it ran
  REQUIRE(c.first->befores.size() == 1);
  CHECK_FALSE(c.first->befores[0].refusable);
  REQUIRE(c.second->afters.size() == 1);  // the chain went on
  CHECK(c.second->afters[0].error == 0);

  for (uint32_t op : {FUSE_INIT, FUSE_DESTROY, FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT,
                      FUSE_NOTIFY_REPLY, FUSE_RELEASE, FUSE_RELEASEDIR}) {
    CHECK_FALSE(op_refusable(op));
  }
  for (uint32_t op : {FUSE_LOOKUP, FUSE_UNLINK, FUSE_WRITE, FUSE_SETXATTR, FUSE_FLUSH}) {
    CHECK(op_refusable(op));
  }
}

TEST_CASE("after() gets the errno and the bytes moved", "[hooks]") {
  Chain c;
  c.h->send(Msg(FUSE_LOOKUP, 1, 3).str("missing").done());
  fuse_read_in rd{};
  rd.size = 100;
  c.h->send(Msg(FUSE_READ, 1, 4).add(rd).done());
  fuse_write_in wr{};
  wr.size = 6;
  c.h->send(Msg(FUSE_WRITE, 1, 5).add(wr).str("abcdef", false).done());
  REQUIRE(c.second->afters.size() == 3);
  CHECK(c.second->afters[0].error == ENOENT);
  CHECK(c.second->afters[1].error == 0);
  CHECK(c.second->afters[1].bytes == 10);  // the fake reads 10 bytes
  CHECK(c.second->afters[2].bytes == 6);
  const Stats::Snapshot s = c.h->session->stats().snapshot();
  CHECK(s.bytes_read == 10);
  CHECK(s.bytes_written == 6);
}

TEST_CASE("names are only parsed when a hook beyond the Stats is installed", "[hooks]") {
  Chain c;
  fuse_rename_in rn{};
  rn.newdir = 1;
  c.h->send(Msg(FUSE_RENAME, 1, 3).add(rn).str("old").str("new").done());
  fuse_link_in ln{};
  ln.oldnodeid = 9;
  c.h->send(Msg(FUSE_LINK, 1, 4).add(ln).str("alias").done());
  // A name with no terminator is not made up.
  c.h->send(Msg(FUSE_UNLINK, 1, 5).str("unterminated", false).done());
  fuse_getattr_in ga{};
  c.h->send(Msg(FUSE_GETATTR, 1, 6).add(ga).done());
  REQUIRE(c.first->names.size() == 4);
  CHECK(c.first->names[0] == "old");
  CHECK(c.first->names[1] == "alias");
  CHECK(c.first->names[2].empty());
  CHECK(c.first->names[3].empty());
}

TEST_CASE("backend events reach the Stats and every hook", "[hooks]") {
  Chain c;
  // The backend got the chain at INIT.
  REQUIRE(c.h->fs->params.events != nullptr);
  CHECK(c.h->fs->params.events.get() == c.h->session->hooks().get());
  BackendEvent done;
  done.kind = BackendEvent::Kind::copy_up;
  done.node = 12;
  done.bytes = 4096;
  done.duration = std::chrono::microseconds(300);
  c.h->fs->params.events->event(done);
  BackendEvent failed = done;
  failed.error = ENOSPC;
  failed.bytes = 100;
  c.h->fs->params.events->event(failed);
  BackendEvent promo;
  promo.kind = BackendEvent::Kind::promotion;
  c.h->fs->params.events->event(promo);

  REQUIRE(c.first->events.size() == 3);
  REQUIRE(c.second->events.size() == 3);
  CHECK(c.second->events[0].node == 12);
  CHECK(c.second->events[1].error == ENOSPC);
  const Stats::Snapshot s = c.h->session->stats().snapshot();
  CHECK(s.copy_ups == 1);
  CHECK(s.copy_up_failures == 1);
  CHECK(s.copy_up_bytes == 4096);  // a failed copy's bytes are not counted
  CHECK(s.copy_up_total_ns == 300'000);
  CHECK(s.copy_up_us_log2[9] == 1);  // 256 us <= 300 us < 512 us
  CHECK(s.promotions == 1);
  CHECK(s.promotion_failures == 0);
  const std::string text = c.h->session->stats().to_text();
  CHECK(text.find("copy-ups 1 (1 failed, 4096 B, mean 300 us), promotions 1 (0 failed)") !=
        std::string::npos);
}

TEST_CASE("a mount with no hooks still counts through its Stats", "[hooks]") {
  Harness h;
  CHECK(h.session->hooks()->size() == 1);
  h.send(Msg(FUSE_LOOKUP, 1, 3).str("a").done());
  CHECK(op_count(h.session->stats().snapshot(), FUSE_LOOKUP) == 1);
}

TEST_CASE("DenyHook refuses its opcodes with their errnos", "[hooks]") {
  DenyHook deny(
      {{FUSE_UNLINK, EACCES}, {FUSE_SETXATTR, EPERM}, {FUSE_UNLINK, EROFS}, {FUSE_FORGET, EPERM}});
  SessionOptions o;
  o.hooks = {std::make_shared<DenyHook>(std::vector<DenyRule>{{FUSE_LOOKUP, EACCES}})};
  Harness h(true, std::move(o));
  h.send(Msg(FUSE_LOOKUP, 1, 3).str("a").done());
  CHECK(h.ch.header().error == -EACCES);
  CHECK(h.fs->lookups == 0);
  h.send(Msg(FUSE_MKDIR, 1, 4).add(fuse_mkdir_in{0755, 022}).str("d").done());
  CHECK(h.ch.header(1).error == 0);

  RequestContext ctx;
  RequestInfo op;
  op.ctx = &ctx;
  op.opcode = FUSE_UNLINK;
  CHECK(deny.before(op) == EROFS);  // the last rule for an opcode wins
  op.opcode = FUSE_SETXATTR;
  CHECK(deny.before(op) == EPERM);
  op.opcode = FUSE_FORGET;
  CHECK(deny.before(op) == 0);  // never refusable
  op.opcode = FUSE_RMDIR;
  CHECK(deny.before(op) == 0);
  op.opcode = 5000;
  CHECK(deny.before(op) == 0);
}

TEST_CASE("deny rules parse OP[=ERRNO] and say what is wrong", "[hooks]") {
  DenyRule r;
  CHECK_FALSE(parse_deny_rule("UNLINK=EACCES", r));
  CHECK(r.opcode == FUSE_UNLINK);
  CHECK(r.error == EACCES);
  CHECK_FALSE(parse_deny_rule("setxattr", r));
  CHECK(r.opcode == FUSE_SETXATTR);
  CHECK(r.error == EPERM);
  CHECK_FALSE(parse_deny_rule("Mknod=13", r));
  CHECK(r.opcode == FUSE_MKNOD);
  CHECK(r.error == 13);
  CHECK_FALSE(parse_deny_rule("COPY_FILE_RANGE_64=EXDEV", r));
  CHECK(r.opcode == FUSE_COPY_FILE_RANGE_64);
  CHECK(r.error == EXDEV);

  auto why = parse_deny_rule("UNLNK", r);
  REQUIRE(why);
  CHECK(why->find("unknown operation 'UNLNK'") != std::string::npos);
  why = parse_deny_rule("FORGET", r);
  REQUIRE(why);
  CHECK(why->find("FORGET cannot be refused") != std::string::npos);
  for (const char* never :
       {"INIT", "DESTROY", "BATCH_FORGET", "INTERRUPT", "NOTIFY_REPLY", "RELEASE", "releasedir"}) {
    INFO(never);
    CHECK(parse_deny_rule(never, r));
  }
  why = parse_deny_rule("UNLINK=ENOPE", r);
  REQUIRE(why);
  CHECK(why->find("unknown errno 'ENOPE'") != std::string::npos);
  CHECK(parse_deny_rule("UNLINK=0", r));
  CHECK(parse_deny_rule("UNLINK=4096", r));
  CHECK(parse_deny_rule("UNLINK=-1", r));
  CHECK(parse_deny_rule("UNLINK=", r));
  CHECK(parse_deny_rule("", r));
  CHECK(parse_deny_rule("=EPERM", r));
  CHECK(parse_deny_rule("UNKNOWN", r));  // opcode_name()'s fallback is no opcode

  CHECK(opcode_from_name("readdirplus") == FUSE_READDIRPLUS);
  CHECK_FALSE(opcode_from_name("READDIRPLUSX"));
}

TEST_CASE("HookChain skips null hooks and reports how many ran", "[hooks]") {
  std::vector<std::string> log;
  auto a = std::make_shared<Recorder>("a", log);
  auto b = std::make_shared<Recorder>("b", log);
  a->refuse_opcode = FUSE_LOOKUP;
  a->refuse_with = -5;  // a negative answer is still a refusal, as EIO
  HookChain chain({nullptr, a, nullptr, b});
  CHECK(chain.size() == 2);
  RequestContext ctx;
  RequestInfo op;
  op.ctx = &ctx;
  op.opcode = FUSE_LOOKUP;
  size_t ran = 0;
  CHECK(chain.before(op, ran) == EIO);
  CHECK(ran == 1);
  op.opcode = FUSE_GETATTR;
  CHECK(chain.before(op, ran) == 0);
  CHECK(ran == 2);
}
