// Whiteouts and opaque directories kept as markers in a PassthroughFs A: hidden from the guest,
// still in force after a remount.
#include <sys/stat.h>
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
