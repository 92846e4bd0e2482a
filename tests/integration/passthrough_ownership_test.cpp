// The guest's owners, modes, file types and device numbers: kept in the ownership record on the
// host (checked byte by byte with getxattr on the host path), never in the host inode's own owner
// and (in private mode) never in its mode bits; mirror mode; corrupt records; another record name;
// stat virtualization relaxed and off; d_type in plain readdir.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

mode_t host_perm(const PassthroughMount& m, std::string_view rel) {
  return lstat_of(m.host(rel)).st_mode & 07777;
}

void check_record(const PassthroughMount& m, std::string_view rel, uint32_t uid, uint32_t gid,
                  uint32_t mode, uint32_t rdev = 0) {
  INFO("record of " << rel);
  const StatRecord r = m.record(rel);
  CHECK(r.version == 1);
  CHECK(r.uid == uid);
  CHECK(r.gid == gid);
  CHECK(r.mode == mode);
  CHECK(r.rdev == rdev);
}

// Type letters the way find -printf %y prints them, from d_type.
char dtype_letter(unsigned char t) {
  switch (t) {
    case DT_REG:
      return 'f';
    case DT_DIR:
      return 'd';
    case DT_LNK:
      return 'l';
    case DT_FIFO:
      return 'p';
    case DT_SOCK:
      return 's';
    case DT_CHR:
      return 'c';
    case DT_BLK:
      return 'b';
    default:
      return '?';
  }
}
char mode_letter(mode_t m) {
  return dtype_letter(static_cast<unsigned char>(IFTODT(m)));
}

// name -> d_type letter, from readdir(3) (getdents64) only: no stat in between, so after the
// first buffer the kernel asks with plain FUSE_READDIR.
std::map<std::string, char> dtypes(const std::string& dir) {
  std::map<std::string, char> out;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out[n] = dtype_letter(e->d_type);
  }
  ::closedir(d);
  return out;
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  CHECK(::pclose(p) == 0);
  return out;
}

}  // namespace

TEST_CASE("private mode: the record holds the guest's view / host files stay 0600 and 0700",
          "[pt][record]") {
  PassthroughMount m;
  const uid_t me = ::geteuid();
  const gid_t my_gid = ::getegid();

  write_file(m.path("f"), "x", 0664);  // umask 022
  CHECK(stat_of(m.path("f")).st_mode == (S_IFREG | 0644));
  CHECK(host_perm(m, "f") == 0600);
  check_record(m, "f", me, my_gid, S_IFREG | 0644);

  SYS(::chown(m.path("f").c_str(), 1234, 5678));
  SYS(::chmod(m.path("f").c_str(), 04755));
  const struct stat g = stat_of(m.path("f"));
  CHECK(g.st_uid == 1234);
  CHECK(g.st_gid == 5678);
  CHECK(g.st_mode == (S_IFREG | 04755));
  const struct stat h = lstat_of(m.host("f"));
  CHECK(h.st_uid == me);
  CHECK(h.st_gid == my_gid);
  CHECK((h.st_mode & 07777) == 0600);
  // The exact bytes: version 1, three zero bytes, then little-endian uid, gid, mode, rdev.
  const std::string bytes = *host_xattr(m.host("f"), default_record_name());
  const std::string expect = std::string("\x01\x00\x00\x00", 4) +
                             std::string("\xd2\x04\x00\x00", 4) +
                             std::string("\x2e\x16\x00\x00", 4) +
                             std::string("\xed\x89\x00\x00", 4) + std::string(4, '\0');
  CHECK(bytes.size() == stat_record_size);
  CHECK(bytes == expect);  // 1234 = 0x4d2, 5678 = 0x162e, S_IFREG|04755 = 0x89ed

  SYS(::mkdir(m.path("d").c_str(), 0777));
  CHECK(stat_of(m.path("d")).st_mode == (S_IFDIR | 0755));
  CHECK(host_perm(m, "d") == 0700);
  check_record(m, "d", me, my_gid, S_IFDIR | 0755);
  SYS(::chmod(m.path("d").c_str(), 01777));
  CHECK(host_perm(m, "d") == 0700);
  check_record(m, "d", me, my_gid, S_IFDIR | 01777);

  // Special files are regular host files carrying their type and rdev in the record.
  SYS(::mknod(m.path("d/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)));
  SYS(::mknod(m.path("d/disk").c_str(), S_IFBLK | 0640, ::makedev(259, 70000)));
  SYS(::mknod(m.path("d/fifo").c_str(), S_IFIFO | 0600, 0));
  SYS(::mknod(m.path("d/sock").c_str(), S_IFSOCK | 0700, 0));
  for (const char* n : {"d/null", "d/disk", "d/fifo", "d/sock"}) {
    INFO(n);
    CHECK(S_ISREG(lstat_of(m.host(n)).st_mode));
    CHECK(host_perm(m, n) == 0600);
    CHECK(lstat_of(m.host(n)).st_size == 0);
  }
  check_record(m, "d/null", me, my_gid, S_IFCHR | 0644, 0x103);
  CHECK(fuse_encode_dev(::makedev(1, 3)) == 0x103);
  check_record(m, "d/disk", me, my_gid, S_IFBLK | 0640, fuse_encode_dev(::makedev(259, 70000)));
  check_record(m, "d/fifo", me, my_gid, S_IFIFO | 0600);
  check_record(m, "d/sock", me, my_gid, S_IFSOCK | 0700);
  CHECK(lstat_of(m.path("d/null")).st_rdev == ::makedev(1, 3));
  CHECK(lstat_of(m.path("d/disk")).st_rdev == ::makedev(259, 70000));

  // Strict mode: a guest symlink is a regular host file holding the target.
  SYS(::symlink("../target text", m.path("d/link").c_str()));
  CHECK(S_ISREG(lstat_of(m.host("d/link")).st_mode));
  CHECK(read_file(m.host("d/link")) == "../target text");
  check_record(m, "d/link", me, my_gid, S_IFLNK | 0777);
  CHECK(S_ISLNK(lstat_of(m.path("d/link")).st_mode));
  SYS(::lchown(m.path("d/link").c_str(), 42, 43));
  check_record(m, "d/link", 42, 43, S_IFLNK | 0777);

  // chown -1 keeps a side; a guest chown to the same ids still writes nothing else.
  SYS(::chown(m.path("f").c_str(), static_cast<uid_t>(-1), 99));
  check_record(m, "f", 1234, 99, S_IFREG | 0755);  // chown cleared setuid (the guest kernel asks)
}

TEST_CASE("host files made on the host without a record show the host's owner and mode",
          "[pt][record]") {
  PassthroughMount m({.seed = [](const HostTree& t) {
    write_file(t.root("hostfile"), "from the host", 0640);
    SYS(::chmod(t.root("hostfile").c_str(), 0640));
    SYS(::chown(t.root("hostfile").c_str(), 1, 2));
    SYS(::mkdir(t.root("hostdir").c_str(), 0751));
    SYS(::chmod(t.root("hostdir").c_str(), 0751));
    SYS(::symlink("/etc/passwd", t.root("hostlink").c_str()));
  }});
  struct stat st = stat_of(m.path("hostfile"));
  CHECK(st.st_uid == 1);
  CHECK(st.st_gid == 2);
  CHECK(st.st_mode == (S_IFREG | 0640));
  CHECK(stat_of(m.path("hostdir")).st_mode == (S_IFDIR | 0751));
  CHECK(S_ISLNK(lstat_of(m.path("hostlink")).st_mode));
  CHECK(read_file(m.path("hostfile")) == "from the host");
  CHECK_FALSE(m.has_record("hostfile"));
  // The first guest change snapshots the host's view into a record.
  SYS(::chmod(m.path("hostfile").c_str(), 0604));
  check_record(m, "hostfile", 1, 2, S_IFREG | 0604);
  CHECK(host_perm(m, "hostfile") == 0640);  // private: the host bits stay as they were
  CHECK(lstat_of(m.host("hostfile")).st_uid == 1);
}

TEST_CASE("mirror mode copies rwx bits to the host / never setuid or owners / with floors",
          "[pt][record][mirror]") {
  PassthroughMount m({"--host-permissions", "mirror"});
  write_file(m.path("f"), "x", 0640);
  CHECK(host_perm(m, "f") == 0640);
  SYS(::chmod(m.path("f").c_str(), 0755));
  CHECK(host_perm(m, "f") == 0755);
  SYS(::chmod(m.path("f").c_str(), 04755));
  CHECK(stat_of(m.path("f")).st_mode == (S_IFREG | 04755));
  CHECK(host_perm(m, "f") == 0755);
  SYS(::chmod(m.path("f").c_str(), 02750));
  CHECK(host_perm(m, "f") == 0750);
  // The owner floor: the server must keep reading and writing its own files.
  write_file(m.path("g"), "x", 0040);
  CHECK(stat_of(m.path("g")).st_mode == (S_IFREG | 0040));
  CHECK(host_perm(m, "g") == 0640);
  SYS(::chmod(m.path("g").c_str(), 0));
  CHECK(host_perm(m, "g") == 0600);

  SYS(::mkdir(m.path("d").c_str(), 0755));
  CHECK(host_perm(m, "d") == 0755);
  SYS(::mkdir(m.path("e").c_str(), 0040));
  CHECK(host_perm(m, "e") == 0740);
  SYS(::chmod(m.path("d").c_str(), 03775));
  CHECK(host_perm(m, "d") == 0775);
  CHECK(stat_of(m.path("d")).st_mode == (S_IFDIR | 03775));

  // Owners are never mirrored; special files keep 0600 on the host.
  SYS(::chown(m.path("f").c_str(), 1234, 5678));
  CHECK(lstat_of(m.host("f")).st_uid == ::geteuid());
  SYS(::mknod(m.path("fifo").c_str(), S_IFIFO | 0666, 0));
  CHECK(host_perm(m, "fifo") == 0600);
  SYS(::chmod(m.path("fifo").c_str(), 0777));
  CHECK(host_perm(m, "fifo") == 0600);
  SYS(::symlink("t", m.path("l").c_str()));
  CHECK(host_perm(m, "l") == 0600);
}

TEST_CASE("a corrupt record on the host is EIO through the mount / never the host's attributes",
          "[pt][record][corrupt]") {
  const std::string name = default_record_name();
  PassthroughMount m({.seed = [&](const HostTree& t) {
    const std::string good = encode_record({.uid = 5, .gid = 6, .mode = S_IFREG | 0644});
    const auto plant = [&](const char* file, std::string_view value) {
      write_file(t.root(file), "payload");
      set_host_xattr(t.root(file), name, value);
    };
    plant("healthy", good);
    plant("short", good.substr(0, 5));
    plant("one-byte", good.substr(0, 1));
    plant("empty", "");
    plant("long", good + "xxxx");
    std::string version = good;
    version[0] = '\xff';
    plant("wrong-version", version);
    std::string zero = good;
    zero[0] = '\0';
    plant("version-zero", zero);
    std::string padding = good;
    padding[2] = '\x01';
    plant("padding", padding);
    // A directory whose record says "regular file".
    SYS(::mkdir(t.root("dir-says-file").c_str(), 0700));
    set_host_xattr(t.root("dir-says-file"), name, good);
  }});
  CHECK(stat_of(m.path("healthy")).st_uid == 5);
  for (const char* bad : {"short", "one-byte", "empty", "long", "wrong-version", "version-zero",
                          "padding", "dir-says-file"}) {
    INFO(bad);
    struct stat st {};
    CHECK_ERRNO(EIO, ::stat(m.path(bad).c_str(), &st));
    CHECK_ERRNO(EIO, ::open(m.path(bad).c_str(), O_RDONLY));
  }
  // The names are still listed (readdir does not need their attributes).
  const auto names = list_dir(m.dir());
  CHECK(names.count("short") == 1);
  CHECK(names.count("healthy") == 1);
}

TEST_CASE("with --stat-xattr user.msb.override_stat a tree written under that name is served",
          "[pt][record][stat-xattr]") {
  const std::string msb = "user.msb.override_stat";
  PassthroughMount m(
      {.flags = {"--stat-xattr", msb}, .seed = [&](const HostTree& t) {
         write_file(t.root("bin"), "#!/bin/sh\n");
         set_host_xattr(t.root("bin"), msb,
                        encode_record({.uid = 1000, .gid = 100, .mode = S_IFREG | 04755}));
         // A record under the default name is just another xattr here.
         set_host_xattr(t.root("bin"), default_record_name(),
                        encode_record({.uid = 7, .gid = 7, .mode = S_IFREG | 0600}));
         SYS(::mkdir(t.root("home").c_str(), 0700));
         set_host_xattr(t.root("home"), msb,
                        encode_record({.uid = 1000, .gid = 1000, .mode = S_IFDIR | 0750}));
         write_file(t.root("home/tty"), "");
         set_host_xattr(t.root("home/tty"), msb,
                        encode_record({.uid = 0,
                                       .gid = 5,
                                       .mode = S_IFCHR | 0620,
                                       .rdev = fuse_encode_dev(::makedev(5, 0))}));
         write_file(t.root("home/link"), "../bin");
         set_host_xattr(t.root("home/link"), msb,
                        encode_record({.uid = 1000, .gid = 1000, .mode = S_IFLNK | 0777}));
       }});
  struct stat st = stat_of(m.path("bin"));
  CHECK(st.st_uid == 1000);
  CHECK(st.st_gid == 100);
  CHECK(st.st_mode == (S_IFREG | 04755));
  st = stat_of(m.path("home"));
  CHECK(st.st_mode == (S_IFDIR | 0750));
  CHECK(st.st_uid == 1000);
  st = lstat_of(m.path("home/tty"));
  CHECK(st.st_mode == (S_IFCHR | 0620));
  CHECK(st.st_rdev == ::makedev(5, 0));
  CHECK(st.st_gid == 5);
  CHECK(S_ISLNK(lstat_of(m.path("home/link")).st_mode));
  CHECK(read_file(m.path("home/link")) == "#!/bin/sh\n");  // followed by the guest

  // Changes go to the configured name; the other one is left alone.
  SYS(::chown(m.path("bin").c_str(), 2000, 2000));
  const StatRecord r = m.record("bin", msb);
  CHECK(r.uid == 2000);
  CHECK(r.gid == 2000);
  CHECK(r.mode == (S_IFREG | 0755));  // chown cleared setuid
  CHECK(m.record("bin", default_record_name()).uid == 7);
  write_file(m.path("home/new"), "n");
  CHECK(m.has_record("home/new", msb));
  CHECK_FALSE(m.has_record("home/new", default_record_name()));
  // The configured name is the hidden one.
  char buf[64];
  CHECK_ERRNO(EACCES, ::getxattr(m.path("bin").c_str(), msb.c_str(), buf, sizeof buf));
}

TEST_CASE("plain readdir shows the guest's file types / find -type p and -type l find them",
          "[pt][record][readdir]") {
  for (const char* mode : {"strict", "relaxed"}) {
    DYNAMIC_SECTION(mode) {
      // Enough host entries that the listing takes several getdents64 calls; only the first
      // can be answered with READDIRPLUS by the kernel's heuristics.
      PassthroughMount m({.flags = {"--stat-virtualization", mode}, .seed = [](const HostTree& t) {
                            SYS(::mkdir(t.root("d").c_str(), 0755));
                            for (int i = 0; i < 3000; ++i)
                              write_file(t.root("d/host-" + std::to_string(i)), "");
                          }});
      const std::string d = m.path("d");
      SYS(::mknod((d + "/fifo").c_str(), S_IFIFO | 0644, 0));
      SYS(::mknod((d + "/chr").c_str(), S_IFCHR | 0644, ::makedev(1, 5)));
      SYS(::mknod((d + "/blk").c_str(), S_IFBLK | 0644, ::makedev(7, 0)));
      SYS(::mknod((d + "/sock").c_str(), S_IFSOCK | 0644, 0));
      SYS(::symlink("fifo", (d + "/link").c_str()));
      SYS(::mkdir((d + "/sub").c_str(), 0755));
      write_file(d + "/file", "f");

      const std::map<std::string, char> want = {{"fifo", 'p'}, {"chr", 'c'},  {"blk", 'b'},
                                                {"sock", 's'}, {"link", 'l'}, {"sub", 'd'},
                                                {"file", 'f'}};
      // Twice: a cold listing (after the creates the kernel knows these names) and one on a
      // fresh mount of the same tree would both have to be right; here the first pass runs
      // with the dentries cached, the second after dropping them.
      for (int pass = 0; pass < 2; ++pass) {
        INFO("pass " << pass);
        if (pass == 1) {
          ::sync();
          REQUIRE(std::system("echo 2 > /proc/sys/vm/drop_caches") == 0);
        }
        const auto got = dtypes(d);
        CHECK(got.size() == 3007);
        for (const auto& [name, type] : want) {
          INFO(name);
          REQUIRE(got.count(name) == 1);
          CHECK(got.at(name) == type);
          CHECK(mode_letter(lstat_of(d + "/" + name).st_mode) == type);
        }
      }
      CHECK(run("find '" + d + "' -type p") == d + "/fifo\n");
      CHECK(run("find '" + d + "' -type l") == d + "/link\n");
      CHECK(run("find '" + d + "' -type c -o -type b -o -type s | sort") ==
            d + "/blk\n" + d + "/chr\n" + d + "/sock\n");
    }
  }
}

TEST_CASE("stat virtualization off: host owners and modes / EPERM chown / EOPNOTSUPP specials",
          "[pt][record][off]") {
  PassthroughMount m({.flags = {"--stat-virtualization", "off"}, .seed = [](const HostTree& t) {
                        write_file(t.root("planted"), "p");
                        set_host_xattr(t.root("planted"), default_record_name(), "garbage");
                      }});
  // A planted record, even a corrupt one, is ignored.
  CHECK(stat_of(m.path("planted")).st_uid == ::geteuid());
  CHECK(read_file(m.path("planted")) == "p");

  write_file(m.path("f"), "x", 0644);
  CHECK(host_perm(m, "f") == 0644);
  CHECK_FALSE(m.has_record("f"));
  write_file(m.path("g"), "x", 0040);
  CHECK(host_perm(m, "g") == 0640);  // the owner floor
  SYS(::chmod(m.path("f").c_str(), 0751));
  CHECK(host_perm(m, "f") == 0751);
  SYS(::chmod(m.path("f").c_str(), 04755));
  CHECK(host_perm(m, "f") == 0755);  // setuid never reaches the host
  SYS(::mkdir(m.path("d").c_str(), 0750));
  CHECK(host_perm(m, "d") == 0750);
  CHECK_FALSE(m.has_record("d"));
  CHECK_ERRNO(EPERM, ::chown(m.path("f").c_str(), 1234, 1234));
  CHECK_ERRNO(EPERM, ::chown(m.path("f").c_str(), static_cast<uid_t>(-1), 1234));
  CHECK_ERRNO(EOPNOTSUPP, ::mknod(m.path("fifo").c_str(), S_IFIFO | 0644, 0));
  CHECK_ERRNO(EOPNOTSUPP, ::mknod(m.path("chr").c_str(), S_IFCHR | 0644, ::makedev(1, 3)));
  SYS(::symlink("f", m.path("l").c_str()));
  CHECK(S_ISLNK(lstat_of(m.host("l")).st_mode));  // a real host symlink
  CHECK(read_file(m.path("l")) == "x");
}

TEST_CASE("stat virtualization relaxed: records as strict / real host symlinks",
          "[pt][record][relaxed]") {
  PassthroughMount m({.flags = {"--stat-virtualization", "relaxed"}, .seed = [](const HostTree& t) {
                        write_file(t.root("corrupt"), "c");
                        set_host_xattr(t.root("corrupt"), default_record_name(), "bad");
                      }});
  write_file(m.path("f"), "x", 0644);
  check_record(m, "f", ::geteuid(), ::getegid(), S_IFREG | 0644);
  CHECK(host_perm(m, "f") == 0600);
  SYS(::symlink("f", m.path("l").c_str()));
  CHECK(S_ISLNK(lstat_of(m.host("l")).st_mode));
  // A real host symlink has no record: it shows the host's owner; a chown to that owner is a
  // no-op that succeeds (tar -x and cp -a as root do it for every link), a real change is EPERM.
  const struct stat link_st = lstat_of(m.path("l"));
  CHECK(link_st.st_uid == lstat_of(m.host("l")).st_uid);
  SYS(::lchown(m.path("l").c_str(), link_st.st_uid, link_st.st_gid));
  SYS(::lchown(m.path("l").c_str(), static_cast<uid_t>(-1), link_st.st_gid));
  CHECK_ERRNO(EPERM, ::lchown(m.path("l").c_str(), link_st.st_uid + 1, link_st.st_gid));
  CHECK(lstat_of(m.path("l")).st_uid == link_st.st_uid);
  SYS(::mknod(m.path("fifo").c_str(), S_IFIFO | 0600, 0));
  check_record(m, "fifo", ::geteuid(), ::getegid(), S_IFIFO | 0600);
  struct stat st {};
  CHECK_ERRNO(EIO, ::stat(m.path("corrupt").c_str(), &st));
}
