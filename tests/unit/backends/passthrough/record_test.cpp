// The ownership record: its bytes on the host, what it virtualizes, how it fails, who may see it;
// and the stat virtualization and host permission policies.
#include <sys/sysmacros.h>

#include "backends/passthrough/ownership_record.hpp"
#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

namespace {

void plant(const TestFs& t, std::string_view rel, const std::string& bytes,
           const std::string& name = "") {
  const std::string key = name.empty() ? t.config.stat_xattr : name;
  REQUIRE(::lsetxattr(t.host(rel).c_str(), key.c_str(), bytes.data(), bytes.size(), 0) == 0);
}

Tweak virt(StatVirtualization v, HostPermissions p = HostPermissions::private_) {
  return [=](PassthroughConfig& c) {
    c.stat_virtualization = v;
    c.host_permissions = p;
  };
}

}  // namespace

TEST_CASE("passthrough: record encoding is the 20-byte version-1 layout", "[passthrough][record]") {
  Record r{1000, 2000, S_IFCHR | 0640, 0x0501};
  std::array<char, record_size> bytes = encode_record(r);
  CHECK(std::string(bytes.data(), bytes.size()) ==
        record_bytes(1000, 2000, S_IFCHR | 0640, 0x0501));
  Result<Record> back = decode_record(bytes);
  REQUIRE(back.ok());
  CHECK(*back == r);
  CHECK(err(decode_record(std::span<const char>(bytes.data(), 19))) == EIO);
  bytes[0] = 2;
  CHECK(err(decode_record(bytes)) == EIO);
  bytes[0] = 1;
  bytes[2] = 7;
  CHECK(err(decode_record(bytes)) == EIO);
  CHECK(err(decode_record(encode_record(Record{0, 0, 0644, 0}))) == EIO);  // no type
  CHECK(err(decode_record(encode_record(Record{0, 0, 0170644, 0}))) == EIO);
  CHECK(record_fits(Record{0, 0, S_IFLNK | 0777, 0}, S_IFREG));
  CHECK(!record_fits(Record{0, 0, S_IFDIR | 0777, 0}, S_IFREG));
  CHECK(!record_fits(Record{0, 0, S_IFREG | 0777, 0}, S_IFDIR));
}

TEST_CASE("passthrough: new objects carry exactly the record the guest asked for",
          "[passthrough][record]") {
  TestFs t;
  t.ctx.uid = 1000;
  t.ctx.gid = 2000;
  Entry f = t.file(root, "f", 04755);
  CHECK(f.attr.mode == (S_IFREG | 04755));
  CHECK(f.attr.uid == 1000);
  CHECK(f.attr.gid == 2000);
  CHECK(t.host_record("f") == record_bytes(1000, 2000, S_IFREG | 04755));
  Entry d = t.mkdir_ok(root, "d", 01777);
  CHECK(t.host_record("d") == record_bytes(1000, 2000, S_IFDIR | 01777));
  CHECK(d.attr.mode == (S_IFDIR | 01777));
  Result<Entry> dev = t.mknod(root, "dev", S_IFBLK | 0660, 0x0801);
  REQUIRE(dev.ok());
  CHECK(t.host_record("dev") == record_bytes(1000, 2000, S_IFBLK | 0660, 0x0801));
  CHECK(dev->attr.rdev == 0x0801);
  Result<Entry> l = t.symlink(root, "l", "target/path");
  REQUIRE(l.ok());
  CHECK(t.host_record("l") == record_bytes(1000, 2000, S_IFLNK | 0777));

  // The host keeps its own, private, modes and the server's ownership.
  CHECK((t.host_stat("f").st_mode & 07777) == 0600);
  CHECK((t.host_stat("d").st_mode & 07777) == 0700);
  CHECK(S_ISREG(t.host_stat("dev").st_mode));
  CHECK(S_ISREG(t.host_stat("l").st_mode));
  CHECK(t.host_stat("f").st_uid == ::geteuid());
}

TEST_CASE("passthrough: chown and chmod rewrite the record and never the host",
          "[passthrough][record]") {
  TestFs t;
  Entry f = t.file(root, "f", 0644);
  Result<AttrReply> a = t.chown(f.ino, 1234, 2345);
  REQUIRE(a.ok());
  CHECK(a->attr.uid == 1234);
  CHECK(a->attr.gid == 2345);
  a = t.chmod(f.ino, 0755);
  REQUIRE(a.ok());
  CHECK(a->attr.mode == (S_IFREG | 0755));
  CHECK(t.host_record("f") == record_bytes(1234, 2345, S_IFREG | 0755));
  CHECK((t.host_stat("f").st_mode & 07777) == 0600);
  CHECK(t.host_stat("f").st_uid == ::geteuid());
  // The attributes survive a remount: they live on the host.
  Attr again = t.attr(f.ino);
  CHECK(again.uid == 1234);
  CHECK(again.mode == (S_IFREG | 0755));
  Entry d = t.mkdir_ok(root, "d", 0700);
  REQUIRE(t.chmod(d.ino, 0755).ok());
  CHECK((t.host_stat("d").st_mode & 07777) == 0700);
  CHECK(t.attr(d.ino).mode == (S_IFDIR | 0755));
}

TEST_CASE("passthrough: a corrupt record fails closed with EIO", "[passthrough][record]") {
  TestFs t;
  const std::string good = record_bytes(1, 2, S_IFREG | 0644);
  struct Case {
    const char* what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"one byte", std::string(1, '\x01')},
      {"five bytes", std::string(5, '\x01')},
      {"nineteen bytes", good.substr(0, 19)},
      {"twenty-one bytes", good + "x"},
      {"a hundred bytes", std::string(100, '\x01')},
      {"version 0xFF", std::string(1, '\xFF') + good.substr(1)},
      {"version 0", std::string(1, '\0') + good.substr(1)},
      {"non-zero padding", good.substr(0, 1) + "\x01" + good.substr(2)},
      {"a directory type on a file", record_bytes(1, 2, S_IFDIR | 0755)},
      {"no type", record_bytes(1, 2, 0644)},
  };
  int i = 0;
  for (const Case& c : cases) {
    INFO(c.what);
    const std::string name = "f" + std::to_string(i++);
    t.host_write(name, "data");
    plant(t, name, c.bytes);
    CHECK(err(t.lookup(root, name)) == EIO);
  }
  // Found fine first, corrupted afterwards: getattr notices (the host ctime moved).
  t.host_write("later", "x");
  Entry later = t.lookup_ok(root, "later");
  plant(t, "later", "bad");
  CHECK(err(t.getattr(later.ino)) == EIO);
  CHECK(err(t.access(later.ino, R_OK)) == EIO);
  // A directory with a file's record.
  t.host_mkdir("dir");
  plant(t, "dir", record_bytes(0, 0, S_IFREG | 0644));
  CHECK(err(t.lookup(root, "dir")) == EIO);
  // A host file with no record is served with the host's attributes.
  t.host_write("plain", "12345", 0640);
  Entry plain = t.lookup_ok(root, "plain");
  CHECK(plain.attr.size == 5);
  CHECK(plain.attr.mode == (S_IFREG | 0640));
  CHECK(plain.attr.uid == ::geteuid());
}

TEST_CASE("passthrough: a record edited on the host is seen at the next getattr",
          "[passthrough][record]") {
  TestFs t;
  Entry f = t.file(root, "f", 0644);
  CHECK(t.attr(f.ino).uid == 0);
  plant(t, "f", record_bytes(77, 88, S_IFREG | 0600));
  Attr a = t.attr(f.ino);
  CHECK(a.uid == 77);
  CHECK(a.gid == 88);
  CHECK(a.mode == (S_IFREG | 0600));
}

TEST_CASE("passthrough: a directory's cached record follows the guest's own entry changes",
          "[passthrough][record]") {
  // The kernel asks for a directory's attributes after every create or unlink in it; its ctime
  // moved, but only through our own change, so no record re-read (a blocking-pool job) is due.
  TestFs t;
  Entry d = t.mkdir_ok(root, "d", 0750);
  CHECK(t.attr(d.ino).mode == (S_IFDIR | 0750));
  sandfs::io::Ring& ring = sandfs::test::thread_runner().ring();
  Entry x = t.file(d.ino, "x");
  REQUIRE(t.mkdir(d.ino, "sub").ok());
  REQUIRE(t.rename(d.ino, "x", d.ino, "y").ok());
  REQUIRE(t.unlink(d.ino, "y").ok());
  (void)x;
  const uint64_t jobs = ring.stats().pool_jobs;
  CHECK(t.attr(d.ino).mode == (S_IFDIR | 0750));
  CHECK(ring.stats().pool_jobs == jobs);

  // A host edit of the record is still seen: it moves the ctime without us.
  plant(t, "d", record_bytes(5, 6, S_IFDIR | 0700));
  Attr a = t.attr(d.ino);
  CHECK(a.uid == 5);
  CHECK(a.gid == 6);
  CHECK(a.mode == (S_IFDIR | 0700));
  // And after a guest change that follows a host edit, the host's record stands.
  plant(t, "d", record_bytes(7, 8, S_IFDIR | 0711));
  t.file(d.ino, "z");
  a = t.attr(d.ino);
  CHECK(a.uid == 7);
  CHECK(a.mode == (S_IFDIR | 0711));
}

TEST_CASE("passthrough: the guest can neither read write remove nor list the record",
          "[passthrough][record][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.visible", "v").ok());
  const std::string rec = t.config.stat_xattr;
  CHECK(err(t.getxattr(f.ino, rec, 0)) == EACCES);
  CHECK(err(t.getxattr(f.ino, rec, 100)) == EACCES);
  CHECK(err(t.setxattr(f.ino, rec, record_bytes(0, 0, S_IFCHR | 0666, 0x0101))) == EACCES);
  CHECK(err(t.removexattr(f.ino, rec)) == EACCES);
  Result<XattrReply> sized = t.listxattr(f.ino, 0);
  REQUIRE(sized.ok());
  CHECK(sized->size == std::string("user.visible").size() + 1);
  Result<XattrReply> list = t.listxattr(f.ino, 1000);
  REQUIRE(list.ok());
  CHECK(std::string(list->data.data(), list->data.size()) == std::string("user.visible\0", 13));
  // A buffer that fits the list without the record is enough.
  CHECK(t.listxattr(f.ino, 13).ok());
  CHECK(err(t.listxattr(f.ino, 12)) == ERANGE);
  // Still intact on the host.
  CHECK(t.host_record("f") == record_bytes(0, 0, S_IFREG | 0644));
}

TEST_CASE("passthrough: --stat-xattr serves microsandbox volumes as they are",
          "[passthrough][record]") {
  TestFs t([](PassthroughConfig& c) { c.stat_xattr = std::string(msb_stat_xattr); });
  t.host_write("msb_file", "x");
  plant(t, "msb_file", record_bytes(501, 20, S_IFREG | 0750), std::string(msb_stat_xattr));
  Entry e = t.lookup_ok(root, "msb_file");
  CHECK(e.attr.uid == 501);
  CHECK(e.attr.gid == 20);
  CHECK(e.attr.mode == (S_IFREG | 0750));
  Entry f = t.file(root, "new", 0600);
  CHECK(t.host_xattr("new", std::string(msb_stat_xattr)) == record_bytes(0, 0, S_IFREG | 0600));
  CHECK(!t.host_xattr("new", std::string(default_stat_xattr)));
  CHECK(err(t.getxattr(f.ino, msb_stat_xattr, 0)) == EACCES);
  // Our default name is an ordinary xattr on such a mount.
  CHECK(t.setxattr(f.ino, default_stat_xattr, "whatever").ok());
}

TEST_CASE("passthrough: private host permissions keep host files 0600 and dirs 0700",
          "[passthrough][policy]") {
  TestFs t;
  Entry f = t.file(root, "f", 0777);
  Entry d = t.mkdir_ok(root, "d", 0777);
  REQUIRE(t.chmod(f.ino, 04755).ok());
  REQUIRE(t.chmod(d.ino, 02775).ok());
  CHECK((t.host_stat("f").st_mode & 07777) == 0600);
  CHECK((t.host_stat("d").st_mode & 07777) == 0700);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 04755));
  CHECK(t.attr(d.ino).mode == (S_IFDIR | 02775));
}

TEST_CASE("passthrough: mirror host permissions widen with an owner floor and no special bits",
          "[passthrough][policy]") {
  TestFs t(virt(StatVirtualization::strict, HostPermissions::mirror));
  Entry f = t.file(root, "f", 0040);
  CHECK(f.attr.mode == (S_IFREG | 0040));
  CHECK((t.host_stat("f").st_mode & 07777) == 0640);
  Entry d = t.mkdir_ok(root, "d", 0040);
  CHECK((t.host_stat("d").st_mode & 07777) == 0740);
  REQUIRE(t.chmod(f.ino, 0755).ok());
  CHECK((t.host_stat("f").st_mode & 07777) == 0755);
  REQUIRE(t.chmod(f.ino, 06777).ok());
  CHECK((t.host_stat("f").st_mode & 07777) == 0777);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 06777));
  REQUIRE(t.chmod(d.ino, 01777).ok());
  CHECK((t.host_stat("d").st_mode & 07777) == 0777);
  // Special files stay 0600 on the host.
  Result<Entry> fifo = t.mknod(root, "fifo", S_IFIFO | 0666);
  REQUIRE(fifo.ok());
  REQUIRE(t.chmod(fifo->ino, 0777).ok());
  CHECK((t.host_stat("fifo").st_mode & 07777) == 0600);
  // Owners are never mirrored.
  REQUIRE(t.chown(f.ino, 4242, 4242).ok());
  CHECK(t.host_stat("f").st_uid == ::geteuid());
}

TEST_CASE("passthrough: mirror applies even when the process umask would cut bits",
          "[passthrough][policy]") {
  const mode_t old = ::umask(077);
  TestFs t(virt(StatVirtualization::strict, HostPermissions::mirror));
  Entry f = t.file(root, "f", 0755);
  Entry d = t.mkdir_ok(root, "d", 0755);
  ::umask(old);
  CHECK((t.host_stat("f").st_mode & 07777) == 0755);
  CHECK((t.host_stat("d").st_mode & 07777) == 0755);
  (void)f;
  (void)d;
}

TEST_CASE("passthrough: stat virtualization off uses the host and never touches records",
          "[passthrough][policy]") {
  TestFs t(virt(StatVirtualization::off));
  t.host_write("planted", "x");
  plant(t, "planted", record_bytes(5, 5, S_IFCHR | 0777, 1));
  Entry planted = t.lookup_ok(root, "planted");
  CHECK(planted.attr.uid == ::geteuid());
  CHECK((planted.attr.mode & S_IFMT) == S_IFREG);
  t.host_write("corrupt", "x");
  plant(t, "corrupt", "junk");
  CHECK(t.lookup(root, "corrupt").ok());

  Entry f = t.file(root, "f", 0644);
  CHECK(!t.host_record("f"));
  CHECK((t.host_stat("f").st_mode & 07777) == 0644);
  Entry g = t.file(root, "g", 0000);
  CHECK((t.host_stat("g").st_mode & 07777) == 0600);
  Entry d = t.mkdir_ok(root, "d", 0500);
  CHECK((t.host_stat("d").st_mode & 07777) == 0700);
  CHECK(!t.host_record("d"));
  CHECK(err(t.chown(f.ino, 1, 1)) == EPERM);
  SetAttrIn uid_only;
  uid_only.valid = fuse::FATTR_UID;
  CHECK(err(t.setattr(f.ino, uid_only)) == EPERM);
  REQUIRE(t.chmod(f.ino, 04755).ok());
  CHECK((t.host_stat("f").st_mode & 07777) == 0755);
  for (uint32_t type : {S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK}) {
    CHECK(err(t.mknod(root, "special", type | 0644, 0x0101)) == EOPNOTSUPP);
  }
  CHECK(t.mknod(root, "regular", S_IFREG | 0644).ok());
  Result<Entry> l = t.symlink(root, "l", "target");
  REQUIRE(l.ok());
  CHECK(S_ISLNK(t.host_stat("l").st_mode));
  CHECK(*t.readlink(l->ino) == "target");
  (void)g;
  (void)d;
}

TEST_CASE("passthrough: off together with mirror is refused with a clear message",
          "[passthrough][policy]") {
  HostDir d;
  PassthroughConfig c;
  c.root = d.path();
  c.stat_virtualization = StatVirtualization::off;
  c.host_permissions = HostPermissions::mirror;
  MakeResult r = make_passthrough(c);
  CHECK(!r);
  CHECK(r.error.find("off") != std::string::npos);
  CHECK(r.error.find("mirror") != std::string::npos);
}

TEST_CASE("passthrough: relaxed reads records where they are and makes real symlinks",
          "[passthrough][policy]") {
  TestFs t(virt(StatVirtualization::relaxed));
  t.host_write("f", "x");
  plant(t, "f", record_bytes(7777, 8888, S_IFREG | 0777));
  Entry f = t.lookup_ok(root, "f");
  CHECK(f.attr.uid == 7777);
  CHECK(f.attr.gid == 8888);
  CHECK(f.attr.mode == (S_IFREG | 0777));
  t.host_write("bad", "x");
  plant(t, "bad", "junk");
  CHECK(err(t.lookup(root, "bad")) == EIO);
  Result<Entry> l = t.symlink(root, "l", "somewhere");
  REQUIRE(l.ok());
  CHECK(S_ISLNK(t.host_stat("l").st_mode));
  CHECK((l->attr.mode & S_IFMT) == S_IFLNK);
  CHECK(*t.readlink(l->ino) == "somewhere");
  t.file(root, "g", 0640);
  CHECK(t.host_record("g") == record_bytes(0, 0, S_IFREG | 0640));
}

TEST_CASE("passthrough: strict symlinks are regular host files holding the target",
          "[passthrough][policy]") {
  TestFs t;
  Result<Entry> l = t.symlink(root, "l", "../some/where");
  REQUIRE(l.ok());
  CHECK((l->attr.mode & S_IFMT) == S_IFLNK);
  CHECK(l->attr.size == 13);
  CHECK(S_ISREG(t.host_stat("l").st_mode));
  CHECK(t.host_read("l") == "../some/where");
  CHECK(*t.readlink(l->ino) == "../some/where");
  CHECK(err(t.open(l->ino, O_RDONLY)) == ELOOP);
  // Regular files are not symlinks, whatever their bytes.
  Entry f = t.file_with(root, "f", "/etc/passwd");
  CHECK(err(t.readlink(f.ino)) == EINVAL);
  CHECK(err(t.readlink(root)) == EINVAL);
}

TEST_CASE("passthrough: devices fifos and sockets are records on empty host files",
          "[passthrough][policy]") {
  TestFs t;
  struct Kind {
    uint32_t type;
    uint32_t rdev;
  };
  for (Kind k :
       {Kind{S_IFIFO, 0}, Kind{S_IFSOCK, 0}, Kind{S_IFCHR, 0x0501}, Kind{S_IFBLK, 0x0801}}) {
    const std::string name = "n" + std::to_string(k.type);
    Result<Entry> e = t.mknod(root, name, k.type | 0640, k.rdev);
    REQUIRE(e.ok());
    CHECK((e->attr.mode & S_IFMT) == k.type);
    CHECK(e->attr.rdev == k.rdev);
    CHECK(S_ISREG(t.host_stat(name).st_mode));
    CHECK(t.host_stat(name).st_size == 0);
    Entry again = t.lookup_ok(root, name);
    CHECK(again.attr.mode == (k.type | 0640));
    CHECK(again.attr.rdev == k.rdev);
  }
  CHECK(err(t.mknod(root, "dir", S_IFDIR | 0755)) == EINVAL);
  Result<Entry> typeless = t.mknod(root, "typeless", 0644);
  REQUIRE(typeless.ok());
  CHECK(typeless->attr.mode == (S_IFREG | 0644));
}

TEST_CASE("passthrough: a known name whose record went corrupt looks up as EIO",
          "[passthrough][record]") {
  // Regression: the one-statx path for known names returned the cached corrupt state as success.
  TestFs t;
  Entry f = t.file(root, "f");
  plant(t, "f", "junk");
  CHECK(err(t.getattr(f.ino)) == EIO);  // caches the corrupt state
  CHECK(err(t.lookup(root, "f")) == EIO);
  CHECK(err(t.lookup(root, "f")) == EIO);
  CHECK(err(t.open(f.ino, O_RDONLY)) == EIO);
  CHECK(t.fs->lookup_count(f.ino) == 1);
}
