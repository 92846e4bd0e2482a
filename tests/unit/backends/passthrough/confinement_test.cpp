// Escape attempts at the Filesystem level: hostile names, host symlinks, the root path, and a
// directory swapped for a symlink while lookups and opens run.
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "backends/passthrough/confinement.hpp"
#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: check_name refuses what is not one component", "[passthrough][names]") {
  CHECK(check_name("") == EINVAL);
  CHECK(check_name("..") == EPERM);
  CHECK(check_name(".") == EPERM);
  CHECK(check_name("a/b") == EPERM);
  CHECK(check_name("/") == EPERM);
  CHECK(check_name(std::string_view("a\0b", 3)) == EINVAL);
  CHECK(check_name("a\\b") == 0);
  CHECK(check_name(".hidden") == 0);
  CHECK(check_name("...") == 0);
}

TEST_CASE("passthrough: every operation that takes a name checks it", "[passthrough][names]") {
  TestFs t;
  Entry f = t.file(root, "f");
  for (std::string_view bad : {std::string_view(".."), std::string_view("a/b"),
                               std::string_view("."), std::string_view("../etc")}) {
    INFO(bad);
    CHECK(err(t.lookup(root, bad)) == EPERM);
    CHECK(err(t.create(root, bad)) == EPERM);
    CHECK(err(t.mkdir(root, bad)) == EPERM);
    CHECK(err(t.mknod(root, bad, S_IFIFO | 0644)) == EPERM);
    CHECK(err(t.symlink(root, bad, "target")) == EPERM);
    CHECK(err(t.link(f.ino, root, bad)) == EPERM);
    CHECK(err(t.unlink(root, bad)) == EPERM);
    CHECK(err(t.rmdir(root, bad)) == EPERM);
    CHECK(err(t.rename(root, bad, root, "x")) == EPERM);
    CHECK(err(t.rename(root, "f", root, bad)) == EPERM);
  }
  CHECK(err(t.lookup(root, "")) == EINVAL);
  CHECK(err(t.create(root, "")) == EINVAL);
  CHECK(err(t.mkdir(root, "")) == EINVAL);
  CHECK(t.create(root, "a\\b").ok());
  CHECK(t.host_exists("a\\b"));
  CHECK(t.host_exists("f"));
}

TEST_CASE("passthrough: host symlinks are never followed", "[passthrough][confinement]") {
  TestFs t([](PassthroughConfig& c) { c.stat_virtualization = StatVirtualization::relaxed; });
  HostDir outside;
  {
    int fd = ::open((outside / "secret").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "SECRET", 6) == 6);
    ::close(fd);
  }
  t.host_mkdir("sibling");
  t.host_write("sibling/file", "sib");
  REQUIRE(::symlink("/", t.host("to_root").c_str()) == 0);
  REQUIRE(::symlink(outside.path().c_str(), t.host("to_outside").c_str()) == 0);
  REQUIRE(::symlink((outside / "secret").c_str(), t.host("to_secret").c_str()) == 0);
  REQUIRE(::symlink("sibling", t.host("to_sibling").c_str()) == 0);
  REQUIRE(::symlink("../..", t.host("up").c_str()) == 0);

  for (const char* name : {"to_root", "to_outside", "to_secret", "to_sibling", "up"}) {
    INFO(name);
    Entry l = t.lookup_ok(root, name);
    CHECK((l.attr.mode & S_IFMT) == S_IFLNK);  // the link itself, never its target
    CHECK(err(t.open(l.ino, O_RDONLY)) == ELOOP);
    CHECK(err(t.opendir(l.ino)) == ENOTDIR);
    CHECK(err(t.lookup(l.ino, "secret")) == ENOTDIR);
    CHECK(err(t.lookup(l.ino, "etc")) == ENOTDIR);
    CHECK(err(t.create(l.ino, "planted")) == ENOTDIR);
    CHECK(err(t.mkdir(l.ino, "planted")) == ENOTDIR);
    CHECK(err(t.getxattr(l.ino, "user.x", 0)) == ENODATA);  // the link's own (none)
    CHECK(t.readlink(l.ino).ok());
  }
  CHECK(*t.readlink(t.lookup_ok(root, "to_root").ino) == "/");
  // Nothing was created outside.
  CHECK(!std::filesystem::exists(outside / "planted"));
  CHECK(!std::filesystem::exists("/planted"));
  // setattr on a link does not reach its target.
  Entry l = t.lookup_ok(root, "to_secret");
  CHECK(err(t.truncate(l.ino, 0)) == EINVAL);
  CHECK(err(t.chmod(l.ino, 0777)) != 0);
  struct stat st {};
  REQUIRE(::stat((outside / "secret").c_str(), &st) == 0);
  CHECK(st.st_size == 6);
  CHECK((st.st_mode & 07777) == 0644);
}

TEST_CASE("passthrough: the root path may not contain a symlink unless allowed",
          "[passthrough][confinement]") {
  HostDir base;
  REQUIRE(::mkdir((base / "tenant_a").c_str(), 0755) == 0);
  REQUIRE(::mkdir((base / "tenant_b").c_str(), 0755) == 0);
  REQUIRE(::mkdir((base / "tenant_b/deep").c_str(), 0755) == 0);
  REQUIRE(::symlink("tenant_b", (base / "evil").c_str()) == 0);
  REQUIRE(::symlink("evil", (base / "evil2").c_str()) == 0);

  PassthroughConfig c;
  c.root = base / "evil";
  MakeResult r = make_passthrough(c);
  CHECK(!r);
  CHECK(r.err == ELOOP);
  CHECK(r.error.find("symbolic link") != std::string::npos);
  c.root = base / "evil/deep";
  CHECK(!make_passthrough(c));
  c.root = base / "evil2";
  CHECK(!make_passthrough(c));
  c.root = base / "tenant_a/../tenant_b";
  MakeResult dots = make_passthrough(c);
  CHECK(!dots);
  CHECK(dots.err == EINVAL);
  c.root = base / "tenant_b/deep";
  CHECK(make_passthrough(c));
  c.root = base / "./tenant_b//deep/";
  CHECK(make_passthrough(c));

  // Allowed on request: the export lands where the link points.
  c.root = base / "evil";
  c.follow_root_symlinks = true;
  MakeResult followed = make_passthrough(c);
  REQUIRE(followed);
  RequestContext ctx;
  Result<Entry> deep = run_io(followed.fs->lookup(ctx, root, "deep"));
  REQUIRE(deep.ok());
  CHECK(deep->ino != 0);
}

TEST_CASE("passthrough: start-up refuses a missing root or one that is not a directory",
          "[passthrough][confinement]") {
  HostDir base;
  PassthroughConfig c;
  c.root = base / "missing";
  MakeResult missing = make_passthrough(c);
  CHECK(!missing);
  CHECK(missing.err == ENOENT);
  CHECK(missing.error.find("does not exist") != std::string::npos);
  int fd = ::open((base / "file").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  ::close(fd);
  c.root = base / "file";
  MakeResult file = make_passthrough(c);
  CHECK(!file);
  CHECK(file.err == ENOTDIR);
  CHECK(file.error.find("not a directory") != std::string::npos);
  c.root = "";
  CHECK(!make_passthrough(c));
}

TEST_CASE("passthrough: a directory swapped for a symlink during lookups never leads outside",
          "[passthrough][confinement][race]") {
  TestFs t([](PassthroughConfig& c) {
    c.stat_virtualization = StatVirtualization::relaxed;
    c.max_cached_fds = 2;
  });
  HostDir outside;
  {
    int fd = ::open((outside / "f").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "OUTSIDE", 7) == 7);
    ::close(fd);
    REQUIRE(::mkdir((outside / "outside_marker").c_str(), 0755) == 0);
  }
  t.host_mkdir("real");
  t.host_write("real/f", "inside");
  REQUIRE(::symlink(outside.path().c_str(), t.host("link").c_str()) == 0);

  // Another thread keeps swapping "d" between the real directory and the symlink.
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    const std::string d = t.host("d");
    const std::string real = t.host("real");
    const std::string link = t.host("link");
    while (!stop.load()) {
      ::renameat2(AT_FDCWD, real.c_str(), AT_FDCWD, d.c_str(), 0);
      ::renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, real.c_str(), 0);
      ::renameat2(AT_FDCWD, link.c_str(), AT_FDCWD, d.c_str(), 0);
      ::renameat2(AT_FDCWD, d.c_str(), AT_FDCWD, link.c_str(), 0);
    }
  });
  int inside_reads = 0;
  for (int i = 0; i < 3000; ++i) {
    Result<Entry> d = t.lookup(root, "d");
    if (!d.ok() || d->ino == 0) continue;
    Result<Entry> f = t.lookup(d->ino, "f");
    if (f.ok() && f->ino != 0) {
      Result<OpenReply> o = t.open(f->ino, O_RDONLY);
      if (o.ok()) {
        Result<std::string> data = t.read(f->ino, o->fh, 0, 64);
        if (data.ok()) {
          REQUIRE(*data != "OUTSIDE");
          if (*data == "inside") ++inside_reads;
        }
        (void)t.release(f->ino, o->fh);
      }
      t.forget(f->ino);
    }
    // Also through the inode the guest holds for "d", after the swap.
    Result<OpenReply> dh = t.opendir(d->ino);
    if (dh.ok()) {
      CollectSink sink;
      (void)run_io(t.fs->readdir(t.ctx, d->ino, dh->fh, 0, sink));
      for (const ListedEntry& e : sink.entries)
        REQUIRE(e.name != "outside_marker");
      (void)t.releasedir(d->ino, dh->fh);
    }
    t.forget(d->ino);
  }
  stop = true;
  swapper.join();
  INFO("reads that saw the inside file: " << inside_reads);
  CHECK(inside_reads >= 0);
}
