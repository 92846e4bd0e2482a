// Sparse pages, fallocate, SEEK_DATA / SEEK_HOLE and copy_file_range.
#include <unistd.h>

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

constexpr uint64_t page = 4096;
constexpr uint64_t gib = uint64_t{1} << 30;

// A file opened read-write, released at scope exit.
struct OpenFile {
  OpenFile(TestFs& fs, std::string_view name) : t(fs) {
    Result<CreateReply> c = t.create(root, name);
    REQUIRE(c.ok());
    ino = c->entry.ino;
    fh = c->open.fh;
  }
  ~OpenFile() { (void)t.release(ino, fh); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  Result<size_t> write(uint64_t off, std::string_view data) { return t.write(ino, fh, off, data); }
  std::string read(uint64_t off, uint32_t size) {
    Result<std::string> r = t.read(ino, fh, off, size);
    REQUIRE(r.ok());
    return *r;
  }
  Status fallocate(uint64_t off, uint64_t len, uint32_t mode) {
    return t.fallocate(ino, fh, off, len, mode);
  }
  Result<uint64_t> seek(uint64_t off, uint32_t whence) { return t.lseek(ino, fh, off, whence); }
  Attr attr() { return t.attr(ino); }

  TestFs& t;
  InodeId ino = 0;
  HandleId fh = 0;
};

TEST_CASE("memfs: a 1-byte write at 1 GiB costs one page", "[memfs][space]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 64 * 1024;  // far less than the file size
  TestFs t(cfg);
  OpenFile f(t, "sparse");
  Result<size_t> w = f.write(gib, "!");
  REQUIRE(w.ok());
  Attr a = f.attr();
  CHECK(a.size == gib + 1);
  CHECK(a.blocks == 8);
  CHECK(t.fs->used_bytes() == page);
  // Holes read as zeros, also across the boundary into data.
  CHECK(f.read(12345, 5) == std::string(5, '\0'));
  CHECK(f.read(gib - 2, 10) == std::string("\0\0!", 3));
}

TEST_CASE("memfs: rewriting allocated pages costs nothing more", "[memfs][space]") {
  TestFs t;
  OpenFile f(t, "f");
  REQUIRE(f.write(0, std::string(6000, 'a')).ok());
  CHECK(t.fs->used_bytes() == 2 * page);
  REQUIRE(f.write(100, std::string(5000, 'b')).ok());
  CHECK(t.fs->used_bytes() == 2 * page);
  REQUIRE(f.write(8191, "cc").ok());  // spills into a third page
  CHECK(t.fs->used_bytes() == 3 * page);
}

TEST_CASE("memfs: truncation frees pages and later growth reads zeros", "[memfs][space]") {
  TestFs t;
  OpenFile f(t, "f");
  REQUIRE(f.write(0, std::string(3 * page, 'x')).ok());
  REQUIRE(t.truncate(f.ino, 10).ok());
  CHECK(t.fs->used_bytes() == page);
  CHECK(f.attr().blocks == 8);
  REQUIRE(t.truncate(f.ino, 2 * page).ok());  // growing is a hole: free
  CHECK(t.fs->used_bytes() == page);
  CHECK(f.read(0, 2 * page) == std::string(10, 'x') + std::string(2 * page - 10, '\0'));
  REQUIRE(t.truncate(f.ino, 0).ok());
  CHECK(t.fs->used_bytes() == 0);
}

TEST_CASE("memfs: punch hole zeroes and frees the covered pages", "[memfs][space]") {
  TestFs t;
  OpenFile f(t, "f");
  REQUIRE(f.write(0, std::string(4 * page, 'x')).ok());
  CHECK(t.fs->used_bytes() == 4 * page);
  // Bytes 100 .. 3*page+100: page 0 partly, pages 1 and 2 wholly, page 3 partly.
  REQUIRE(f.fallocate(100, 3 * page, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).ok());
  CHECK(t.fs->used_bytes() == 2 * page);
  Attr a = f.attr();
  CHECK(a.size == 4 * page);
  CHECK(a.blocks == 16);
  const std::string all = f.read(0, 4 * page);
  CHECK(all == std::string(100, 'x') + std::string(3 * page, '\0') + std::string(page - 100, 'x'));
  // A later write into the hole allocates again.
  REQUIRE(f.write(page, "y").ok());
  CHECK(t.fs->used_bytes() == 3 * page);
}

TEST_CASE("memfs: fallocate modes", "[memfs][space]") {
  TestFs t;
  OpenFile f(t, "f");

  SECTION("mode 0 allocates and extends") {
    REQUIRE(f.fallocate(0, 1000, 0).ok());
    CHECK(f.attr().size == 1000);
    CHECK(t.fs->used_bytes() == page);
    CHECK(f.read(0, 2000) == std::string(1000, '\0'));
  }
  SECTION("mode 0 within the size keeps the size") {
    REQUIRE(f.write(0, std::string(5000, 'a')).ok());
    REQUIRE(f.fallocate(0, 100, 0).ok());
    CHECK(f.attr().size == 5000);
    CHECK(f.read(0, 5000) == std::string(5000, 'a'));
  }
  SECTION("KEEP_SIZE allocates without extending") {
    REQUIRE(f.fallocate(0, 3 * page, FALLOC_FL_KEEP_SIZE).ok());
    CHECK(f.attr().size == 0);
    CHECK(f.attr().blocks == 24);
    CHECK(t.fs->used_bytes() == 3 * page);
    // Growing later exposes zeros.
    REQUIRE(t.truncate(f.ino, 2 * page).ok());
    CHECK(f.read(0, 2 * page) == std::string(2 * page, '\0'));
  }
  SECTION("ZERO_RANGE zeroes and allocates") {
    REQUIRE(f.write(0, std::string(3 * page, 'a')).ok());
    REQUIRE(f.fallocate(10, 20, FALLOC_FL_ZERO_RANGE).ok());
    CHECK(f.read(0, 40) == std::string(10, 'a') + std::string(20, '\0') + std::string(10, 'a'));
    REQUIRE(f.fallocate(3 * page, 100, FALLOC_FL_ZERO_RANGE).ok());
    CHECK(f.attr().size == 3 * page + 100);
    CHECK(t.fs->used_bytes() == 4 * page);
    REQUIRE(f.fallocate(5 * page, 100, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE).ok());
    CHECK(f.attr().size == 3 * page + 100);
    CHECK(t.fs->used_bytes() == 5 * page);
  }
  SECTION("unsupported modes") {
    CHECK(f.fallocate(0, 10, FALLOC_FL_PUNCH_HOLE).error() == EOPNOTSUPP);
    CHECK(f.fallocate(0, page, FALLOC_FL_COLLAPSE_RANGE).error() == EOPNOTSUPP);
    CHECK(f.fallocate(0, page, FALLOC_FL_INSERT_RANGE).error() == EOPNOTSUPP);
    CHECK(f.fallocate(0, 10, 0x100).error() == EOPNOTSUPP);
  }
  SECTION("bad ranges") {
    CHECK(f.fallocate(0, 0, 0).error() == EINVAL);
    CHECK(f.fallocate(uint64_t{1} << 63, 10, 0).error() == EINVAL);
    CHECK(f.fallocate(std::numeric_limits<int64_t>::max() - 5, 10, 0).error() == EFBIG);
  }
  SECTION("read-only handle") {
    const HandleId ro = t.open_ok(f.ino, O_RDONLY);
    CHECK(t.fallocate(f.ino, ro, 0, 10, 0).error() == EBADF);
    REQUIRE(t.release(f.ino, ro).ok());
  }
}

TEST_CASE("memfs: fallocate on non-regular files follows Linux", "[memfs][space]") {
  TestFs t;
  Result<Entry> fifo = t.mknod(root, "fifo", S_IFIFO | 0644);
  Result<Entry> chr = t.mknod(root, "chr", S_IFCHR | 0644, 1);
  REQUIRE(fifo.ok());
  REQUIRE(chr.ok());
  const HandleId ffh = t.open_ok(fifo->ino);
  const HandleId cfh = t.open_ok(chr->ino);
  CHECK(t.fallocate(fifo->ino, ffh, 0, 10, 0).error() == ESPIPE);
  CHECK(t.fallocate(chr->ino, cfh, 0, 10, 0).error() == ENODEV);
  CHECK(t.read(fifo->ino, ffh, 0, 10).error() == EINVAL);
  CHECK(t.write(chr->ino, cfh, 0, "x").error() == EINVAL);
  REQUIRE(t.release(fifo->ino, ffh).ok());
  REQUIRE(t.release(chr->ino, cfh).ok());
}

TEST_CASE("memfs: fallocate beyond capacity changes nothing", "[memfs][space][capacity]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 4 * page;
  TestFs t(cfg);
  OpenFile f(t, "f");
  REQUIRE(f.write(0, "abc").ok());
  CHECK(f.fallocate(0, 5 * page, 0).error() == ENOSPC);
  CHECK(f.attr().size == 3);
  CHECK(t.fs->used_bytes() == page);
  CHECK(f.fallocate(0, 4 * page, 0).ok());
  CHECK(t.fs->used_bytes() == 4 * page);
}

TEST_CASE("memfs: SEEK_DATA and SEEK_HOLE follow the page map", "[memfs][space][lseek]") {
  TestFs t;
  OpenFile f(t, "f");
  // Layout: data in page 0, hole in pages 1-2, data in pages 3-4, hole to EOF at 8 pages.
  REQUIRE(f.write(0, "head").ok());
  REQUIRE(f.write(3 * page + 5, std::string(page, 'm')).ok());
  REQUIRE(t.truncate(f.ino, 8 * page).ok());

  CHECK(*f.seek(0, SEEK_DATA) == 0);
  CHECK(*f.seek(10, SEEK_DATA) == 10);
  CHECK(*f.seek(page, SEEK_DATA) == 3 * page);
  CHECK(*f.seek(3 * page + 1, SEEK_DATA) == 3 * page + 1);
  CHECK(f.seek(5 * page, SEEK_DATA).error() == ENXIO);  // only a hole left

  CHECK(*f.seek(0, SEEK_HOLE) == page);
  CHECK(*f.seek(page + 7, SEEK_HOLE) == page + 7);
  CHECK(*f.seek(3 * page, SEEK_HOLE) == 5 * page);
  CHECK(*f.seek(6 * page, SEEK_HOLE) == 6 * page);

  CHECK(f.seek(8 * page, SEEK_DATA).error() == ENXIO);
  CHECK(f.seek(8 * page, SEEK_HOLE).error() == ENXIO);
  CHECK(f.seek(100 * page, SEEK_HOLE).error() == ENXIO);

  // A fully dense file: the only hole is end of file.
  OpenFile dense(t, "dense");
  REQUIRE(dense.write(0, std::string(2 * page + 10, 'd')).ok());
  CHECK(*dense.seek(0, SEEK_HOLE) == 2 * page + 10);
  CHECK(*dense.seek(0, SEEK_DATA) == 0);
}

TEST_CASE("memfs: other lseek whences", "[memfs][space][lseek]") {
  TestFs t;
  OpenFile f(t, "f");
  REQUIRE(f.write(0, "0123456789").ok());
  CHECK(*f.seek(3, SEEK_SET) == 3);
  CHECK(*f.seek(static_cast<uint64_t>(-4), SEEK_END) == 6);
  CHECK(*f.seek(5, SEEK_END) == 15);
  CHECK(f.seek(static_cast<uint64_t>(-11), SEEK_END).error() == EINVAL);
  CHECK(f.seek(0, SEEK_CUR).error() == EINVAL);
  CHECK(f.seek(0, 99).error() == EINVAL);
  CHECK(t.lseek(f.ino, 12345, 0, SEEK_DATA).error() == EBADF);
}

TEST_CASE("memfs: copy_file_range between files", "[memfs][space][copy]") {
  TestFs t;
  OpenFile a(t, "a");
  OpenFile b(t, "b");
  REQUIRE(a.write(0, "0123456789").ok());

  SECTION("plain copy") {
    Result<size_t> n = t.copy(a.ino, a.fh, 2, b.ino, b.fh, 1, 5);
    REQUIRE(n.ok());
    CHECK(*n == 5);
    CHECK(b.read(0, 100) == std::string("\0"
                                        "23456",
                                        6));
    CHECK(b.attr().size == 6);
  }
  SECTION("clamped at the source's end") {
    Result<size_t> n = t.copy(a.ino, a.fh, 8, b.ino, b.fh, 0, 100);
    REQUIRE(n.ok());
    CHECK(*n == 2);
    CHECK(b.read(0, 100) == "89");
    Result<size_t> none = t.copy(a.ino, a.fh, 10, b.ino, b.fh, 0, 100);
    REQUIRE(none.ok());
    CHECK(*none == 0);
  }
  SECTION("holes stay holes") {
    REQUIRE(a.write(10 * page, "far").ok());
    const uint64_t before = t.fs->used_bytes();
    Result<size_t> n = t.copy(a.ino, a.fh, 0, b.ino, b.fh, 0, 10 * page + 3);
    REQUIRE(n.ok());
    CHECK(*n == 10 * page + 3);
    CHECK(t.fs->used_bytes() == before + 2 * page);
    CHECK(b.read(10 * page, 3) == "far");
    CHECK(b.read(0, 10) == "0123456789");
    CHECK(b.read(5 * page, 4) == std::string(4, '\0'));
  }
  SECTION("copying a hole over data zeroes it") {
    REQUIRE(b.write(0, std::string(3 * page, 'b')).ok());
    REQUIRE(t.truncate(a.ino, 3 * page).ok());  // a: "0123456789" then a hole
    REQUIRE(t.copy(a.ino, a.fh, 0, b.ino, b.fh, 0, 3 * page).ok());
    CHECK(b.read(0, 3 * page) == "0123456789" + std::string(3 * page - 10, '\0'));
  }
  SECTION("errors") {
    CHECK(run_coro(t.fs->copy_file_range(t.ctx, a.ino, a.fh, 0, b.ino, b.fh, 0, 5, 1)).error() ==
          EINVAL);
    const HandleId ro = t.open_ok(b.ino, O_RDONLY);
    CHECK(t.copy(a.ino, a.fh, 0, b.ino, ro, 0, 5).error() == EBADF);
    const HandleId wo = t.open_ok(a.ino, O_WRONLY);
    CHECK(t.copy(a.ino, wo, 0, b.ino, b.fh, 0, 5).error() == EBADF);
    const HandleId app = t.open_ok(b.ino, O_WRONLY | O_APPEND);
    CHECK(t.copy(a.ino, a.fh, 0, b.ino, app, 0, 5).error() == EBADF);
    CHECK(t.copy(a.ino, 999, 0, b.ino, b.fh, 0, 5).error() == EBADF);
    CHECK(t.copy(a.ino, a.fh, 0, b.ino, b.fh, std::numeric_limits<int64_t>::max() - 2, 5).error() ==
          EFBIG);
    for (HandleId fh : {ro, app})
      REQUIRE(t.release(b.ino, fh).ok());
    REQUIRE(t.release(a.ino, wo).ok());
  }
}

TEST_CASE("memfs: copy_file_range within one file handles overlap like memmove",
          "[memfs][space][copy]") {
  TestFs t;
  OpenFile f(t, "f");
  std::string data(3 * page, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>('A' + i % 23);
  REQUIRE(f.write(0, data).ok());

  SECTION("destination above the source") {
    REQUIRE(t.copy(f.ino, f.fh, 0, f.ino, f.fh, 100, 2 * page).ok());
    std::string expected = data;
    expected.replace(100, 2 * page, data.substr(0, 2 * page));
    CHECK(f.read(0, 3 * page) == expected);
  }
  SECTION("destination below the source") {
    REQUIRE(t.copy(f.ino, f.fh, 100, f.ino, f.fh, 0, 2 * page).ok());
    std::string expected = data;
    expected.replace(0, 2 * page, data.substr(100, 2 * page));
    CHECK(f.read(0, 3 * page) == expected);
  }
  SECTION("extending past the end") {
    REQUIRE(t.copy(f.ino, f.fh, page, f.ino, f.fh, 2 * page + 50, 2 * page).ok());
    std::string expected = data.substr(0, 2 * page + 50) + data.substr(page, 2 * page);
    CHECK(f.attr().size == expected.size());
    CHECK(f.read(0, static_cast<uint32_t>(expected.size())) == expected);
  }
}

TEST_CASE("memfs: copy_file_range beyond capacity copies nothing", "[memfs][space][copy]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 5 * page;
  TestFs t(cfg);
  OpenFile a(t, "a");
  OpenFile b(t, "b");
  REQUIRE(a.write(0, std::string(3 * page, 'a')).ok());
  REQUIRE(b.write(0, "keep").ok());
  CHECK(t.copy(a.ino, a.fh, 0, b.ino, b.fh, 0, 3 * page).error() == ENOSPC);
  CHECK(b.attr().size == 4);
  CHECK(b.read(0, 10) == "keep");
  CHECK(t.fs->used_bytes() == 4 * page);
  // Within capacity it works (b's first page already exists).
  REQUIRE(t.copy(a.ino, a.fh, 0, b.ino, b.fh, 0, 2 * page).ok());
  CHECK(t.fs->used_bytes() == 5 * page);
}

}  // namespace
}  // namespace sandfs::memfs::testing
