// The namespace through the kernel: directories, unlink, rename and renameat2, hard and symbolic
// links, special files.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

int renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
}

}  // namespace

TEST_CASE("mkdir and rmdir / with their errors and link counts", "[namespace]") {
  MountedFs m;
  const std::string d = m.path("d");
  const nlink_t root_links = stat_of(m.dir()).st_nlink;

  SYS(::mkdir(d.c_str(), 0750));
  struct stat st = stat_of(d);
  CHECK(st.st_mode == (S_IFDIR | 0750));
  CHECK(st.st_nlink == 2);
  CHECK(stat_of(m.dir()).st_nlink == root_links + 1);
  CHECK(list_dir(d).empty());

  CHECK_ERRNO(EEXIST, ::mkdir(d.c_str(), 0755));
  CHECK_ERRNO(ENOENT, ::mkdir(m.path("no/such").c_str(), 0755));
  write_file(m.path("file"), "x");
  CHECK_ERRNO(ENOTDIR, ::mkdir(m.path("file/sub").c_str(), 0755));
  CHECK_ERRNO(EEXIST, ::mkdir(m.path("file").c_str(), 0755));

  SYS(::mkdir((d + "/sub").c_str(), 0755));
  CHECK(stat_of(d).st_nlink == 3);
  CHECK_ERRNO(ENOTEMPTY, ::rmdir(d.c_str()));
  SYS(::rmdir((d + "/sub").c_str()));
  CHECK(stat_of(d).st_nlink == 2);
  write_file(d + "/f", "x");
  CHECK_ERRNO(ENOTEMPTY, ::rmdir(d.c_str()));
  CHECK_ERRNO(ENOTDIR, ::rmdir((d + "/f").c_str()));
  CHECK_ERRNO(ENOTDIR, ::rmdir(m.path("file").c_str()));
  CHECK_ERRNO(ENOENT, ::rmdir(m.path("missing").c_str()));
  CHECK_ERRNO(EINVAL, ::rmdir((d + "/.").c_str()));
  SYS(::unlink((d + "/f").c_str()));
  SYS(::rmdir(d.c_str()));
  CHECK_FALSE(exists(d));
  CHECK(stat_of(m.dir()).st_nlink == root_links);

  // A directory removed while open: reading it gives nothing, creating in it fails.
  SYS(::mkdir(d.c_str(), 0755));
  Fd dfd = OPEN(d.c_str(), O_RDONLY | O_DIRECTORY);
  SYS(::rmdir(d.c_str()));
  CHECK_ERRNO(ENOENT, ::openat(dfd, "new", O_CREAT | O_RDWR, 0644));
}

TEST_CASE("unlink removes names / not open inodes or other links", "[namespace]") {
  MountedFs m;
  write_file(m.path("a"), "data");
  SYS(::link(m.path("a").c_str(), m.path("b").c_str()));
  CHECK(stat_of(m.path("a")).st_nlink == 2);
  SYS(::unlink(m.path("a").c_str()));
  CHECK_FALSE(exists(m.path("a")));
  CHECK(stat_of(m.path("b")).st_nlink == 1);
  CHECK(read_file(m.path("b")) == "data");

  CHECK_ERRNO(ENOENT, ::unlink(m.path("a").c_str()));
  CHECK_ERRNO(ENOENT, ::unlink(m.path("no/such").c_str()));
  SYS(::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(EISDIR, ::unlink(m.path("d").c_str()));
  CHECK_ERRNO(ENOTDIR, ::unlink(m.path("b/x").c_str()));
  CHECK(list_dir(m.dir()) == std::set<std::string>{"b", "d"});
}

TEST_CASE("rename: plain / across directories / over an existing file", "[namespace][rename]") {
  MountedFs m;
  write_file(m.path("a"), "A");
  const ino_t ino_a = stat_of(m.path("a")).st_ino;

  SYS(::rename(m.path("a").c_str(), m.path("b").c_str()));
  CHECK_FALSE(exists(m.path("a")));
  CHECK(stat_of(m.path("b")).st_ino == ino_a);
  CHECK(read_file(m.path("b")) == "A");

  SYS(::mkdir(m.path("d1").c_str(), 0755));
  SYS(::mkdir(m.path("d2").c_str(), 0755));
  SYS(::rename(m.path("b").c_str(), m.path("d1/b").c_str()));
  SYS(::rename(m.path("d1/b").c_str(), m.path("d2/c").c_str()));
  CHECK(list_dir(m.path("d1")).empty());
  CHECK(list_dir(m.path("d2")) == std::set<std::string>{"c"});
  CHECK(stat_of(m.path("d2/c")).st_ino == ino_a);

  // Over an existing file: the target's old inode goes away (but stays usable while open).
  write_file(m.path("victim"), "old contents");
  Fd victim_fd = OPEN(m.path("victim").c_str(), O_RDONLY);
  SYS(::rename(m.path("d2/c").c_str(), m.path("victim").c_str()));
  CHECK(read_file(m.path("victim")) == "A");
  CHECK(stat_of(m.path("victim")).st_ino == ino_a);
  CHECK(fstat_of(victim_fd).st_nlink == 0);
  CHECK(pread_all(victim_fd, 100, 0) == "old contents");
  CHECK(list_dir(m.dir()) == std::set<std::string>{"d1", "d2", "victim"});

  // Renaming a directory moves its subtree and fixes the link counts.
  write_file(m.path("d1/inner"), "i");
  SYS(::rename(m.path("d1").c_str(), m.path("d2/moved").c_str()));
  CHECK(read_file(m.path("d2/moved/inner")) == "i");
  CHECK(stat_of(m.path("d2")).st_nlink == 3);
  // ".." of the moved directory is its new parent.
  CHECK(stat_of(m.path("d2/moved/..")).st_ino == stat_of(m.path("d2")).st_ino);

  // Onto itself, and onto another link of the same inode: no-ops that succeed.
  SYS(::rename(m.path("victim").c_str(), m.path("victim").c_str()));
  SYS(::link(m.path("victim").c_str(), m.path("hard").c_str()));
  SYS(::rename(m.path("victim").c_str(), m.path("hard").c_str()));
  CHECK(exists(m.path("victim")));
  CHECK(exists(m.path("hard")));
}

TEST_CASE("rename errors: type mismatches / non-empty targets / own subtree / missing source",
          "[namespace][rename]") {
  MountedFs m;
  write_file(m.path("f"), "f");
  SYS(::mkdir(m.path("d").c_str(), 0755));
  SYS(::mkdir(m.path("full").c_str(), 0755));
  write_file(m.path("full/x"), "x");
  SYS(::mkdir(m.path("empty").c_str(), 0755));

  CHECK_ERRNO(EISDIR, ::rename(m.path("f").c_str(), m.path("d").c_str()));
  CHECK_ERRNO(ENOTDIR, ::rename(m.path("d").c_str(), m.path("f").c_str()));
  CHECK_ERRNO(ENOTEMPTY, ::rename(m.path("d").c_str(), m.path("full").c_str()));
  CHECK_ERRNO(EINVAL, ::rename(m.path("d").c_str(), m.path("d/sub").c_str()));
  SYS(::mkdir(m.path("d/sub").c_str(), 0755));
  CHECK_ERRNO(EINVAL, ::rename(m.path("d").c_str(), m.path("d/sub/deeper").c_str()));
  CHECK_ERRNO(ENOENT, ::rename(m.path("missing").c_str(), m.path("x").c_str()));
  CHECK_ERRNO(ENOENT, ::rename(m.path("f").c_str(), m.path("no/such").c_str()));
  // Nothing above changed anything.
  CHECK(list_dir(m.dir()) == std::set<std::string>{"f", "d", "full", "empty"});
  CHECK(list_dir(m.path("d")) == std::set<std::string>{"sub"});

  // A directory over an empty directory replaces it.
  SYS(::rename(m.path("d").c_str(), m.path("empty").c_str()));
  CHECK(list_dir(m.path("empty")) == std::set<std::string>{"sub"});
  CHECK(list_dir(m.dir()) == std::set<std::string>{"f", "full", "empty"});
}

TEST_CASE("renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE", "[namespace][rename]") {
  MountedFs m;
  write_file(m.path("a"), "A");
  write_file(m.path("b"), "B");
  SYS(::mkdir(m.path("d").c_str(), 0755));
  write_file(m.path("d/inside"), "I");

  CHECK_ERRNO(EEXIST, renameat2(m.path("a"), m.path("b"), RENAME_NOREPLACE));
  CHECK(read_file(m.path("a")) == "A");
  CHECK(read_file(m.path("b")) == "B");
  SYS(renameat2(m.path("a"), m.path("c"), RENAME_NOREPLACE));
  CHECK_FALSE(exists(m.path("a")));
  CHECK(read_file(m.path("c")) == "A");

  const ino_t ino_b = stat_of(m.path("b")).st_ino;
  const ino_t ino_c = stat_of(m.path("c")).st_ino;
  SYS(renameat2(m.path("b"), m.path("c"), RENAME_EXCHANGE));
  CHECK(read_file(m.path("b")) == "A");
  CHECK(read_file(m.path("c")) == "B");
  CHECK(stat_of(m.path("b")).st_ino == ino_c);
  CHECK(stat_of(m.path("c")).st_ino == ino_b);

  // A file and a directory, across directories.
  SYS(::mkdir(m.path("other").c_str(), 0755));
  SYS(renameat2(m.path("b"), m.path("d"), RENAME_EXCHANGE));
  CHECK(S_ISREG(stat_of(m.path("d")).st_mode));
  CHECK(read_file(m.path("d")) == "A");
  CHECK(read_file(m.path("b/inside")) == "I");
  SYS(renameat2(m.path("b"), m.path("other/x"), RENAME_NOREPLACE));
  write_file(m.path("y"), "Y");
  SYS(renameat2(m.path("y"), m.path("other/x"), RENAME_EXCHANGE));
  CHECK(read_file(m.path("other/x")) == "Y");
  CHECK(read_file(m.path("y/inside")) == "I");
  CHECK(stat_of(m.path("y/..")).st_ino == stat_of(m.dir()).st_ino);

  CHECK_ERRNO(ENOENT, renameat2(m.path("c"), m.path("missing"), RENAME_EXCHANGE));
  CHECK_ERRNO(EINVAL, renameat2(m.path("c"), m.path("d"), RENAME_EXCHANGE | RENAME_NOREPLACE));
  CHECK(read_file(m.path("c")) == "B");
}

TEST_CASE("hard links share one inode - directories cannot be linked", "[namespace][link]") {
  MountedFs m;
  write_file(m.path("a"), "one");
  SYS(::link(m.path("a").c_str(), m.path("b").c_str()));
  const struct stat a = stat_of(m.path("a"));
  const struct stat b = stat_of(m.path("b"));
  CHECK(a.st_ino == b.st_ino);
  CHECK(a.st_nlink == 2);
  CHECK(b.st_nlink == 2);
  {
    Fd fd = OPEN(m.path("b").c_str(), O_WRONLY | O_APPEND);
    pwrite_all(fd, "+two", 0);
  }
  CHECK(read_file(m.path("a")) == "one+two");

  SYS(::mkdir(m.path("d").c_str(), 0755));
  SYS(::link(m.path("a").c_str(), m.path("d/c").c_str()));
  CHECK(stat_of(m.path("a")).st_nlink == 3);
  CHECK_ERRNO(EPERM, ::link(m.path("d").c_str(), m.path("dlink").c_str()));
  CHECK_ERRNO(EEXIST, ::link(m.path("a").c_str(), m.path("b").c_str()));
  CHECK_ERRNO(ENOENT, ::link(m.path("missing").c_str(), m.path("x").c_str()));
  SYS(::unlink(m.path("a").c_str()));
  SYS(::unlink(m.path("b").c_str()));
  CHECK(stat_of(m.path("d/c")).st_nlink == 1);
  CHECK(read_file(m.path("d/c")) == "one+two");
}

TEST_CASE("symlinks keep their target text - readlink returns it", "[namespace][link]") {
  MountedFs m;
  write_file(m.path("target"), "T");
  SYS(::symlink("target", m.path("rel").c_str()));
  SYS(::symlink("/definitely/not/here", m.path("dangling").c_str()));
  const std::string long_target(4000, 'x');  // near PATH_MAX
  SYS(::symlink(long_target.c_str(), m.path("long").c_str()));

  char buf[4200];
  ssize_t n = SYS(::readlink(m.path("rel").c_str(), buf, sizeof buf));
  CHECK(std::string(buf, static_cast<size_t>(n)) == "target");
  n = SYS(::readlink(m.path("long").c_str(), buf, sizeof buf));
  CHECK(std::string(buf, static_cast<size_t>(n)) == long_target);
  // A short buffer truncates silently.
  n = SYS(::readlink(m.path("rel").c_str(), buf, 3));
  CHECK(std::string(buf, static_cast<size_t>(n)) == "tar");

  const struct stat l = lstat_of(m.path("rel"));
  CHECK(S_ISLNK(l.st_mode));
  CHECK(l.st_size == 6);
  CHECK(stat_of(m.path("rel")).st_ino == stat_of(m.path("target")).st_ino);
  CHECK(read_file(m.path("rel")) == "T");
  CHECK(S_ISLNK(lstat_of(m.path("dangling")).st_mode));
  CHECK_ERRNO(ENOENT, ::open(m.path("dangling").c_str(), O_RDONLY));
  CHECK_ERRNO(EEXIST, ::symlink("x", m.path("rel").c_str()));
  CHECK_ERRNO(EINVAL, ::readlink(m.path("target").c_str(), buf, sizeof buf));
  CHECK_ERRNO(ELOOP, ::open(m.path("rel").c_str(), O_RDONLY | O_NOFOLLOW));

  // A symlink to a directory is followed in paths; a loop is detected.
  SYS(::mkdir(m.path("dir").c_str(), 0755));
  SYS(::symlink("dir", m.path("dirlink").c_str()));
  write_file(m.path("dirlink/through"), "x");
  CHECK(exists(m.path("dir/through")));
  SYS(::symlink("loop", m.path("loop").c_str()));
  CHECK_ERRNO(ELOOP, ::open(m.path("loop").c_str(), O_RDONLY));
}

TEST_CASE("mknod makes fifos / devices and sockets and keeps st_rdev", "[namespace][special]") {
  MountedFs m;
  SYS(::mknod(m.path("fifo").c_str(), S_IFIFO | 0644, 0));
  SYS(::mknod(m.path("chr").c_str(), S_IFCHR | 0600, ::makedev(1, 3)));
  SYS(::mknod(m.path("blk").c_str(), S_IFBLK | 0660, ::makedev(259, 70000)));
  SYS(::mknod(m.path("sock").c_str(), S_IFSOCK | 0755, 0));
  SYS(::mknod(m.path("reg").c_str(), S_IFREG | 0600, 0));
  SYS(::mkfifo(m.path("fifo2").c_str(), 0600));

  struct stat st = lstat_of(m.path("fifo"));
  CHECK(st.st_mode == (S_IFIFO | 0644));
  st = lstat_of(m.path("chr"));
  CHECK(st.st_mode == (S_IFCHR | 0600));
  CHECK(major(st.st_rdev) == 1u);
  CHECK(minor(st.st_rdev) == 3u);
  st = lstat_of(m.path("blk"));
  CHECK(st.st_mode == (S_IFBLK | 0640));  // umask 022
  CHECK(major(st.st_rdev) == 259u);
  CHECK(minor(st.st_rdev) == 70000u);
  CHECK(lstat_of(m.path("sock")).st_mode == (S_IFSOCK | 0755));
  CHECK(lstat_of(m.path("reg")).st_mode == (S_IFREG | 0600));
  CHECK(lstat_of(m.path("fifo2")).st_mode == (S_IFIFO | 0600));
  CHECK_ERRNO(EEXIST, ::mknod(m.path("fifo").c_str(), S_IFIFO | 0644, 0));

  // A fifo on the mount works as a pipe (the kernel runs it, the server only stores the node).
  Fd fifo = OPEN(m.path("fifo").c_str(), O_RDWR | O_NONBLOCK);
  CHECK(SYS(::write(fifo, "through the pipe", 16)) == 16);
  char buf[32];
  CHECK(SYS(::read(fifo, buf, sizeof buf)) == 16);
  CHECK(std::string(buf, 16) == "through the pipe");
  CHECK(lstat_of(m.path("fifo")).st_size == 0);

  // A Unix socket can be bound on the mount and connected to.
  Fd srv(SYS(::socket(AF_UNIX, SOCK_STREAM, 0)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = m.path("bound.sock");
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::copy(sock_path.begin(), sock_path.end(), addr.sun_path);
  SYS(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  SYS(::listen(srv, 1));
  CHECK(S_ISSOCK(lstat_of(sock_path).st_mode));
  Fd cli(SYS(::socket(AF_UNIX, SOCK_STREAM, 0)));
  SYS(::connect(cli, reinterpret_cast<sockaddr*>(&addr), sizeof addr));

  // Special files show their type in readdir, and can be renamed and removed like any other.
  SYS(::rename(m.path("chr").c_str(), m.path("chr2").c_str()));
  CHECK(lstat_of(m.path("chr2")).st_rdev == ::makedev(1, 3));
  SYS(::unlink(m.path("chr2").c_str()));
  SYS(::unlink(m.path("blk").c_str()));
  CHECK_FALSE(exists(m.path("blk")));
}

TEST_CASE("names are bytes: newlines / high bytes / spaces and the longest symlink target",
          "[namespace]") {
  MountedFs m;
  const std::vector<std::string> odd = {
      "a\nb",     "\xff\xfe", " lead and trail ",          "tab\there",
      "\x01\x02", "-dash",    "utf8-\xc3\xa9\xe2\x82\xac", "...",
      ".hidden"};
  for (const std::string& n : odd)
    write_file(m.path(n), n);
  CHECK(list_dir(m.dir()) == std::set<std::string>(odd.begin(), odd.end()));
  for (const std::string& n : odd)
    CHECK(read_file(m.path(n)) == n);

  const std::string longest(4095, 't');  // PATH_MAX - 1
  SYS(::symlink(longest.c_str(), m.path("l").c_str()));
  std::string buf(5000, '\0');
  const ssize_t n = SYS(::readlink(m.path("l").c_str(), buf.data(), buf.size()));
  CHECK(buf.substr(0, static_cast<size_t>(n)) == longest);
  CHECK_ERRNO(ENAMETOOLONG, ::symlink(std::string(4096, 't').c_str(), m.path("l2").c_str()));
}
