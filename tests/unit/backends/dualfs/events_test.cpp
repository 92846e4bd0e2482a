// Backend events: DualFs reports each copy-up and directory promotion to the EventSink it was
// given at init (the mount's hook chain), once per copy, with its bytes and outcome.
#include <mutex>
#include <vector>

#include "core/hooks.hpp"
#include "core/stats.hpp"
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

class Sink final : public EventSink {
 public:
  void event(const BackendEvent& e) const override {
    std::lock_guard lock(mu_);
    events_.push_back(e);
  }
  std::vector<BackendEvent> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<BackendEvent> of(BackendEvent::Kind kind) const {
    std::vector<BackendEvent> out;
    for (const BackendEvent& e : events())
      if (e.kind == kind) out.push_back(e);
    return out;
  }

 private:
  mutable std::mutex mu_;
  mutable std::vector<BackendEvent> events_;
};

// Gives the fixture's DualFs a sink, as a Session does at FUSE_INIT.
std::shared_ptr<Sink> attach(DualFixture& f) {
  auto sink = std::make_shared<Sink>();
  SessionParams p;
  p.events = sink;
  REQUIRE(run_coro(f.fs->init(p)).ok());
  return sink;
}

}  // namespace

TEST_CASE("a copy-up is reported once with its bytes, after its parent's promotion",
          "[dualfs][events]") {
  DualFixture f(read_b_write_a_policy(), 4096);
  const std::string data(10000, 'q');
  f.B.put("dir/f", data);
  auto sink = attach(f);
  const InodeId ino = f.ino("dir/f");
  const InodeId dir = f.ino("dir");
  REQUIRE(f.write("dir/f", "x", O_WRONLY).ok());
  REQUIRE(f.write("dir/f", "y", O_WRONLY).ok());  // already on A: no second copy-up

  const std::vector<BackendEvent> all = sink->events();
  REQUIRE(all.size() == 2);
  CHECK(all[0].kind == BackendEvent::Kind::promotion);
  CHECK(all[0].node == dir);
  CHECK(all[0].error == 0);
  CHECK(all[0].bytes == 0);
  CHECK(all[1].kind == BackendEvent::Kind::copy_up);
  CHECK(all[1].node == ino);
  CHECK(all[1].error == 0);
  CHECK(all[1].bytes == data.size());
  CHECK(all[1].duration >= all[0].duration);  // it includes the promotion
  CHECK(f.fs->copied_bytes() == data.size());
}

TEST_CASE("an O_TRUNC copy-up reports no bytes", "[dualfs][events]") {
  DualFixture f;
  f.B.put("f", std::string(5000, 'z'));
  auto sink = attach(f);
  REQUIRE(f.write("f", "new", O_WRONLY | O_TRUNC).ok());
  const auto copies = sink->of(BackendEvent::Kind::copy_up);
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].bytes == 0);
  CHECK(copies[0].error == 0);
  CHECK(sink->of(BackendEvent::Kind::promotion).empty());  // the root is on A already
}

TEST_CASE("a failed copy-up is reported with its errno", "[dualfs][events]") {
  memfs::MemFsConfig small;
  small.cache = CachePolicy::never;
  small.capacity_bytes = 8192;
  DualFixture f(read_b_write_a_policy(), 4096, memfs::make_memfs(small));
  f.B.put("big", std::string(100000, 'b'));
  auto sink = attach(f);
  CHECK(f.write("big", "x", O_WRONLY).error() == ENOSPC);
  const auto copies = sink->of(BackendEvent::Kind::copy_up);
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].error == ENOSPC);
  CHECK(copies[0].bytes < 100000);
}

TEST_CASE("copy-up events count in the mount's Stats", "[dualfs][events]") {
  DualFixture f;
  f.B.put("a/one", std::string(3000, '1'));
  f.B.put("a/two", std::string(4000, '2'));
  auto stats = std::make_shared<Stats>();
  auto chain = std::make_shared<HookChain>(std::vector<std::shared_ptr<Hook>>{stats});
  SessionParams p;
  p.events = chain;
  REQUIRE(run_coro(f.fs->init(p)).ok());
  REQUIRE(f.write("a/one", "x", O_WRONLY).ok());
  REQUIRE(f.write("a/two", "x", O_RDWR).ok());
  const Stats::Snapshot s = stats->snapshot();
  CHECK(s.copy_ups == 2);
  CHECK(s.copy_up_failures == 0);
  CHECK(s.copy_up_bytes == 7000);
  CHECK(s.promotions == 1);
  uint64_t histogram = 0;
  for (uint64_t n : s.copy_up_us_log2)
    histogram += n;
  CHECK(histogram == 2);
}

TEST_CASE("without a sink DualFs reports nothing and still copies up", "[dualfs][events]") {
  DualFixture f;
  f.B.put("f", "data");
  REQUIRE(f.write("f", "D", O_WRONLY).ok());
  CHECK(f.fs->copy_ups() == 1);
}
