// Read-only mode: every mutating operation is EROFS, and nothing is written to the host.
#include <linux/fs.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

namespace {

// Everything about the host tree that a write would change: names, sizes, modes, times, xattrs.
std::string snapshot(const std::string& root) {
  std::string out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    char xattrs[1024];
    ssize_t n = ::llistxattr(e.path().c_str(), xattrs, sizeof xattrs);
    out += e.path().string() + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mode) +
           " " + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
           " " + std::to_string(st.st_ctim.tv_nsec) + " " +
           std::string(xattrs, n > 0 ? static_cast<size_t>(n) : 0) + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("passthrough: read-only refuses every change and writes nothing",
          "[passthrough][readonly]") {
  TestFs t([](PassthroughConfig& c) {
    c.readonly = true;
    c.quota_bytes = 1 << 20;
    // Prepared before start: a file with a record, a directory, a link.
    const std::string r = c.root;
    int fd = ::open((r + "/f").c_str(), O_WRONLY | O_CREAT, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "content", 7) == 7);
    const std::string rec = record_bytes(1000, 1000, S_IFREG | 04755);
    REQUIRE(::fsetxattr(fd, c.stat_xattr.c_str(), rec.data(), rec.size(), 0) == 0);
    ::close(fd);
    REQUIRE(::mkdir((r + "/d").c_str(), 0755) == 0);
    REQUIRE(::symlink("f", (r + "/l").c_str()) == 0);
  });
  const std::string before = snapshot(t.dir.path());
  // The strict probe did not write at start-up either.
  CHECK(!t.host_xattr(".", "user.sandfs.probe"));

  Entry f = t.lookup_ok(root, "f");
  Entry d = t.lookup_ok(root, "d");
  CHECK(f.attr.uid == 1000);
  // Reads work.
  HandleId ro = t.open_ok(f.ino, O_RDONLY);
  CHECK(*t.read(f.ino, ro, 0, 100) == "content");
  CHECK(run_io(t.fs->flush(t.ctx, f.ino, ro, 0)).ok());
  CHECK(t.fsync(f.ino, ro).ok());
  CHECK(t.names(root).size() == 5);
  CHECK(t.list_plus(root).size() == 5);
  CHECK(t.listxattr(f.ino, 0).ok());
  CHECK(err(t.getxattr(f.ino, "user.none", 0)) == ENODATA);
  CHECK(t.statfs().ok());
  CHECK(t.access(f.ino, R_OK).ok());
  CHECK(t.readlink(t.lookup_ok(root, "l").ino).ok());

  // Every change is refused.
  CHECK(err(t.open(f.ino, O_WRONLY)) == EROFS);
  CHECK(err(t.open(f.ino, O_RDWR)) == EROFS);
  CHECK(err(t.open(f.ino, O_RDONLY | O_TRUNC)) == EROFS);
  CHECK(err(t.write(f.ino, ro, 0, "x")) == EBADF);  // a read-only handle
  CHECK(err(t.create(root, "new")) == EROFS);
  CHECK(err(t.mkdir(root, "new")) == EROFS);
  CHECK(err(t.mknod(root, "new", S_IFIFO | 0644)) == EROFS);
  CHECK(err(t.mknod(root, "new", S_IFREG | 0644)) == EROFS);
  CHECK(err(t.symlink(root, "new", "x")) == EROFS);
  CHECK(err(t.link(f.ino, root, "new")) == EROFS);
  CHECK(err(t.unlink(root, "f")) == EROFS);
  CHECK(err(t.rmdir(root, "d")) == EROFS);
  CHECK(err(t.rename(root, "f", root, "g")) == EROFS);
  CHECK(err(t.rename(root, "f", root, "d", RENAME_EXCHANGE)) == EROFS);
  CHECK(err(t.chmod(f.ino, 0777)) == EROFS);
  CHECK(err(t.chown(f.ino, 0, 0)) == EROFS);
  CHECK(err(t.truncate(f.ino, 0)) == EROFS);
  SetAttrIn times;
  times.valid = fuse::FATTR_MTIME_NOW;
  CHECK(err(t.setattr(f.ino, times)) == EROFS);
  CHECK(err(t.setxattr(f.ino, "user.x", "v")) == EROFS);
  CHECK(err(t.removexattr(f.ino, "user.x")) == EROFS);
  CHECK(err(t.fallocate(f.ino, ro, 0, 10, 0)) == EROFS);
  CHECK(err(t.copy(f.ino, ro, 0, f.ino, ro, 100, 1)) == EROFS);
  CHECK(err(t.access(f.ino, W_OK)) == EROFS);
  // Name checks come first.
  CHECK(err(t.create(root, "..")) == EPERM);
  CHECK(err(t.unlink(root, "")) == EINVAL);
  // A kill-priv open without truncation changes nothing either.
  Result<OpenReply> k = t.open(f.ino, O_RDONLY, true);
  REQUIRE(k.ok());
  CHECK(t.release(f.ino, k->fh).ok());
  CHECK(t.release(f.ino, ro).ok());
  (void)d;

  CHECK(snapshot(t.dir.path()) == before);
}
