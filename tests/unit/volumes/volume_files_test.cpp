// VolumeFiles: every operation and its error codes, escape attempts (lexical, planted symlinks,
// a symlink swapped in by another thread), removal of guest-locked trees, quota accounting and
// the streaming writer. Each test works in a fresh host directory holding the volume root `vol`
// and a sibling `outside` that nothing may ever touch.
#include "volumes/volume_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/passthrough/ownership_record.hpp"
#include "backends/passthrough/quota.hpp"

namespace Catch {
template <>
struct StringMaker<sandfs::volumes::ErrorCode> {
  static std::string convert(sandfs::volumes::ErrorCode code) {
    return std::string(sandfs::volumes::code_name(code));
  }
};
}  // namespace Catch

namespace sandfs::volumes {
namespace {

namespace fs = std::filesystem;
using passthrough::Quota;

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A fresh directory with `vol` (the volume root) and `outside` (a sibling holding one sentinel).
class Sandbox {
 public:
  // In $TMPDIR (or /tmp), or under `parent` when given.
  explicit Sandbox(std::string parent = {}) {
    const char* tmp = std::getenv("TMPDIR");
    if (parent.empty()) parent = tmp && *tmp ? tmp : "/tmp";
    std::string pattern = parent + "/sandfs-vf-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    base_ = pattern;
    REQUIRE(::mkdir(vol().c_str(), 0755) == 0);
    REQUIRE(::mkdir(outside().c_str(), 0755) == 0);
    put(outside() + "/sentinel", "keep me");
  }
  ~Sandbox() {
    std::error_code ignored;
    fs::remove_all(base_, ignored);
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& base() const { return base_; }
  std::string vol() const { return base_ + "/vol"; }
  std::string outside() const { return base_ + "/outside"; }
  std::string in(std::string_view rel) const { return vol() + "/" + std::string(rel); }

  std::unique_ptr<VolumeFiles> open(std::shared_ptr<Quota> quota = nullptr) const {
    auto files = VolumeFiles::open(vol(), std::move(quota));
    REQUIRE(files.ok());
    return std::move(files).value();
  }

  static void put(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    REQUIRE(out.good());
    out << content;
  }
  static std::string get(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static bool present(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }
  static struct stat lstat_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st;
  }
  void link(const std::string& target, std::string_view rel) const {
    REQUIRE(::symlink(target.c_str(), in(rel).c_str()) == 0);
  }

  // Nothing was created, changed or removed next to the volume.
  void check_outside_untouched() const {
    std::vector<std::string> top, side;
    for (const auto& e : fs::directory_iterator(base_))
      top.push_back(e.path().filename());
    for (const auto& e : fs::recursive_directory_iterator(outside())) {
      side.push_back(fs::relative(e.path(), outside()));
    }
    std::sort(top.begin(), top.end());
    CHECK(top == std::vector<std::string>{"outside", "vol"});
    CHECK(side == std::vector<std::string>{"sentinel"});
    CHECK(get(outside() + "/sentinel") == "keep me");
  }

 private:
  std::string base_;
};

ErrorCode code_of(const Error& e) {
  return e.code;
}

template <class T>
ErrorCode fails(const Outcome<T>& r) {
  REQUIRE_FALSE(r.ok());
  return code_of(r.error());
}

// ------------------------------------------------------------------------------------------------
// Paths

TEST_CASE("normalize_volume_path drops dots and empty components", "[volume_files]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {".", ""},
      {"./", ""},
      {"a", "a"},
      {"a/", "a"},
      {"a//b", "a/b"},
      {"./a/./b/.", "a/b"},
      {"a/../b", "b"},
      {"a/b/../..", ""},
      {"a/b/../../c", "c"},
      {"a/./../b/c/..", "b"},
      {"..a/b..", "..a/b.."},
  };
  for (const auto& [in, out] : cases) {
    INFO(in);
    Outcome<std::string> r = normalize_volume_path(in);
    REQUIRE(r.ok());
    CHECK(*r == out);
  }
}

TEST_CASE("normalize_volume_path refuses escapes absolute paths and NUL", "[volume_files]") {
  for (const std::string_view p : {"..", "../x", "a/../../x", "a/b/../../../x", "./..", "a/../..",
                                   "/", "/etc/passwd", "//x"}) {
    INFO(p);
    CHECK(fails(normalize_volume_path(p)) == ErrorCode::path_escape);
  }
  CHECK(fails(normalize_volume_path(std::string_view("a\0b", 3))) == ErrorCode::invalid_path);
  CHECK(fails(normalize_volume_path(std::string(300, 'x'))) == ErrorCode::invalid_path);
  CHECK(fails(normalize_volume_path(std::string(5000, 'a'))) == ErrorCode::invalid_path);
}

TEST_CASE("open refuses a root reached through a symlink or missing", "[volume_files]") {
  Sandbox box;
  REQUIRE(::symlink(box.vol().c_str(), (box.base() + "/alias").c_str()) == 0);
  CHECK(fails(VolumeFiles::open(box.base() + "/alias", nullptr)) == ErrorCode::invalid_config);
  REQUIRE(::symlink(box.base().c_str(), (box.outside() + "/up").c_str()) == 0);
  CHECK(fails(VolumeFiles::open(box.outside() + "/up/vol", nullptr)) == ErrorCode::invalid_config);
  CHECK(fails(VolumeFiles::open(box.base() + "/missing", nullptr)) == ErrorCode::file_not_found);
  CHECK(fails(VolumeFiles::open(box.outside() + "/sentinel", nullptr)) ==
        ErrorCode::not_a_directory);
  CHECK(VolumeFiles::open(box.vol() + "/", nullptr).ok());
  REQUIRE(::unlink((box.outside() + "/up").c_str()) == 0);
}

// ------------------------------------------------------------------------------------------------
// Files and directories

TEST_CASE("write then read round-trips and truncates", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->write("a.txt", bytes("hello world")).ok());
  CHECK(box.get(box.in("a.txt")) == "hello world");
  Outcome<std::string> r = files->read("a.txt", 1024);
  REQUIRE(r.ok());
  CHECK(*r == "hello world");
  REQUIRE(files->write("./a.txt", bytes("bye")).ok());
  CHECK(box.get(box.in("a.txt")) == "bye");
  REQUIRE(files->write("a.txt", bytes("")).ok());
  CHECK(box.get(box.in("a.txt")).empty());
  CHECK(files->read("a.txt/", 10).ok());  // a trailing '/' is dropped
  box.check_outside_untouched();
}

TEST_CASE("write keeps the inode so hard links see the new content", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->write("a", bytes("one")).ok());
  REQUIRE(::link(box.in("a").c_str(), box.in("b").c_str()) == 0);
  REQUIRE(files->write("a", bytes("two!")).ok());
  CHECK(box.get(box.in("b")) == "two!");
}

TEST_CASE("write and mkdir set 0644 and 0755 whatever the umask", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  const mode_t old = ::umask(077);
  const bool wrote = files->write("f", bytes("x")).ok();
  const bool made = files->mkdir("d", false).ok();
  const bool made_p = files->mkdir("p/q", true).ok();
  auto w = files->open_write("s", false);
  const bool streamed = w.ok() && (*w)->commit().ok();
  ::umask(old);
  REQUIRE((wrote && made && made_p && streamed));
  CHECK((box.lstat_of(box.in("f")).st_mode & 07777) == 0644);
  CHECK((box.lstat_of(box.in("s")).st_mode & 07777) == 0644);
  CHECK((box.lstat_of(box.in("d")).st_mode & 07777) == 0755);
  CHECK((box.lstat_of(box.in("p")).st_mode & 07777) == 0755);
  CHECK((box.lstat_of(box.in("p/q")).st_mode & 07777) == 0755);
}

TEST_CASE("write and read error codes", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(::mkdir(box.in("dir").c_str(), 0755) == 0);
  REQUIRE(::mkfifo(box.in("fifo").c_str(), 0644) == 0);
  box.put(box.in("file"), "0123456789");
  CHECK(fails(files->write("missing/a", bytes("x"))) == ErrorCode::file_not_found);
  CHECK_FALSE(box.present(box.in("missing")));
  CHECK(fails(files->write("file/a", bytes("x"))) == ErrorCode::not_a_directory);
  CHECK(fails(files->write("", bytes("x"))) == ErrorCode::is_a_directory);
  CHECK(fails(files->write("dir", bytes("x"))) == ErrorCode::is_a_directory);
  CHECK(fails(files->write("fifo", bytes("x"))) == ErrorCode::invalid_path);
  CHECK(fails(files->read("missing", 10)) == ErrorCode::file_not_found);
  CHECK(fails(files->read("dir", 10)) == ErrorCode::is_a_directory);
  CHECK(fails(files->read("", 10)) == ErrorCode::is_a_directory);
  CHECK(fails(files->read("fifo", 10)) == ErrorCode::invalid_path);
  CHECK(fails(files->read("file", 9)) == ErrorCode::payload_too_large);
  CHECK(files->read("file", 10).ok());
  CHECK(fails(files->open_read("dir")) == ErrorCode::is_a_directory);
  CHECK(fails(files->open_read("fifo")) == ErrorCode::invalid_path);
  CHECK(fails(files->copy("fifo", "x")) == ErrorCode::invalid_path);
  CHECK(fails(files->open_write("fifo", false)) == ErrorCode::invalid_path);
  // A device node a privileged guest could leave (here /dev/null's numbers): never opened.
  if (::mknod(box.in("dev").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0) {
    CHECK(fails(files->read("dev", 10)) == ErrorCode::invalid_path);
    CHECK(fails(files->write("dev", bytes("x"))) == ErrorCode::invalid_path);
    CHECK(files->stat("dev")->kind == FileKind::other);
  }
}

TEST_CASE("open_read hands out a read-only fd and the size", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.put(box.in("big"), std::string(100'000, 'z'));
  Outcome<VolumeFiles::ReadHandle> h = files->open_read("big");
  REQUIRE(h.ok());
  CHECK(h->size == 100'000);
  CHECK((::fcntl(h->fd.get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  CHECK((::fcntl(h->fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
  char c = 0;
  CHECK(::pread(h->fd.get(), &c, 1, 99'999) == 1);
  CHECK(c == 'z');
}

TEST_CASE("mkdir with and without parents", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->mkdir("a", false).ok());
  CHECK(fails(files->mkdir("a", false)) == ErrorCode::file_exists);
  CHECK(fails(files->mkdir("x/y", false)) == ErrorCode::file_not_found);
  CHECK(fails(files->mkdir("", false)) == ErrorCode::file_exists);
  CHECK(files->mkdir("", true).ok());
  CHECK(files->mkdir(".", true).ok());
  REQUIRE(files->mkdir("a/b/c/d", true).ok());
  CHECK(fs::is_directory(box.in("a/b/c/d")));
  CHECK(files->mkdir("a/b/c/d", true).ok());  // mkdir -p of an existing tree is fine
  box.put(box.in("a/file"), "x");
  CHECK(fails(files->mkdir("a/file", true)) == ErrorCode::file_exists);
  CHECK(fails(files->mkdir("a/file/sub", true)) == ErrorCode::not_a_directory);
  CHECK(fails(files->mkdir("a/file", false)) == ErrorCode::file_exists);
  box.check_outside_untouched();
}

TEST_CASE("remove takes a file a symlink or an empty directory", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.put(box.in("f"), "x");
  REQUIRE(::mkdir(box.in("empty").c_str(), 0755) == 0);
  REQUIRE(::mkdir(box.in("full").c_str(), 0755) == 0);
  box.put(box.in("full/x"), "x");
  box.link(box.outside(), "side");
  box.link(box.outside() + "/sentinel", "sentinel_link");
  CHECK(files->remove("f").ok());
  CHECK_FALSE(box.present(box.in("f")));
  CHECK(files->remove("empty").ok());
  CHECK(fails(files->remove("full")) == ErrorCode::directory_not_empty);
  CHECK(fails(files->remove("missing")) == ErrorCode::file_not_found);
  CHECK(fails(files->remove("")) == ErrorCode::invalid_path);
  CHECK(fails(files->remove(".")) == ErrorCode::invalid_path);
  CHECK(fails(files->remove("full/..")) == ErrorCode::invalid_path);
  CHECK(files->remove("side").ok());
  CHECK(files->remove("sentinel_link").ok());
  CHECK_FALSE(box.present(box.in("side")));
  box.check_outside_untouched();
}

TEST_CASE("remove_all removes a tree a guest locked with 0555 0444 and 0000", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->mkdir("t/a/b/c", true).ok());
  REQUIRE(files->mkdir("t/locked/inner", true).ok());
  box.put(box.in("t/a/b/c/f"), "1");
  box.put(box.in("t/a/g"), "2");
  box.put(box.in("t/locked/inner/h"), "3");
  box.link(box.outside(), "t/a/side");
  box.link("/", "t/a/b/root");
  REQUIRE(::chmod(box.in("t/a/b/c/f").c_str(), 0444) == 0);
  REQUIRE(::chmod(box.in("t/locked/inner").c_str(), 0000) == 0);
  REQUIRE(::chmod(box.in("t/locked").c_str(), 0555) == 0);
  REQUIRE(::chmod(box.in("t/a/b").c_str(), 0555) == 0);
  CHECK(files->remove_all("t").ok());
  CHECK_FALSE(box.present(box.in("t")));
  CHECK(fs::is_empty(box.vol()));
  box.check_outside_untouched();
}

TEST_CASE("remove_all refuses the root and reports a missing path", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.put(box.in("f"), "x");
  CHECK(fails(files->remove_all("")) == ErrorCode::invalid_path);
  CHECK(fails(files->remove_all(".")) == ErrorCode::invalid_path);
  CHECK(fails(files->remove_all("a/..")) == ErrorCode::invalid_path);
  CHECK(fails(files->remove_all("missing")) == ErrorCode::file_not_found);
  CHECK(box.present(box.in("f")));
  CHECK(files->remove_all("f").ok());  // a file is removed like remove()
  CHECK_FALSE(box.present(box.in("f")));
}

TEST_CASE("remove_all of a symlink removes the link and never follows it", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.link(box.outside(), "side");
  box.link("/", "root");
  CHECK(files->remove_all("side").ok());
  CHECK(files->remove_all("root").ok());
  CHECK(fs::is_empty(box.vol()));
  box.check_outside_untouched();
}

TEST_CASE("remove_all handles a tree deeper than its fd budget", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  std::string deep = "top";
  for (int i = 0; i < 150; ++i)
    deep += "/d";
  REQUIRE(files->mkdir(deep, true).ok());
  REQUIRE(files->write(deep + "/leaf", bytes("x")).ok());
  REQUIRE(files->write("top/d/d/side", bytes("y")).ok());
  CHECK(files->remove_all("top").ok());
  CHECK(fs::is_empty(box.vol()));
}

TEST_CASE("remove_all works unprivileged on a tree with 0555 directories", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->mkdir("t/a/b", true).ok());
  REQUIRE(files->write("t/a/b/f", bytes("1")).ok());
  REQUIRE(files->write("t/a/g", bytes("2")).ok());
  for (const auto& e : fs::recursive_directory_iterator(box.vol())) {
    REQUIRE(::lchown(e.path().c_str(), 65534, 65534) == 0);
  }
  REQUIRE(::chown(box.vol().c_str(), 65534, 65534) == 0);
  REQUIRE(::chmod(box.in("t/a/b/f").c_str(), 0444) == 0);
  REQUIRE(::chmod(box.in("t/a/b").c_str(), 0555) == 0);
  REQUIRE(::chmod(box.in("t/a").c_str(), 0555) == 0);
  REQUIRE(::chmod(box.in("t").c_str(), 0555) == 0);
  if (::geteuid() != 0) {
    WARN("not root: cannot switch to an unprivileged user; the rest is skipped");
    return;
  }
  // In a child that drops root (and with it CAP_DAC_OVERRIDE): the permission bits then matter.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(2);
    }
    ::_exit(files->remove_all("t").ok() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(fs::is_empty(box.vol()));
}

TEST_CASE("exists and stat use lstat semantics", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.put(box.in("f"), "12345");
  REQUIRE(::chmod(box.in("f").c_str(), 0640) == 0);
  REQUIRE(::mkdir(box.in("d").c_str(), 0755) == 0);
  box.link(box.outside() + "/sentinel", "link");
  box.link("nowhere", "dangling");
  CHECK(*files->exists("f"));
  CHECK(*files->exists("d"));
  CHECK(*files->exists("link"));
  CHECK(*files->exists("dangling"));
  CHECK(*files->exists(""));
  CHECK_FALSE(*files->exists("missing"));
  CHECK_FALSE(*files->exists("missing/x"));
  CHECK_FALSE(*files->exists("f/x"));
  CHECK(fails(files->exists("../vol")) == ErrorCode::path_escape);
  CHECK(fails(files->exists("link/x")) == ErrorCode::path_escape);

  Outcome<FileStat> st = files->stat("./f");
  REQUIRE(st.ok());
  CHECK(st->path == "f");
  CHECK(st->kind == FileKind::file);
  CHECK(st->size == 5);
  CHECK(st->mode == 0640);
  const struct stat host = box.lstat_of(box.in("f"));
  CHECK(st->uid == host.st_uid);
  CHECK(st->gid == host.st_gid);
  CHECK(st->mtime_ms == int64_t{host.st_mtim.tv_sec} * 1000 + host.st_mtim.tv_nsec / 1'000'000);
  CHECK(files->stat("d")->kind == FileKind::directory);
  CHECK(files->stat("")->kind == FileKind::directory);
  CHECK(files->stat("")->path.empty());
  Outcome<FileStat> ln = files->stat("link");
  REQUIRE(ln.ok());
  CHECK(ln->kind == FileKind::symlink);
  CHECK(ln->size == box.outside().size() + std::string("/sentinel").size());
  CHECK(fails(files->stat("missing")) == ErrorCode::file_not_found);
  CHECK(to_string(FileKind::symlink) == "symlink");
  CHECK(to_string(FileKind::other) == "other");
}

TEST_CASE("list is sorted and recursive lists children after their directory", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->mkdir("b/y", true).ok());
  REQUIRE(files->write("b/y/z", bytes("zz")).ok());
  REQUIRE(files->write("b/x", bytes("x")).ok());
  REQUIRE(files->write("a", bytes("a")).ok());
  REQUIRE(files->write("c", bytes("c")).ok());
  box.link(box.outside(), "b/side");

  auto names = [](const std::vector<FileStat>& v) {
    std::vector<std::string> out;
    for (const FileStat& s : v)
      out.push_back(s.path);
    return out;
  };
  Outcome<std::vector<FileStat>> top = files->list("", false);
  REQUIRE(top.ok());
  CHECK(names(*top) == std::vector<std::string>{"a", "b", "c"});
  CHECK((*top)[1].kind == FileKind::directory);
  CHECK((*top)[0].size == 1);

  Outcome<std::vector<FileStat>> all = files->list(".", true);
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"a", "b", "b/side", "b/x", "b/y", "b/y/z", "c"});
  CHECK((*all)[2].kind == FileKind::symlink);  // listed, never entered

  Outcome<std::vector<FileStat>> sub = files->list("b/y/..", true);
  REQUIRE(sub.ok());
  CHECK(names(*sub) == std::vector<std::string>{"b/side", "b/x", "b/y", "b/y/z"});

  CHECK(fails(files->list("a", false)) == ErrorCode::not_a_directory);
  CHECK(fails(files->list("missing", false)) == ErrorCode::file_not_found);
  CHECK(fails(files->list("b/side", false)) == ErrorCode::path_escape);
  box.check_outside_untouched();
}

TEST_CASE("list refuses a recursive listing deeper than its limit", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  std::string deep = "t";
  for (int i = 0; i < 70; ++i)
    deep += "/d";
  REQUIRE(files->mkdir(deep, true).ok());
  CHECK(fails(files->list("t", true)) == ErrorCode::invalid_request);
  CHECK(files->list("t", false).ok());
  CHECK(files->list(deep.substr(0, 2 * 40), true).ok());
}

TEST_CASE("list refuses more entries than its limit", "[volume_files]") {
  // 100,001 files: on tmpfs when there is one (creating them on a disk filesystem takes seconds).
  Sandbox box(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "");
  auto files = box.open();
  REQUIRE(files->mkdir("many", false).ok());
  const int dir = ::open(box.in("many").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dir >= 0);
  int created = 0;
  for (int i = 0; i <= 100'000; ++i) {
    if (::mknodat(dir, std::to_string(i).c_str(), S_IFREG | 0644, 0) == 0) ++created;
  }
  ::close(dir);
  REQUIRE(created == 100'001);
  CHECK(fails(files->list("many", false)) == ErrorCode::invalid_request);
  CHECK(fails(files->list("", true)) == ErrorCode::invalid_request);
  REQUIRE(files->remove("many/0").ok());
  Outcome<std::vector<FileStat>> all = files->list("many", true);
  REQUIRE(all.ok());
  CHECK(all->size() == 100'000);
  CHECK(files->remove_all("many").ok());
  CHECK(fs::is_empty(box.vol()));
}

TEST_CASE("copy copies files creates parents and refuses directories", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  const std::string content(3 << 20, 'q');  // several copy chunks
  REQUIRE(files->write("src", bytes(content)).ok());
  REQUIRE(files->copy("src", "new/dir/dst").ok());
  CHECK(box.get(box.in("new/dir/dst")) == content);
  CHECK((box.lstat_of(box.in("new/dir/dst")).st_mode & 07777) == 0644);
  REQUIRE(files->write("small", bytes("small")).ok());
  REQUIRE(files->copy("small", "new/dir/dst").ok());  // replaces
  CHECK(box.get(box.in("new/dir/dst")) == "small");
  REQUIRE(files->copy("small", "small").ok());  // onto itself
  CHECK(box.get(box.in("small")) == "small");
  CHECK(fails(files->copy("new", "x")) == ErrorCode::is_a_directory);
  CHECK(fails(files->copy("missing", "x")) == ErrorCode::file_not_found);
  CHECK(fails(files->copy("small", "new")) == ErrorCode::is_a_directory);
  CHECK(fails(files->copy("small", "")) == ErrorCode::is_a_directory);
  CHECK(fails(files->copy("small", "src/sub")) == ErrorCode::not_a_directory);
  CHECK_FALSE(box.present(box.in("x")));
  // No temporaries are left behind.
  for (const auto& e : fs::recursive_directory_iterator(box.vol())) {
    CHECK(e.path().filename().string().rfind(".sandfs-", 0) == std::string::npos);
  }
}

TEST_CASE("rename moves files and directories and creates parents", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->write("a", bytes("A")).ok());
  REQUIRE(files->write("b", bytes("B")).ok());
  REQUIRE(files->mkdir("d/e", true).ok());
  REQUIRE(files->write("d/e/f", bytes("F")).ok());
  REQUIRE(files->rename("a", "x/y/a2").ok());
  CHECK(box.get(box.in("x/y/a2")) == "A");
  CHECK_FALSE(box.present(box.in("a")));
  REQUIRE(files->rename("x/y/a2", "b").ok());  // replaces
  CHECK(box.get(box.in("b")) == "A");
  REQUIRE(files->rename("d", "moved/d").ok());
  CHECK(box.get(box.in("moved/d/e/f")) == "F");
  CHECK(fails(files->rename("", "z")) == ErrorCode::invalid_path);
  CHECK(fails(files->rename("b", ".")) == ErrorCode::invalid_path);
  CHECK(fails(files->rename("moved", "moved/d/inside")) == ErrorCode::invalid_path);
  CHECK_FALSE(box.present(box.in("moved/d/inside")));
  CHECK(fails(files->rename("missing", "z")) == ErrorCode::file_not_found);
  REQUIRE(files->mkdir("full/sub", true).ok());
  REQUIRE(files->mkdir("other", false).ok());
  CHECK(fails(files->rename("other", "full")) == ErrorCode::directory_not_empty);
  CHECK(fails(files->rename("b", "full")) == ErrorCode::is_a_directory);
  CHECK(fails(files->rename("other", "b")) == ErrorCode::not_a_directory);
  box.check_outside_untouched();
}

// ------------------------------------------------------------------------------------------------
// Escapes

TEST_CASE("dot-dot escapes through missing components create nothing", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  box.put(box.in("f"), "x");
  for (const std::string_view p :
       {"../x", "nothere/../../x", "q2/q3/../../../../../deep.txt", "/x", "a/../../outside/new"}) {
    INFO(p);
    CHECK(fails(files->write(p, bytes("x"))) == ErrorCode::path_escape);
    CHECK(fails(files->mkdir(p, true)) == ErrorCode::path_escape);
    CHECK(fails(files->open_write(p, true)) == ErrorCode::path_escape);
    CHECK(fails(files->copy("f", p)) == ErrorCode::path_escape);
    CHECK(fails(files->rename("f", p)) == ErrorCode::path_escape);
    CHECK(fails(files->copy(p, "g")) == ErrorCode::path_escape);
    CHECK(fails(files->read(p, 10)) == ErrorCode::path_escape);
    CHECK(fails(files->remove_all(p)) == ErrorCode::path_escape);
    CHECK(fails(files->list(p, true)) == ErrorCode::path_escape);
    CHECK(fails(files->stat(p)) == ErrorCode::path_escape);
    CHECK(fails(files->exists(p)) == ErrorCode::path_escape);
  }
  CHECK(fails(files->write(std::string_view("f\0/../../x", 10), bytes("x"))) ==
        ErrorCode::invalid_path);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(box.vol()))
    left.push_back(e.path().filename());
  CHECK(left == std::vector<std::string>{"f"});
  box.check_outside_untouched();
}

// Symlinks a guest could plant (stat virtualization relaxed/off makes real host symlinks): to the
// volume's parent, to the host root, to the sibling (relative and absolute), and to a directory
// inside the volume. Used at the start, the middle and the end of a path.
TEST_CASE("planted symlinks anywhere on a path are never followed", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->mkdir("d/real", true).ok());
  box.put(box.in("f"), "inside");
  const std::vector<std::string> targets = {"..",          "/",      "../outside",
                                            box.outside(), "d/real", "../../vol/d/real"};
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string name = "l" + std::to_string(i);
    box.link(targets[i], name);
    box.link(targets[i], "d/" + name);
  }
  const std::string probe = "sandfs-escape-probe-" + std::to_string(::getpid());
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string l = "l" + std::to_string(i);
    for (const std::string& p : {l + "/" + probe, "d/" + l + "/" + probe,
                                 "d/" + l + "/outside/" + probe, l + "/outside/sentinel"}) {
      INFO(p);
      CHECK(fails(files->write(p, bytes("x"))) == ErrorCode::path_escape);
      CHECK(fails(files->mkdir(p, true)) == ErrorCode::path_escape);
      CHECK(fails(files->mkdir(p, false)) == ErrorCode::path_escape);
      CHECK(fails(files->open_write(p, true)) == ErrorCode::path_escape);
      CHECK(fails(files->open_write(p, false)) == ErrorCode::path_escape);
      CHECK(fails(files->copy("f", p)) == ErrorCode::path_escape);
      CHECK(fails(files->copy(p, "g")) == ErrorCode::path_escape);
      CHECK(fails(files->rename("f", p)) == ErrorCode::path_escape);
      CHECK(fails(files->rename(p, "g")) == ErrorCode::path_escape);
      CHECK(fails(files->read(p, 100)) == ErrorCode::path_escape);
      CHECK(fails(files->open_read(p)) == ErrorCode::path_escape);
      CHECK(fails(files->stat(p)) == ErrorCode::path_escape);
      CHECK(fails(files->exists(p)) == ErrorCode::path_escape);
      CHECK(fails(files->remove(p)) == ErrorCode::path_escape);
      CHECK(fails(files->remove_all(p)) == ErrorCode::path_escape);
      CHECK(fails(files->list(p, false)) == ErrorCode::path_escape);
    }
    // At the end of the path: the link itself.
    for (const std::string& p : {l, "d/" + l}) {
      INFO(p);
      CHECK(files->stat(p)->kind == FileKind::symlink);
      CHECK(fails(files->read(p, 100)) == ErrorCode::path_escape);
      CHECK(fails(files->open_read(p)) == ErrorCode::path_escape);
      CHECK(fails(files->write(p, bytes("x"))) == ErrorCode::path_escape);
      CHECK(fails(files->open_write(p, false)) == ErrorCode::path_escape);
      CHECK(fails(files->copy(p, "g")) == ErrorCode::path_escape);
      CHECK(fails(files->copy("f", p)) == ErrorCode::path_escape);
      CHECK(fails(files->list(p, true)) == ErrorCode::path_escape);
      CHECK(fails(files->mkdir(p, false)) == ErrorCode::file_exists);
    }
  }
  CHECK_FALSE(box.present("/" + probe));
  CHECK_FALSE(box.present(box.base() + "/" + probe));
  CHECK(box.get(box.in("f")) == "inside");
  CHECK_FALSE(box.present(box.in("g")));
  // The listing shows the links and enters none of them.
  Outcome<std::vector<FileStat>> all = files->list("", true);
  REQUIRE(all.ok());
  CHECK(all->size() == 1 + 2 + targets.size() * 2);  // f, d, d/real, l*, d/l*
  // Removing them removes the links only.
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string l = "l" + std::to_string(i);
    CHECK(files->remove(l).ok());
    CHECK(files->remove_all("d/" + l).ok());
  }
  CHECK(fs::is_directory(box.in("d/real")));
  box.check_outside_untouched();
}

TEST_CASE("a symlink swapped in by another thread never redirects an operation", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  // `mid` flips between a real directory and a symlink to the sibling, atomically
  // (RENAME_EXCHANGE), while this thread keeps operating below `mid`.
  REQUIRE(::mkdir(box.in("mid").c_str(), 0755) == 0);
  box.link(box.outside(), "other");
  box.put(box.in("src"), "payload");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> swaps{0};
  std::thread swapper([&] {
    const int dir = ::open(box.vol().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    while (!stop.load()) {
      if (::renameat2(dir, "mid", dir, "other", RENAME_EXCHANGE) == 0) swaps.fetch_add(1);
      // Sometimes flip back at once, sometimes let an operation or two run on either state.
      if (swaps.load() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    ::close(dir);
  });
  uint64_t ok = 0, escaped = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  for (int i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    const std::string n = std::to_string(i % 16);
    const std::vector<bool> results = {
        files->write("mid/f" + n, bytes("x")).ok(),
        files->mkdir("mid/d" + n + "/e/f", true).ok(),
        files->copy("src", "mid/c" + n).ok(),
        files->rename("mid/c" + n, "mid/r" + n).ok(),
        [&] {
          auto w = files->open_write("mid/w" + n, true);
          return w.ok() && (*w)->write(bytes("streamed")).ok() && (*w)->commit().ok();
        }(),
        files->remove_all("mid/d" + n).ok(),
        files->remove("mid/f" + n).ok(),
        files->read("mid/r" + n, 100).ok(),
        files->list("mid", true).ok(),
    };
    for (bool r : results)
      (r ? ok : escaped) += 1;
  }
  stop = true;
  swapper.join();
  INFO("swaps " << swaps.load() << " ok " << ok << " refused " << escaped);
  CHECK(swaps.load() > 100);
  CHECK(ok > 0);
  CHECK(escaped > 0);
  // `other` is a real directory or the link; whichever, the sibling holds only the sentinel.
  box.check_outside_untouched();
}

// ------------------------------------------------------------------------------------------------
// Quota

TEST_CASE("quota charges growth and refuses a write that does not fit", "[volume_files]") {
  Sandbox box;
  auto quota = std::make_shared<Quota>(100);
  quota->add_existing(0);
  auto files = box.open(quota);
  REQUIRE(files->write("a", bytes(std::string(60, 'a'))).ok());
  CHECK(quota->used() == 60);
  REQUIRE(files->write("a", bytes(std::string(80, 'b'))).ok());  // grows by 20
  CHECK(quota->used() == 80);
  CHECK(fails(files->write("b", bytes(std::string(21, 'c')))) == ErrorCode::quota_exceeded);
  CHECK_FALSE(box.present(box.in("b")));  // created for the attempt, removed again
  CHECK(fails(files->write("a", bytes(std::string(101, 'd')))) == ErrorCode::quota_exceeded);
  CHECK(box.get(box.in("a")) == std::string(80, 'b'));  // the old file is intact
  CHECK(quota->used() == 80);
  REQUIRE(files->write("a", bytes(std::string(30, 'e'))).ok());  // shrinks
  CHECK(quota->used() == 30);
  REQUIRE(files->write("b", bytes(std::string(70, 'f'))).ok());
  CHECK(quota->used() == 100);
  REQUIRE(files->remove("b").ok());
  CHECK(quota->used() == 30);
}

TEST_CASE("quota gives back removed files once per inode", "[volume_files]") {
  Sandbox box;
  auto quota = std::make_shared<Quota>(1000);
  quota->add_existing(0);
  auto files = box.open(quota);
  REQUIRE(files->mkdir("t/u", true).ok());
  REQUIRE(files->write("t/a", bytes(std::string(100, 'a'))).ok());
  REQUIRE(files->write("t/u/b", bytes(std::string(200, 'b'))).ok());
  REQUIRE(files->write("keep", bytes(std::string(50, 'k'))).ok());
  REQUIRE(::link(box.in("keep").c_str(), box.in("t/keep_link").c_str()) == 0);
  CHECK(quota->used() == 350);
  REQUIRE(files->remove_all("t").ok());
  CHECK(quota->used() == 50);  // keep still has a name
  REQUIRE(::link(box.in("keep").c_str(), box.in("second").c_str()) == 0);
  REQUIRE(files->remove("keep").ok());
  CHECK(quota->used() == 50);
  REQUIRE(files->remove("second").ok());
  CHECK(quota->used() == 0);
}

TEST_CASE("quota charges copies and rename over a file gives the old one back", "[volume_files]") {
  Sandbox box;
  auto quota = std::make_shared<Quota>(100);
  quota->add_existing(0);
  auto files = box.open(quota);
  REQUIRE(files->write("a", bytes(std::string(40, 'a'))).ok());
  REQUIRE(files->copy("a", "b").ok());
  CHECK(quota->used() == 80);
  CHECK(fails(files->copy("a", "c")) == ErrorCode::quota_exceeded);
  CHECK_FALSE(box.present(box.in("c")));
  CHECK(quota->used() == 80);
  REQUIRE(files->write("s", bytes(std::string(10, 's'))).ok());
  REQUIRE(files->rename("s", "a").ok());  // a's 40 bytes go
  CHECK(quota->used() == 50);
  CHECK(box.get(box.in("a")) == std::string(10, 's'));
}

TEST_CASE("a quota nobody counted yet is counted once from the tree", "[volume_files]") {
  Sandbox box;
  REQUIRE(::mkdir(box.in("d").c_str(), 0755) == 0);
  box.put(box.in("d/a"), std::string(30, 'a'));
  box.put(box.in("b"), std::string(20, 'b'));
  REQUIRE(::link(box.in("b").c_str(), box.in("d/b2").c_str()) == 0);  // counted once
  box.link(box.outside(), "side");                                    // never followed
  auto quota = std::make_shared<Quota>(1000);
  auto files = box.open(quota);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&files, i] { (void)files->write("new" + std::to_string(i), bytes("0123456789")); });
  }
  for (auto& t : threads)
    t.join();
  CHECK(quota->ready());
  CHECK(quota->used() == 50 + 40);
}

TEST_CASE("a quota another user is counting is waited for and not counted twice",
          "[volume_files]") {
  Sandbox box;
  box.put(box.in("old"), std::string(7, 'o'));
  auto quota = std::make_shared<Quota>(1000);
  REQUIRE(quota->claim_count());  // as a mount's walk would
  auto files = box.open(quota);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    CHECK(files->write("new", bytes("0123456789")).ok());
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(done.load());
  quota->add_existing(7);
  writer.join();
  CHECK(quota->used() == 17);
}

TEST_CASE("a quota whose counter gave up is counted by the next file operation", "[volume_files]") {
  Sandbox box;
  box.put(box.in("old"), std::string(7, 'o'));
  auto quota = std::make_shared<Quota>(1000);
  REQUIRE(quota->claim_count());
  auto files = box.open(quota);
  std::thread writer([&] { CHECK(files->write("new", bytes("0123456789")).ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  quota->abandon_count();  // its mount went away before the walk finished
  writer.join();
  CHECK(quota->ready());
  CHECK(quota->used() == 17);
}

// ------------------------------------------------------------------------------------------------
// Streaming

TEST_CASE("open_write commits through a hidden temporary", "[volume_files]") {
  Sandbox box;
  auto quota = std::make_shared<Quota>(1000);
  quota->add_existing(0);
  auto files = box.open(quota);
  REQUIRE(files->write("target", bytes("old content")).ok());
  CHECK(quota->used() == 11);
  auto w = files->open_write("target", false);
  REQUIRE(w.ok());
  REQUIRE((*w)->write(bytes("new ")).ok());
  REQUIRE((*w)->write(bytes("content!")).ok());
  CHECK(box.get(box.in("target")) == "old content");  // not visible before commit
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(box.vol()))
    names.push_back(e.path().filename());
  REQUIRE(names.size() == 2);
  CHECK(quota->used() == 11 + 12);
  REQUIRE((*w)->commit().ok());
  CHECK(box.get(box.in("target")) == "new content!");
  CHECK(quota->used() == 12);
  CHECK(fails((*w)->write(bytes("x"))) == ErrorCode::invalid_request);
  CHECK(fails((*w)->commit()) == ErrorCode::invalid_request);
  w = Outcome<std::unique_ptr<VolumeFiles::Writer>>(std::unique_ptr<VolumeFiles::Writer>());
  CHECK(box.get(box.in("target")) == "new content!");  // the destructor after commit is a no-op
  CHECK(quota->used() == 12);
  names.clear();
  for (const auto& e : fs::directory_iterator(box.vol()))
    names.push_back(e.path().filename());
  CHECK(names == std::vector<std::string>{"target"});
}

TEST_CASE("open_write without commit changes nothing", "[volume_files]") {
  Sandbox box;
  auto quota = std::make_shared<Quota>(100);
  quota->add_existing(0);
  auto files = box.open(quota);
  REQUIRE(files->write("target", bytes("old")).ok());
  {
    auto w = files->open_write("target", false);
    REQUIRE(w.ok());
    REQUIRE((*w)->write(bytes(std::string(90, 'n'))).ok());
    CHECK(fails((*w)->write(bytes(std::string(10, 'n')))) == ErrorCode::quota_exceeded);
    CHECK(quota->used() == 93);
  }
  CHECK(box.get(box.in("target")) == "old");
  CHECK(quota->used() == 3);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(box.vol()))
    names.push_back(e.path().filename());
  CHECK(names == std::vector<std::string>{"target"});
}

TEST_CASE("open_write creates parents only when asked", "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  CHECK(fails(files->open_write("p/q/r", false)) == ErrorCode::file_not_found);
  CHECK_FALSE(box.present(box.in("p")));
  auto w = files->open_write("p/q/r", true);
  REQUIRE(w.ok());
  REQUIRE((*w)->commit().ok());  // an empty upload is an empty file
  CHECK(box.get(box.in("p/q/r")).empty());
  REQUIRE(files->mkdir("dir", false).ok());
  CHECK(fails(files->open_write("dir", false)) == ErrorCode::is_a_directory);
  CHECK(fails(files->open_write("", false)) == ErrorCode::is_a_directory);
  // A directory put where the target was meanwhile: the commit refuses, the temporary goes.
  auto w2 = files->open_write("later", false);
  REQUIRE(w2.ok());
  REQUIRE(files->mkdir("later", false).ok());
  CHECK(fails((*w2)->commit()) == ErrorCode::is_a_directory);
  w2 = Outcome<std::unique_ptr<VolumeFiles::Writer>>(std::unique_ptr<VolumeFiles::Writer>());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(box.vol()))
    names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"dir", "later", "p"});
}

TEST_CASE("stat and list show the guest's owner and mode from the ownership record",
          "[volume_files]") {
  Sandbox box;
  auto files = box.open();
  REQUIRE(files->write("guest.sh", bytes("#!/bin/sh\n")).ok());
  REQUIRE(files->write("fifo", bytes("")).ok());
  REQUIRE(files->write("plain", bytes("p")).ok());
  REQUIRE(files->write("corrupt", bytes("c")).ok());
  REQUIRE(files->mkdir("home", true).ok());
  const auto set_record = [&](const std::string& name, sandfs::passthrough::Record r) {
    const auto raw = sandfs::passthrough::encode_record(r);
    REQUIRE(::setxattr(box.in(name).c_str(), "user.sandfs.stat", raw.data(), raw.size(), 0) == 0);
  };
  set_record("guest.sh", {1000, 1001, S_IFREG | 04755, 0});
  set_record("fifo", {7, 8, S_IFIFO | 0600, 0});
  set_record("home", {1000, 1000, S_IFDIR | 0700, 0});
  REQUIRE(::setxattr(box.in("corrupt").c_str(), "user.sandfs.stat", "bad", 3, 0) == 0);

  Outcome<FileStat> s = files->stat("guest.sh");
  REQUIRE(s.ok());
  CHECK(s->kind == FileKind::file);
  CHECK(s->uid == 1000);
  CHECK(s->gid == 1001);
  CHECK(s->mode == 04755);
  Outcome<FileStat> f = files->stat("fifo");
  REQUIRE(f.ok());
  CHECK(f->kind == FileKind::other);
  CHECK(f->uid == 7);
  CHECK(f->mode == 0600);
  Outcome<FileStat> h = files->stat("home");
  REQUIRE(h.ok());
  CHECK(h->kind == FileKind::directory);
  CHECK(h->mode == 0700);
  // No record, or one that is not well formed: the host's own view.
  const struct stat host = Sandbox::lstat_of(box.in("corrupt"));
  Outcome<FileStat> c = files->stat("corrupt");
  REQUIRE(c.ok());
  CHECK(c->mode == (host.st_mode & 07777));
  CHECK(c->uid == host.st_uid);

  Outcome<std::vector<FileStat>> listed = files->list("", false);
  REQUIRE(listed.ok());
  for (const FileStat& e : *listed) {
    Outcome<FileStat> one = files->stat(e.path);
    REQUIRE(one.ok());
    CHECK(e.kind == one->kind);
    CHECK(e.mode == one->mode);
    CHECK(e.uid == one->uid);
    CHECK(e.gid == one->gid);
  }
  CHECK(listed->size() == 5);
}

}  // namespace
}  // namespace sandfs::volumes
