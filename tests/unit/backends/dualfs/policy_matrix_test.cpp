// The policy matrix: every built-in policy x every operation x an object that only A has, only B
// has, or both have. Each cell runs on a fresh DualFs over two MemFs and checks what the caller
// sees, where the result landed in A, that a refused change left A as it was, and (every cell)
// that B is exactly as it was arranged.
//
// The expectation of a cell is derived from three facts of the policy (lookup_order,
// copy_up) and the placement, the same rules docs/dualfs.md states per operation:
// * seen():        the object DualFs shows: A's or B's (B's when B is consulted and either A
//                  lacks the name or B comes first), or none;
// * change_err():  a change to a B object is a copy-up, or EROFS when copy_up() is false;
// * remove_err():  removing or replacing a name B shows needs a whiteout, EROFS likewise.
#include <sys/xattr.h>

#include <map>

#include "backends/dualfs/child_listing.hpp"
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

enum class Place { a_only, b_only, both };
enum class Seen { none, a, b };

const char* place_name(Place p) {
  switch (p) {
    case Place::a_only:
      return "A-only";
    case Place::b_only:
      return "B-only";
    case Place::both:
      return "both";
  }
  return "?";
}

const std::string a_data = "A:obj";
const std::string b_data = "B:obj-bytes";

std::string value_of(const XattrReply& r) {
  return std::string(r.data.begin(), r.data.end());
}

// Everything observable of a backend's tree but atime and ctime, keyed by path.
using Tree = std::map<std::string, std::string>;

void walk_tree(Backend& be, InodeId dir, const std::string& path, Tree& out) {
  Result<std::vector<ChildDirEntry>> entries = run_coro(list_child_dir(*be.fs, be.ctx, dir));
  REQUIRE(entries.ok());
  for (const ChildDirEntry& e : *entries) {
    const std::string p = path + "/" + e.name;
    Result<Entry> found = run_coro(be.fs->lookup(be.ctx, dir, e.name));
    REQUIRE(found.ok());
    const Attr& a = found->attr;
    std::string d = std::to_string(a.mode) + " " + std::to_string(a.uid) + ":" +
                    std::to_string(a.gid) + " size " + std::to_string(a.size) + " nlink " +
                    std::to_string(a.nlink) + " mtime " + std::to_string(a.mtime.sec) + "." +
                    std::to_string(a.mtime.nsec) + " rdev " + std::to_string(a.rdev);
    if (S_ISREG(a.mode)) {
      d += " data " + be.content(p.substr(1)).value_or("?");
    } else if (S_ISLNK(a.mode)) {
      Result<std::string> t = run_coro(be.fs->readlink(be.ctx, found->ino));
      d += " target " + (t ? *t : std::string("?"));
    }
    Result<XattrReply> names = run_coro(be.fs->listxattr(be.ctx, found->ino, 65536));
    if (names) {
      const std::string list = value_of(*names);
      for (size_t pos = 0; pos < list.size();) {
        const std::string name = list.c_str() + pos;
        pos += name.size() + 1;
        Result<XattrReply> v = run_coro(be.fs->getxattr(be.ctx, found->ino, name, 65536));
        d += " xattr " + name + "=" + (v ? value_of(*v) : std::string("?"));
      }
    }
    out[p] = d;
    if (S_ISDIR(a.mode)) walk_tree(be, found->ino, p, out);
  }
}

Tree tree(Backend& be) {
  Tree t;
  walk_tree(be, root, "", t);
  return t;
}

void set_xattr(Backend& be, std::string_view path, std::string_view name, std::string_view v) {
  const InodeId ino = be.walk(path);
  REQUIRE(ino != 0);
  REQUIRE(run_coro(be.fs->setxattr(be.ctx, ino, name, std::span<const char>(v.data(), v.size()), 0))
              .ok());
}

// On each side that has it: obj (a file with xattr user.orig), lnk (a symlink), fifo, dir (an
// empty directory with xattr user.orig) and full (a directory; B's holds "child").
void arrange(DualFixture& f, Place place) {
  if (place != Place::b_only) {
    f.A.put("obj", a_data);
    set_xattr(f.A, "obj", "user.orig", "A");
    REQUIRE(run_coro(f.A.fs->symlink(f.A.ctx, root, "lnk", "to-A")).ok());
    f.A.mkdirs("dir");
    f.A.mkdirs("full");
    REQUIRE(run_coro(f.A.fs->mknod(f.A.ctx, root, "fifo", S_IFIFO | 0640, 0, 0)).ok());
    set_xattr(f.A, "dir", "user.orig", "A");
  }
  if (place != Place::a_only) {
    f.B.put("obj", b_data);
    set_xattr(f.B, "obj", "user.orig", "B");
    REQUIRE(run_coro(f.B.fs->symlink(f.B.ctx, root, "lnk", "to-B")).ok());
    f.B.mkdirs("dir");
    f.B.put("full/child", "c");
    REQUIRE(run_coro(f.B.fs->mknod(f.B.ctx, root, "fifo", S_IFIFO | 0640, 0, 0)).ok());
    set_xattr(f.B, "dir", "user.orig", "B");
  }
}

struct Case {
  Case(std::shared_ptr<const Policy> p, Place where) : policy(p), place(where), f(p) {
    arrange(f, place);
    // B as a read-only PassthroughFs: every change (and access W_OK) answers EROFS.
    f.b->read_only = true;
    a_before = tree(f.A);
  }

  bool a_has() const { return place != Place::b_only; }
  bool b_has() const { return place != Place::a_only; }
  // B's name shows through the policy (removing or replacing it needs a whiteout).
  bool b_shows() const { return b_has() && policy->lookup_order().contains(Side::b); }
  Seen seen() const {
    if (!a_has() && !b_shows()) return Seen::none;
    if (!b_shows()) return Seen::a;
    if (!a_has()) return Seen::b;
    return policy->lookup_order().first == Side::b ? Seen::b : Seen::a;
  }
  int change_err() const {
    if (seen() == Seen::none) return ENOENT;
    return seen() == Seen::b && !policy->copy_up() ? EROFS : 0;
  }
  int remove_err() const {
    if (seen() == Seen::none) return ENOENT;
    return b_shows() && !policy->copy_up() ? EROFS : 0;
  }
  const std::string& data() const { return seen() == Seen::a ? a_data : b_data; }

  // A refused operation changed nothing in A either.
  void a_unchanged() { CHECK(tree(f.A) == a_before); }
  // `got` is what the expectation `want` (0: success) says, and a refusal left A alone.
  void expect(int got, int want) {
    CHECK(got == want);
    if (want != 0 && want != EEXIST) a_unchanged();
  }

  std::shared_ptr<const Policy> policy;
  Place place;
  DualFixture f;
  Tree a_before;
};

int err_of(const Status& s) {
  return s ? 0 : s.error();
}
template <class T>
int err_of(const Result<T>& r) {
  return r ? 0 : r.error();
}

// Opens obj through DualFs; the handle is released by the destructor.
struct Opened {
  Opened(Case& c, uint32_t flags) : c(c) {
    Result<Entry> e = c.f.lookup("obj");
    if (!e) {
      err = e.error();
      return;
    }
    ino = e->ino;
    Result<OpenReply> o = run_coro(c.f.fs->open(c.f.ctx, ino, flags, false));
    if (!o) {
      err = o.error();
      return;
    }
    fh = o->fh;
  }
  ~Opened() {
    if (err == 0) CHECK(run_coro(c.f.fs->release(c.f.ctx, ino, fh, 0)).ok());
  }
  Opened(const Opened&) = delete;
  Opened& operator=(const Opened&) = delete;
  Case& c;
  int err = 0;
  InodeId ino = 0;
  HandleId fh = 0;
};

Result<AttrReply> set(Case& c, std::string_view path, SetAttrIn in) {
  return c.f.setattr(path, in);
}

// An operation whose only visible effect on success is that obj now is `after` (in A too).
void expect_written(Case& c, int got, const std::string& after) {
  c.expect(got, c.change_err());
  if (got != 0) {
    if (c.seen() != Seen::none) CHECK(*c.f.read("obj") == c.data());
    return;
  }
  CHECK(*c.f.read("obj") == after);
  CHECK(c.f.A.content("obj") == after);
}

// Creating something at obj: EEXIST while it shows, else a new A object.
void expect_made(Case& c, int got, uint32_t type) {
  if (c.seen() != Seen::none) {
    CHECK(got == EEXIST);
    c.a_unchanged();
    return;
  }
  REQUIRE(got == 0);
  CHECK((c.f.attr("obj").mode & S_IFMT) == type);
  CHECK((c.f.A.attr("obj").mode & S_IFMT) == type);
}

struct Row {
  const char* name;
  void (*run)(Case&);
};

const Row rows[] = {
    {"lookup",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) {
         CHECK(e.error() == ENOENT);
         return;
       }
       REQUIRE(e.ok());
       CHECK(e->attr.size == c.data().size());
       CHECK(e->attr.ino == e->ino);
     }},
    {"getattr",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) {
         CHECK(e.error() == ENOENT);
         return;
       }
       REQUIRE(e.ok());
       Result<AttrReply> a = run_coro(c.f.fs->getattr(c.f.ctx, e->ino, std::nullopt));
       REQUIRE(a.ok());
       CHECK(a->attr.size == c.data().size());
       CHECK(S_ISREG(a->attr.mode));
       CHECK(a->attr.ino == e->ino);
     }},
    {"access",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       CHECK(run_coro(c.f.fs->access(c.f.ctx, e->ino, R_OK)).ok());
     }},
    {"access W_OK",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       // Writable as the copy would be (B's read-only EROFS is not the answer), or EROFS when
       // the policy keeps B read-only.
       const bool refused = c.seen() == Seen::b && !c.policy->copy_up();
       CHECK(err_of(run_coro(c.f.fs->access(c.f.ctx, e->ino, W_OK))) == (refused ? EROFS : 0));
       RequestContext other;
       other.uid = 1000;
       other.gid = 1000;
       CHECK(err_of(run_coro(c.f.fs->access(other, e->ino, R_OK))) == 0);
       CHECK(err_of(run_coro(c.f.fs->access(other, e->ino, R_OK | W_OK))) ==
             (refused ? EROFS : EACCES));
     }},
    {"open read",
     [](Case& c) {
       Result<std::string> r = c.f.read("obj");
       if (c.seen() == Seen::none) {
         CHECK(r.error() == ENOENT);
         return;
       }
       REQUIRE(r.ok());
       CHECK(*r == c.data());
       c.a_unchanged();  // a read copies nothing up
     }},
    {"open write O_TRUNC",
     [](Case& c) {
       expect_written(c, err_of(c.f.write("obj", "new", O_WRONLY | O_TRUNC)), "new");
     }},
    {"open write in place",
     [](Case& c) {
       std::string after = c.data();
       after.replace(0, 2, "XY");
       expect_written(c, err_of(c.f.write("obj", "XY", O_RDWR)), after);
     }},
    {"create O_EXCL",
     [](Case& c) {
       Result<Entry> made = c.f.create("obj", "fresh");
       expect_made(c, err_of(made), S_IFREG);
       if (made) CHECK(c.f.A.content("obj") == "fresh");
     }},
    {"create over existing",
     [](Case& c) {
       Result<Entry> made = c.f.create("obj", "fresh", 0644, O_WRONLY | O_CREAT | O_TRUNC);
       if (c.seen() == Seen::none) {
         REQUIRE(made.ok());
         CHECK(c.f.A.content("obj") == "fresh");
         return;
       }
       expect_written(c, err_of(made), "fresh");
     }},
    {"mkdir",
     [](Case& c) {
       Result<Entry> made = c.f.mkdir("obj");
       expect_made(c, err_of(made), S_IFDIR);
     }},
    {"mknod",
     [](Case& c) {
       Result<Entry> made = run_coro(c.f.fs->mknod(c.f.ctx, root, "obj", S_IFIFO | 0644, 0, 0));
       expect_made(c, err_of(made), S_IFIFO);
     }},
    {"symlink",
     [](Case& c) {
       Result<Entry> made = run_coro(c.f.fs->symlink(c.f.ctx, root, "obj", "target"));
       expect_made(c, err_of(made), S_IFLNK);
     }},
    {"link",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) {
         CHECK(e.error() == ENOENT);
         return;
       }
       REQUIRE(e.ok());
       Result<Entry> linked = run_coro(c.f.fs->link(c.f.ctx, e->ino, root, "obj2"));
       c.expect(err_of(linked), c.change_err());
       if (!linked) {
         CHECK(c.f.lookup("obj2").error() == ENOENT);
         return;
       }
       CHECK(linked->ino == e->ino);
       CHECK(c.f.ino("obj2") == e->ino);
       CHECK(*c.f.read("obj2") == c.data());
       CHECK(c.f.A.content("obj2") == c.data());
       CHECK(c.f.A.walk("obj2") == c.f.A.walk("obj"));
     }},
    {"readlink",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("lnk");
       if (c.seen() == Seen::none) {
         CHECK(e.error() == ENOENT);
         return;
       }
       REQUIRE(e.ok());
       Result<std::string> t = run_coro(c.f.fs->readlink(c.f.ctx, e->ino));
       REQUIRE(t.ok());
       CHECK(*t == (c.seen() == Seen::a ? "to-A" : "to-B"));
     }},
    {"setattr chmod",
     [](Case& c) {
       SetAttrIn in;
       in.valid = fuse::FATTR_MODE;
       in.mode = 0600;
       Result<AttrReply> r = set(c, "obj", in);
       c.expect(err_of(r), c.change_err());
       if (!r) return;
       CHECK((r->attr.mode & 07777) == 0600);
       CHECK((c.f.A.attr("obj").mode & 07777) == 0600);
       CHECK(*c.f.read("obj") == c.data());  // a copy-up keeps the data
     }},
    {"setattr chown",
     [](Case& c) {
       SetAttrIn in;
       in.valid = fuse::FATTR_UID | fuse::FATTR_GID;
       in.uid = 1234;
       in.gid = 5678;
       Result<AttrReply> r = set(c, "obj", in);
       c.expect(err_of(r), c.change_err());
       if (!r) return;
       CHECK(c.f.attr("obj").uid == 1234);
       CHECK(c.f.A.attr("obj").gid == 5678);
     }},
    {"setattr truncate",
     [](Case& c) {
       SetAttrIn in;
       in.valid = fuse::FATTR_SIZE;
       in.size = 3;
       Result<AttrReply> r = set(c, "obj", in);
       expect_written(c, err_of(r), c.data().substr(0, 3));
     }},
    {"setattr utimes",
     [](Case& c) {
       SetAttrIn in;
       in.valid = fuse::FATTR_ATIME | fuse::FATTR_MTIME;
       in.atime.sec = 1000000;
       in.mtime.sec = 2000000;
       Result<AttrReply> r = set(c, "obj", in);
       c.expect(err_of(r), c.change_err());
       if (!r) return;
       CHECK(c.f.attr("obj").mtime.sec == 2000000);
       CHECK(c.f.A.attr("obj").mtime.sec == 2000000);
     }},
    {"setxattr",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       const std::string v = "value";
       Status s = run_coro(c.f.fs->setxattr(c.f.ctx, e->ino, "user.k",
                                            std::span<const char>(v.data(), v.size()), 0));
       c.expect(err_of(s), c.change_err());
       Result<XattrReply> back = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.k", 100));
       if (!s) {
         CHECK(back.error() == ENODATA);
         return;
       }
       REQUIRE(back.ok());
       CHECK(value_of(*back) == "value");
       Result<XattrReply> in_a =
           run_coro(c.f.A.fs->getxattr(c.f.A.ctx, c.f.A.walk("obj"), "user.k", 100));
       REQUIRE(in_a.ok());
       CHECK(value_of(*in_a) == "value");
       // The copy kept the original's xattrs too.
       Result<XattrReply> orig = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.orig", 100));
       REQUIRE(orig.ok());
       CHECK(value_of(*orig) == (c.seen() == Seen::a ? "A" : "B"));
     }},
    {"getxattr",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       Result<XattrReply> size = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.orig", 0));
       REQUIRE(size.ok());
       CHECK(size->size == 1);
       Result<XattrReply> v = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.orig", 100));
       REQUIRE(v.ok());
       CHECK(value_of(*v) == (c.seen() == Seen::a ? "A" : "B"));
       CHECK(run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.none", 100)).error() == ENODATA);
     }},
    {"listxattr",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       Result<XattrReply> l = run_coro(c.f.fs->listxattr(c.f.ctx, e->ino, 1000));
       REQUIRE(l.ok());
       CHECK(value_of(*l) == std::string("user.orig", sizeof("user.orig")));
     }},
    {"removexattr",
     [](Case& c) {
       Result<Entry> e = c.f.lookup("obj");
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       Status s = run_coro(c.f.fs->removexattr(c.f.ctx, e->ino, "user.orig"));
       c.expect(err_of(s), c.change_err());
       Result<XattrReply> back = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.orig", 100));
       if (!s) {
         CHECK(back.ok());
         return;
       }
       CHECK(back.error() == ENODATA);
       CHECK(run_coro(c.f.A.fs->getxattr(c.f.A.ctx, c.f.A.walk("obj"), "user.orig", 100)).error() ==
             ENODATA);
       CHECK(*c.f.read("obj") == c.data());
       // Removing what is not there copies nothing up.
       CHECK(run_coro(c.f.fs->removexattr(c.f.ctx, e->ino, "user.none")).error() == ENODATA);
     }},
    {"unlink",
     [](Case& c) {
       Status s = c.f.unlink("obj");
       c.expect(err_of(s), c.remove_err());
       if (!s) {
         if (c.seen() != Seen::none) CHECK(*c.f.read("obj") == c.data());
         return;
       }
       CHECK(c.f.lookup("obj").error() == ENOENT);
       CHECK_FALSE(c.f.A.exists("obj"));
       const std::vector<std::string> names = c.f.names("");
       CHECK(std::find(names.begin(), names.end(), "obj") == names.end());
       // The name is free again, and a new object does not take B's old content.
       REQUIRE(c.f.create("obj", "again").ok());
       CHECK(*c.f.read("obj") == "again");
     }},
    {"rmdir empty",
     [](Case& c) {
       Status s = c.f.rmdir("dir");
       c.expect(err_of(s), c.remove_err());
       if (!s) return;
       CHECK(c.f.lookup("dir").error() == ENOENT);
       CHECK_FALSE(c.f.A.exists("dir"));
       // A directory made at the name again shows nothing of B's old one.
       REQUIRE(c.f.mkdir("dir").ok());
       CHECK(c.f.names("dir").empty());
     }},
    {"rmdir with B entries",
     [](Case& c) {
       Status s = c.f.rmdir("full");
       if (c.seen() == Seen::none) {
         CHECK(err_of(s) == ENOENT);
         return;
       }
       // B's child shows in the merged directory: not empty, whatever the policy.
       c.expect(err_of(s), c.b_shows() ? ENOTEMPTY : 0);
       if (!s) {
         CHECK(c.f.names("full") == std::vector<std::string>{"child"});
         return;
       }
       CHECK(c.f.lookup("full").error() == ENOENT);
       CHECK_FALSE(c.f.A.exists("full"));
     }},
    {"rename file",
     [](Case& c) {
       Status s = c.f.rename("obj", "moved");
       c.expect(err_of(s), c.remove_err());
       if (!s) {
         CHECK(c.f.lookup("moved").error() == ENOENT);
         return;
       }
       CHECK(c.f.lookup("obj").error() == ENOENT);
       CHECK(*c.f.read("moved") == c.data());
       CHECK(c.f.A.content("moved") == c.data());
       CHECK_FALSE(c.f.A.exists("obj"));
     }},
    {"rename over",
     [](Case& c) {
       REQUIRE(c.f.create("src", "S").ok());
       c.a_before = tree(c.f.A);
       Status s = c.f.rename("src", "obj");
       // Replacing a name B shows hides B's object: a whiteout.
       const int want = c.b_shows() && !c.policy->copy_up() ? EROFS : 0;
       c.expect(err_of(s), want);
       if (!s) {
         CHECK(*c.f.read("src") == "S");
         return;
       }
       CHECK(*c.f.read("obj") == "S");
       CHECK(c.f.A.content("obj") == "S");
       CHECK(c.f.lookup("src").error() == ENOENT);
     }},
    {"rename directory",
     [](Case& c) {
       Status s = c.f.rename("dir", "dir2");
       int want = 0;
       if (c.seen() == Seen::none) {
         want = ENOENT;
       } else if (c.b_shows()) {
         // A directory with a B side stays where B has it: EXDEV (mv copies), or EROFS.
         want = c.policy->copy_up() ? EXDEV : EROFS;
       }
       c.expect(err_of(s), want);
       if (!s) return;
       CHECK(c.f.lookup("dir").error() == ENOENT);
       CHECK(c.f.A.exists("dir2"));
     }},
    {"create inside directory",
     [](Case& c) {
       Result<Entry> made = c.f.create("dir/new", "inner");
       if (c.seen() == Seen::none) {
         CHECK(made.error() == ENOENT);
         return;
       }
       // Every policy adds names inside B's directories: the directory gets an A side.
       REQUIRE(made.ok());
       CHECK(*c.f.read("dir/new") == "inner");
       CHECK(c.f.A.content("dir/new") == "inner");
       CHECK(c.f.names("dir") == std::vector<std::string>{"new"});
     }},
    {"setattr chmod directory",
     [](Case& c) {
       SetAttrIn in;
       in.valid = fuse::FATTR_MODE;
       in.mode = 0700;
       Result<AttrReply> r = set(c, "dir", in);
       if (c.seen() == Seen::none) {
         CHECK(r.error() == ENOENT);
         return;
       }
       REQUIRE(r.ok());
       CHECK((c.f.attr("dir").mode & 07777) == 0700);
       CHECK((c.f.A.attr("dir").mode & 07777) == 0700);
       CHECK(S_ISDIR(c.f.attr("dir").mode));
     }},
    {"readdir",
     [](Case& c) {
       const std::vector<Listed> all = c.f.list("");
       std::map<std::string, uint32_t> types;
       for (const Listed& e : all)
         types[e.name] = e.dtype;
       CHECK(all.size() == types.size());  // one entry per name
       if (c.seen() == Seen::none) {
         CHECK(types.count("obj") == 0);
         return;
       }
       CHECK(types["obj"] == DT_REG);
       CHECK(types["lnk"] == DT_LNK);
       CHECK(types["dir"] == DT_DIR);
       const std::vector<std::string> full = c.f.names("full");
       CHECK(full ==
             (c.b_shows() ? std::vector<std::string>{"child"} : std::vector<std::string>{}));
       // readdirplus resolves each entry as lookup does.
       Result<OpenReply> d = run_coro(c.f.fs->opendir(c.f.ctx, root, 0));
       REQUIRE(d.ok());
       PlusSink sink;
       REQUIRE(run_coro(c.f.fs->readdirplus(c.f.ctx, root, d->fh, 0, sink)).ok());
       REQUIRE(run_coro(c.f.fs->releasedir(c.f.ctx, root, d->fh)).ok());
       for (const ListedPlus& e : sink.entries) {
         if (e.name != "obj") continue;
         CHECK(e.entry.attr.size == c.data().size());
         CHECK(e.entry.ino == c.f.ino("obj"));
       }
     }},
    {"statfs",
     [](Case& c) {
       Result<StatFs> s = run_coro(c.f.fs->statfs(c.f.ctx, root));
       Result<StatFs> a = run_coro(c.f.A.fs->statfs(c.f.A.ctx, root));
       REQUIRE(s.ok());
       REQUIRE(a.ok());
       CHECK(s->blocks == a->blocks);
       CHECK(s->files == a->files);
     }},
    {"fsync",
     [](Case& c) {
       Opened o(c, O_RDONLY);
       if (c.seen() == Seen::none) {
         CHECK(o.err == ENOENT);
         return;
       }
       REQUIRE(o.err == 0);
       CHECK(run_coro(c.f.fs->fsync(c.f.ctx, o.ino, o.fh, false)).ok());
       CHECK(run_coro(c.f.fs->flush(c.f.ctx, o.ino, o.fh, 0)).ok());
     }},
    {"fallocate",
     [](Case& c) {
       int got = 0;
       {
         Opened o(c, O_RDWR);
         got = o.err;
         if (o.err == 0)
           got = err_of(run_coro(c.f.fs->fallocate(c.f.ctx, o.ino, o.fh, 0, 4096, 0)));
       }
       c.expect(got, c.change_err());
       if (got != 0) return;
       CHECK(c.f.attr("obj").size == 4096);
       CHECK(c.f.A.attr("obj").size == 4096);
       CHECK(c.f.read("obj")->substr(0, c.data().size()) == c.data());
     }},
    {"lseek",
     [](Case& c) {
       Opened o(c, O_RDONLY);
       if (c.seen() == Seen::none) {
         CHECK(o.err == ENOENT);
         return;
       }
       REQUIRE(o.err == 0);
       Result<uint64_t> end = run_coro(c.f.fs->lseek(c.f.ctx, o.ino, o.fh, 0, SEEK_END));
       REQUIRE(end.ok());
       CHECK(*end == c.data().size());
       Result<uint64_t> data = run_coro(c.f.fs->lseek(c.f.ctx, o.ino, o.fh, 1, SEEK_DATA));
       REQUIRE(data.ok());
       CHECK(*data == 1);
     }},
    {"copy_file_range",
     [](Case& c) {
       Result<Entry> dst = c.f.create("dst");
       REQUIRE(dst.ok());
       Opened in(c, O_RDONLY);
       if (c.seen() == Seen::none) {
         CHECK(in.err == ENOENT);
         return;
       }
       REQUIRE(in.err == 0);
       Result<OpenReply> out = run_coro(c.f.fs->open(c.f.ctx, dst->ino, O_WRONLY, false));
       REQUIRE(out.ok());
       Result<size_t> n = run_coro(
           c.f.fs->copy_file_range(c.f.ctx, in.ino, in.fh, 0, dst->ino, out->fh, 0, 100, 0));
       REQUIRE(run_coro(c.f.fs->release(c.f.ctx, dst->ino, out->fh, 0)).ok());
       if (c.seen() == Seen::b) {
         // Across the two sides there is nothing to offload to: the kernel copies itself.
         CHECK(n.error() == EXDEV);
         return;
       }
       REQUIRE(n.ok());
       CHECK(*n == c.data().size());
       CHECK(c.f.A.content("dst") == c.data());
     }},
};

}  // namespace

TEST_CASE("policy matrix - every built-in policy x every operation x A-only or B-only or both",
          "[dualfs][policy][matrix]") {
  const std::string policy_name =
      GENERATE(as<std::string>{}, "read-b-write-a", "a-only", "a-fallback-b", "merge-a-precedence");
  const Place place = GENERATE(Place::a_only, Place::b_only, Place::both);
  const std::shared_ptr<const Policy> policy = parse_policy(policy_name);
  REQUIRE(policy);
  for (const Row& row : rows) {
    DYNAMIC_SECTION(policy_name << " | " << place_name(place) << " | " << row.name) {
      Case c(policy, place);
      const Tree b_before = tree(c.f.B);
      row.run(c);
      // B is never modified, whatever happened; DualFs never even tried.
      CHECK(tree(c.f.B) == b_before);
      CHECK(c.f.b->refused == 0);
    }
  }
}

namespace {

// The same rules for the other kinds of object: a symlink, a FIFO and a directory. A directory
// is shared by every policy: changing its attributes gives it an A side (promotion), also when
// B is read-only; removing or moving one B shows is a whiteout, EXDEV or EROFS as for files.
struct Kind {
  const char* name;  // its name in arrange()
  uint32_t type;
};
const Kind kinds[] = {{"lnk", S_IFLNK}, {"fifo", S_IFIFO}, {"dir", S_IFDIR}};

struct KindRow {
  const char* name;
  void (*run)(Case&, const Kind&);
};

int kind_change_err(const Case& c, const Kind& k) {
  if (k.type == S_IFDIR && c.seen() != Seen::none) return 0;
  return c.change_err();
}

const KindRow kind_rows[] = {
    {"getattr and readdir type",
     [](Case& c, const Kind& k) {
       Result<Entry> e = c.f.lookup(k.name);
       if (c.seen() == Seen::none) {
         CHECK(e.error() == ENOENT);
         return;
       }
       REQUIRE(e.ok());
       CHECK((e->attr.mode & S_IFMT) == k.type);
       uint32_t dtype = 0;
       for (const Listed& l : c.f.list(""))
         if (l.name == k.name) dtype = l.dtype;
       CHECK(dtype == (k.type >> 12));
     }},
    {"chown",
     [](Case& c, const Kind& k) {
       SetAttrIn in;
       in.valid = fuse::FATTR_UID | fuse::FATTR_GID;
       in.uid = 4321;
       in.gid = 8765;
       Result<AttrReply> r = c.f.setattr(k.name, in);
       c.expect(err_of(r), kind_change_err(c, k));
       if (!r) return;
       const Attr now = c.f.attr(k.name);
       CHECK(now.uid == 4321);
       CHECK((now.mode & S_IFMT) == k.type);
       CHECK(c.f.A.attr(k.name).gid == 8765);
       if (k.type == S_IFLNK) {
         Result<std::string> t = run_coro(c.f.fs->readlink(c.f.ctx, c.f.ino(k.name)));
         REQUIRE(t.ok());
         CHECK(*t == (c.seen() == Seen::a ? "to-A" : "to-B"));
       }
       if (k.type == S_IFDIR) CHECK(c.f.names("dir").empty());
     }},
    {"setxattr",
     [](Case& c, const Kind& k) {
       if (k.type == S_IFLNK) return;  // user.* xattrs are not for symlinks
       Result<Entry> e = c.f.lookup(k.name);
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       const std::string v = "kv";
       Status s = run_coro(c.f.fs->setxattr(c.f.ctx, e->ino, "user.k",
                                            std::span<const char>(v.data(), v.size()), 0));
       c.expect(err_of(s), kind_change_err(c, k));
       if (!s) return;
       Result<XattrReply> in_a =
           run_coro(c.f.A.fs->getxattr(c.f.A.ctx, c.f.A.walk(k.name), "user.k", 100));
       REQUIRE(in_a.ok());
       CHECK(value_of(*in_a) == "kv");
       if (k.type == S_IFDIR) {
         // Promotion copied B's xattrs; A's own directory kept its own.
         Result<XattrReply> orig = run_coro(c.f.fs->getxattr(c.f.ctx, e->ino, "user.orig", 100));
         REQUIRE(orig.ok());
         CHECK(value_of(*orig) == (c.a_has() ? "A" : "B"));
       }
     }},
    {"remove",
     [](Case& c, const Kind& k) {
       Status s = k.type == S_IFDIR ? c.f.rmdir(k.name) : c.f.unlink(k.name);
       c.expect(err_of(s), c.remove_err());
       if (!s) {
         if (c.seen() != Seen::none) CHECK(c.f.lookup(k.name).ok());
         return;
       }
       CHECK(c.f.lookup(k.name).error() == ENOENT);
       CHECK_FALSE(c.f.A.exists(k.name));
     }},
    {"rename",
     [](Case& c, const Kind& k) {
       Status s = c.f.rename(k.name, "moved");
       int want = c.remove_err();
       if (k.type == S_IFDIR && want == 0 && c.b_shows()) want = EXDEV;
       c.expect(err_of(s), want);
       if (!s) return;
       CHECK(c.f.lookup(k.name).error() == ENOENT);
       CHECK((c.f.attr("moved").mode & S_IFMT) == k.type);
       CHECK((c.f.A.attr("moved").mode & S_IFMT) == k.type);
     }},
    {"link",
     [](Case& c, const Kind& k) {
       Result<Entry> e = c.f.lookup(k.name);
       if (c.seen() == Seen::none) return;
       REQUIRE(e.ok());
       Result<Entry> linked = run_coro(c.f.fs->link(c.f.ctx, e->ino, root, "linked"));
       if (k.type == S_IFDIR) {
         CHECK(linked.error() == EPERM);
         return;
       }
       c.expect(err_of(linked), c.change_err());
       if (!linked) return;
       CHECK((c.f.attr("linked").mode & S_IFMT) == k.type);
       CHECK(c.f.A.walk("linked") == c.f.A.walk(k.name));
     }},
};

}  // namespace

TEST_CASE("policy matrix - symlinks and FIFOs and directories under every policy",
          "[dualfs][policy][matrix]") {
  const std::string policy_name =
      GENERATE(as<std::string>{}, "read-b-write-a", "a-only", "a-fallback-b", "merge-a-precedence");
  const Place place = GENERATE(Place::a_only, Place::b_only, Place::both);
  const std::shared_ptr<const Policy> policy = parse_policy(policy_name);
  REQUIRE(policy);
  for (const Kind& kind : kinds) {
    for (const KindRow& row : kind_rows) {
      DYNAMIC_SECTION(policy_name << " | " << place_name(place) << " | " << kind.name << " | "
                                  << row.name) {
        Case c(policy, place);
        const Tree b_before = tree(c.f.B);
        row.run(c, kind);
        CHECK(tree(c.f.B) == b_before);
        CHECK(c.f.b->refused == 0);
      }
    }
  }
}
