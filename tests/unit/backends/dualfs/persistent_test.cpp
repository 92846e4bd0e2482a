// Whiteouts and opaque directories kept as markers in a PassthroughFs A: hidden from the guest,
// still in force after a remount.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "unit/backends/dualfs/dualfs_fixture.hpp"
#include "unit/backends/dualfs/host_dir.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

void populate_b(DualFixture& f) {
  f.B.put("d/gone", "x");
  f.B.put("d/changed", "orig");
  f.B.put("d/kept", "k");
  f.B.put("box/old", "1");
}

}  // namespace

TEST_CASE("whiteouts in a persistent A survive a remount", "[dualfs][whiteout][persistent]") {
  HostDir upper;
  {
    DualFixture f(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                  WhiteoutStorage::markers);
    populate_b(f);
    REQUIRE(f.unlink("d/gone").ok());
    REQUIRE(f.write("d/changed", "CHANGED").ok());
    REQUIRE(f.unlink("d/changed").ok());
    REQUIRE(f.unlink("box/old").ok());
    REQUIRE(f.rmdir("box").ok());
    REQUIRE(f.mkdir("box").ok());
    CHECK(f.names("d") == std::vector<std::string>{"kept"});
    CHECK(f.names("box").empty());
    CHECK(upper.has("d/.sandfs-dual.wh.gone"));
    CHECK(upper.has("d/.sandfs-dual.wh.changed"));
    CHECK(upper.has("box/.sandfs-dual.opaque"));
    CHECK_FALSE(upper.has("d/changed"));
  }
  {
    DualFixture g(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                  WhiteoutStorage::markers);
    populate_b(g);
    CHECK(g.names("") == std::vector<std::string>{"box", "d"});
    CHECK(g.names("d") == std::vector<std::string>{"kept"});
    CHECK(g.lookup("d/gone").error() == ENOENT);
    CHECK(g.lookup("d/changed").error() == ENOENT);
    CHECK(g.names("box").empty());
    CHECK(g.lookup("box/old").error() == ENOENT);
    CHECK(g.lookup(".sandfs-dual.staging").error() == ENOENT);
    // The markers stay out of the way of the guest's own use of the directory.
    REQUIRE(g.create("d/gone", "again").ok());
    CHECK(*g.read("d/gone") == "again");
    REQUIRE(g.unlink("d/kept").ok());
    REQUIRE(g.unlink("d/gone").ok());
    REQUIRE(g.rmdir("d").ok());
    CHECK_FALSE(upper.has("d"));
  }
}

TEST_CASE("copy-up into a persistent A installs a complete file", "[dualfs][copyup][persistent]") {
  HostDir upper;
  DualFixture f(read_b_write_a_policy(), 4096, passthrough_at(upper.path()),
                WhiteoutStorage::markers);
  std::string data(100000, 'q');
  f.B.put("deep/er/file", data, 0640);
  REQUIRE(f.write("deep/er/file", "W", O_WRONLY).ok());
  data[0] = 'W';
  CHECK(*f.read("deep/er/file") == data);
  CHECK(upper.has("deep/er/file"));
  CHECK((f.attr("deep/er/file").mode & 07777) == 0640);
  CHECK(f.names("deep/er") == std::vector<std::string>{"file"});
}

TEST_CASE("mounting removes copy-up temporaries a crash left in staging",
          "[dualfs][copyup][persistent]") {
  HostDir upper;
  std::filesystem::create_directories(upper.path() + "/.sandfs-dual.staging");
  {
    // A plain passthrough mount plants the leftover with a valid ownership record.
    std::shared_ptr<Filesystem> a = passthrough_at(upper.path());
    REQUIRE(sandfs::test::run_io(a->init(SessionParams{})).ok());
    RequestContext ctx;
    Result<Entry> staging = sandfs::test::run_io(a->lookup(ctx, root, ".sandfs-dual.staging"));
    REQUIRE(staging.ok());
    REQUIRE(
        sandfs::test::run_io(a->mknod(ctx, staging->ino, "tmp.1.1", S_IFREG | 0600, 0, 0)).ok());
  }
  REQUIRE(upper.has(".sandfs-dual.staging/tmp.1.1"));
  DualFixture f(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                WhiteoutStorage::markers);
  CHECK_FALSE(upper.has(".sandfs-dual.staging/tmp.1.1"));
  f.B.put("x", "1");
  REQUIRE(f.write("x", "2").ok());
  CHECK(*f.read("x") == "2");
}

TEST_CASE("a copy-up in a persistent A hides B by a mark on the copy, across remounts",
          "[dualfs][copyup][whiteout][persistent]") {
  HostDir upper;
  auto populate = [](DualFixture& f) {
    f.B.put("d/c", "orig-c");
    f.B.put("d/r", "orig-r");
    f.B.put("d/u", "orig-u");
  };
  auto mount = [&] {
    auto f = std::make_unique<DualFixture>(read_b_write_a_policy(), size_t{1} << 20,
                                           passthrough_at(upper.path()), WhiteoutStorage::markers);
    populate(*f);
    return f;
  };
  {
    auto f = mount();
    REQUIRE(f->write("d/c", "new-c", O_WRONLY | O_TRUNC).ok());
    REQUIRE(f->write("d/r", "new-r", O_WRONLY | O_TRUNC).ok());
    REQUIRE(f->write("d/u", "new-u", O_WRONLY | O_TRUNC).ok());
    CHECK(f->fs->copy_ups() == 3);
    // No marker file: the copy carries the mark, set before it was renamed into place.
    CHECK_FALSE(upper.has("d/.sandfs-dual.wh.c"));
    CHECK(::getxattr((upper.path() + "/d/c").c_str(), "user.sandfs-dual.copy-up", nullptr, 0) > 0);
    CHECK(*f->read("d/c") == "new-c");
    CHECK(f->names("d") == std::vector<std::string>{"c", "r", "u"});
    // The guest never sees the mark.
    const InodeId c = f->ino("d/c");
    Result<XattrReply> names = run_coro(f->fs->listxattr(f->ctx, c, 0));
    REQUIRE(names.ok());
    CHECK(names->size == 0);
    Result<XattrReply> mark = run_coro(f->fs->getxattr(f->ctx, c, "user.sandfs-dual.copy-up", 0));
    CHECK(mark.error() == ENODATA);
    const std::string v = "x";
    CHECK(run_coro(f->fs->setxattr(f->ctx, c, "user.sandfs-dual.copy-up", v, 0)).error() == EPERM);
    CHECK(run_coro(f->fs->removexattr(f->ctx, c, "user.sandfs-dual.copy-up")).error() == ENODATA);
    // Renaming a copy away leaves a whiteout where it was.
    REQUIRE(f->rename("d/r", "d/r2").ok());
    CHECK(upper.has("d/.sandfs-dual.wh.r"));
  }
  {
    auto g = mount();
    CHECK(*g->read("d/c") == "new-c");
    CHECK(*g->read("d/u") == "new-u");
    CHECK(g->lookup("d/r").error() == ENOENT);
    CHECK(g->names("d") == std::vector<std::string>{"c", "r2", "u"});
    // Unlinking a copy made by an earlier mount never brings B's file back.
    REQUIRE(g->unlink("d/u").ok());
    CHECK(g->lookup("d/u").error() == ENOENT);
    CHECK(upper.has("d/.sandfs-dual.wh.u"));
  }
  {
    auto h = mount();
    CHECK(h->lookup("d/u").error() == ENOENT);
    CHECK(h->lookup("d/r").error() == ENOENT);
    CHECK(*h->read("d/c") == "new-c");
    CHECK(h->names("d") == std::vector<std::string>{"c", "r2"});
  }
}

TEST_CASE("an A file that is no copy-up does not hide B under a B-first policy",
          "[dualfs][copyup][persistent]") {
  HostDir upper;
  DualFixture f(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                WhiteoutStorage::markers);
  f.B.put("d/both", "from B");
  f.A.put("d/both", "from A");
  CHECK(*f.read("d/both") == "from B");
  CHECK(f.names("d") == std::vector<std::string>{"both"});
  CHECK(f.fs->copy_ups() == 0);
}

TEST_CASE("exchanging a copy-up with an A file keeps B's name hidden",
          "[dualfs][copyup][rename][persistent]") {
  HostDir upper;
  DualFixture f(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                WhiteoutStorage::markers);
  f.B.put("d/x", "B's x");
  REQUIRE(f.write("d/x", "copy", O_WRONLY | O_TRUNC).ok());
  REQUIRE(f.create("d/z", "A's z").ok());
  REQUIRE(f.rename("d/x", "d/z", RENAME_EXCHANGE).ok());
  CHECK(*f.read("d/x") == "A's z");
  CHECK(*f.read("d/z") == "copy");
  CHECK(f.names("d") == std::vector<std::string>{"x", "z"});
  DualFixture g(read_b_write_a_policy(), size_t{1} << 20, passthrough_at(upper.path()),
                WhiteoutStorage::markers);
  g.B.put("d/x", "B's x");
  CHECK(*g.read("d/x") == "A's z");
  CHECK(*g.read("d/z") == "copy");
}
