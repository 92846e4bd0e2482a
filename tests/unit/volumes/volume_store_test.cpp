// VolumeStore: create/get/list/update/remove, their errors, crash repair, concurrency, sizes.
#include "volumes/volume_store.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "backends/passthrough/quota.hpp"
#include "volumes/catalog.hpp"

using namespace sandfs::volumes;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sandfs-store-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    // Tests leave read-only trees behind on purpose; make them removable first.
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
      }
    }
    fs::remove_all(path, ec);
  }
};

std::unique_ptr<VolumeStore> open_store(const fs::path& dir) {
  auto store = VolumeStore::open(dir);
  if (!store.ok()) FAIL("open: " << store.error().message);
  return std::move(*store);
}

void write_file(const fs::path& path, size_t size, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  REQUIRE(fd >= 0);
  std::string data(size, 'x');
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(size));
  ::close(fd);
}

CreateVolume dir_volume(std::string name, Labels labels = {}) {
  CreateVolume c;
  c.name = std::move(name);
  c.labels = std::move(labels);
  return c;
}

ErrorCode code_of(const Outcome<VolumeInfo>& r) {
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

std::vector<std::string> names(const std::vector<VolumeInfo>& volumes) {
  std::vector<std::string> out;
  for (const auto& v : volumes)
    out.push_back(v.name);
  return out;
}

// Entries of a directory, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Lowercase 8-4-4-4-12 hex, version 4, RFC 4122 variant.
bool is_uuid_v4(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = id[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return id[14] == '4' && std::string_view("89ab").find(id[19]) != std::string_view::npos;
}

// Drops the capabilities that let root ignore permissions, for the calling thread only (Linux
// capabilities are per thread), so permission handling is tested when the suite runs as root.
void drop_dac_capabilities_of_this_thread() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  REQUIRE(::syscall(SYS_capget, &header, data) == 0);
  data[0].effective &=
      ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH) | (1u << CAP_FOWNER));
  REQUIRE(::syscall(SYS_capset, &header, data) == 0);
}

}  // namespace

TEST_CASE("volume names follow the documented pattern", "[volumes][name]") {
  CHECK(valid_volume_name("a"));
  CHECK(valid_volume_name("A0._-z"));
  CHECK(valid_volume_name("9lives"));
  CHECK(valid_volume_name(std::string(128, 'n')));
  CHECK_FALSE(valid_volume_name(""));
  CHECK_FALSE(valid_volume_name(std::string(129, 'n')));
  CHECK_FALSE(valid_volume_name(".staging"));
  CHECK_FALSE(valid_volume_name("-x"));
  CHECK_FALSE(valid_volume_name("_x"));
  CHECK_FALSE(valid_volume_name("a/b"));
  CHECK_FALSE(valid_volume_name("a b"));
  CHECK_FALSE(valid_volume_name(std::string("a\0b", 3)));
  CHECK_FALSE(valid_volume_name("caf\xc3\xa9"));
  CHECK(to_string(VolumeKind::dir) == "dir");
  CHECK(to_string(VolumeKind::disk) == "disk");
}

TEST_CASE("error codes have stable names and errnos map to codes", "[volumes][error]") {
  CHECK(code_name(ErrorCode::invalid_request) == "invalid_request");
  CHECK(code_name(ErrorCode::invalid_name) == "invalid_name");
  CHECK(code_name(ErrorCode::invalid_config) == "invalid_config");
  CHECK(code_name(ErrorCode::invalid_path) == "invalid_path");
  CHECK(code_name(ErrorCode::path_escape) == "path_escape");
  CHECK(code_name(ErrorCode::volume_not_found) == "volume_not_found");
  CHECK(code_name(ErrorCode::volume_already_exists) == "volume_already_exists");
  CHECK(code_name(ErrorCode::volume_in_use) == "volume_in_use");
  CHECK(code_name(ErrorCode::file_not_found) == "file_not_found");
  CHECK(code_name(ErrorCode::file_exists) == "file_exists");
  CHECK(code_name(ErrorCode::not_a_directory) == "not_a_directory");
  CHECK(code_name(ErrorCode::is_a_directory) == "is_a_directory");
  CHECK(code_name(ErrorCode::directory_not_empty) == "directory_not_empty");
  CHECK(code_name(ErrorCode::quota_exceeded) == "quota_exceeded");
  CHECK(code_name(ErrorCode::payload_too_large) == "payload_too_large");
  CHECK(code_name(ErrorCode::unsupported) == "unsupported");
  CHECK(code_name(ErrorCode::mount_not_found) == "mount_not_found");
  CHECK(code_name(ErrorCode::unauthorized) == "unauthorized");
  CHECK(code_name(ErrorCode::internal) == "internal");

  CHECK(error_from_errno(ENOENT, "read a").code == ErrorCode::file_not_found);
  CHECK(error_from_errno(ELOOP, "x").code == ErrorCode::path_escape);
  CHECK(error_from_errno(EXDEV, "x").code == ErrorCode::path_escape);
  CHECK(error_from_errno(ENOSPC, "x").code == ErrorCode::quota_exceeded);
  CHECK(error_from_errno(EDQUOT, "x").code == ErrorCode::quota_exceeded);
  CHECK(error_from_errno(EEXIST, "x").code == ErrorCode::file_exists);
  CHECK(error_from_errno(ENOTDIR, "x").code == ErrorCode::not_a_directory);
  CHECK(error_from_errno(EISDIR, "x").code == ErrorCode::is_a_directory);
  CHECK(error_from_errno(ENOTEMPTY, "x").code == ErrorCode::directory_not_empty);
  CHECK(error_from_errno(EIO, "x").code == ErrorCode::internal);
  const Error e = error_from_errno(ENOENT, "read a/b.txt");
  CHECK(e.message.find("read a/b.txt") != std::string::npos);
  CHECK(e.message.find("ENOENT") != std::string::npos);
}

TEST_CASE("store: create then get and get_by_id and list describe a dir volume",
          "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  CreateVolume c = dir_volume("data", {{"team", "a"}});
  c.quota_bytes = 1 << 20;
  auto created = store->create(c);
  REQUIRE(created.ok());
  const VolumeInfo& v = *created;
  CHECK(is_uuid_v4(v.id));
  CHECK(v.name == "data");
  CHECK(v.kind == VolumeKind::dir);
  CHECK(v.quota_bytes == std::optional<uint64_t>(1 << 20));
  CHECK_FALSE(v.capacity_bytes.has_value());
  CHECK(v.disk_format.empty());
  CHECK(v.labels == Labels{{"team", "a"}});
  CHECK(v.created_at_ms > 0);
  CHECK(v.used_bytes == 0);
  CHECK(v.path == (fs::absolute(dir.path) / "volumes" / "data").string());
  CHECK(fs::is_directory(v.path));
  CHECK(entries(dir.path / "volumes" / ".staging").empty());

  auto got = store->get("data");
  REQUIRE(got.ok());
  CHECK(got->id == v.id);
  CHECK(got->labels == v.labels);
  auto by_id = store->get_by_id(v.id);
  REQUIRE(by_id.ok());
  CHECK(by_id->name == "data");
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"data"});
}

TEST_CASE("store: invalid names are invalid_name", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  for (const std::string& name :
       std::vector<std::string>{"", ".hidden", "-x", "a/b", "../x", std::string(129, 'a')}) {
    CHECK(code_of(store->create(dir_volume(name))) == ErrorCode::invalid_name);
  }
  CHECK(store->create(dir_volume(std::string(128, 'a'))).ok());
  auto e = store->create(dir_volume("bad name"));
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().message.find("bad name") != std::string::npos);
}

TEST_CASE("store: contradictory configs are invalid_config with a message to act on",
          "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);

  CreateVolume dir_with_size = dir_volume("a");
  dir_with_size.size_bytes = 64 << 20;
  auto r = store->create(dir_with_size);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("quota_bytes") != std::string::npos);

  CreateVolume disk_without_size = dir_volume("b");
  disk_without_size.kind = VolumeKind::disk;
  r = store->create(disk_without_size);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("size_bytes") != std::string::npos);

  CreateVolume disk_with_quota = dir_volume("c");
  disk_with_quota.kind = VolumeKind::disk;
  disk_with_quota.size_bytes = 64 << 20;
  disk_with_quota.quota_bytes = 1 << 20;
  r = store->create(disk_with_quota);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("quota") != std::string::npos);

  CreateVolume zero_quota = dir_volume("d");
  zero_quota.quota_bytes = 0;
  r = store->create(zero_quota);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("at least 1 byte") != std::string::npos);

  CreateVolume huge_quota = dir_volume("e");
  huge_quota.quota_bytes = UINT64_MAX;
  CHECK(code_of(store->create(huge_quota)) == ErrorCode::invalid_config);

  CreateVolume small_disk = dir_volume("f");
  small_disk.kind = VolumeKind::disk;
  small_disk.size_bytes = (8 << 20) - (1 << 20) - 1;  // rounds up to 7 MiB
  r = store->create(small_disk);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("8 MiB") != std::string::npos);

  CreateVolume bad_labels = dir_volume("g", {{"", "v"}});
  CHECK(code_of(store->create(bad_labels)) == ErrorCode::invalid_request);

  // Nothing was left behind by any of them.
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(all->empty());
  CHECK(entries(dir.path / "volumes") == std::vector<std::string>{".staging", ".trash"});
}

TEST_CASE("store: a taken name is volume_already_exists and missing volumes are not found",
          "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(dir_volume("once")).ok());
  auto again = store->create(dir_volume("once"));
  CHECK(code_of(again) == ErrorCode::volume_already_exists);
  CHECK(again.error().message.find("once") != std::string::npos);

  CHECK(code_of(store->get("nope")) == ErrorCode::volume_not_found);
  CHECK(code_of(store->get_by_id("00000000-0000-4000-8000-000000000000")) ==
        ErrorCode::volume_not_found);
  CHECK(code_of(store->update("nope", UpdateVolume{})) == ErrorCode::volume_not_found);
  auto removed = store->remove("nope");
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().code == ErrorCode::volume_not_found);
  CHECK(store->quota("nope") == nullptr);
}

TEST_CASE("store: a folder made behind the store's back is never replaced", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  fs::create_directory(dir.path / "volumes" / "squatted");
  auto r = store->create(dir_volume("squatted"));
  CHECK(code_of(r) == ErrorCode::volume_already_exists);
  CHECK(r.error().message.find("no volume owns") != std::string::npos);
  // The failed create left no row and no staging folder.
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(all->empty());
  CHECK(entries(dir.path / "volumes" / ".staging").empty());
}

TEST_CASE("store: list is newest first and filters by every selector label", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(dir_volume("one", {{"env", "prod"}, {"team", "a"}})).ok());
  REQUIRE(store->create(dir_volume("two", {{"env", "prod"}, {"team", "b"}})).ok());
  REQUIRE(store->create(dir_volume("three", {{"env", "dev"}, {"team", "a"}})).ok());
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"three", "two", "one"});
  auto prod = store->list({{"env", "prod"}});
  REQUIRE(prod.ok());
  CHECK(names(*prod) == std::vector<std::string>{"two", "one"});
  auto team_a = store->list({{"team", "a"}});
  REQUIRE(team_a.ok());
  CHECK(names(*team_a) == std::vector<std::string>{"three", "one"});
  auto both = store->list({{"env", "prod"}, {"team", "a"}});
  REQUIRE(both.ok());
  CHECK(names(*both) == std::vector<std::string>{"one"});
  auto neither = store->list({{"env", "staging"}});
  REQUIRE(neither.ok());
  CHECK(neither->empty());
}

TEST_CASE("store: update replaces labels and sets and clears a dir quota", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto created = store->create(dir_volume("u", {{"a", "1"}}));
  REQUIRE(created.ok());

  UpdateVolume labels;
  labels.labels = Labels{{"b", "2"}};
  auto after = store->update("u", labels);
  REQUIRE(after.ok());
  CHECK(after->labels == Labels{{"b", "2"}});
  CHECK_FALSE(after->quota_bytes.has_value());
  CHECK(after->updated_at_ms >= created->updated_at_ms);

  UpdateVolume set_quota;
  set_quota.quota_bytes = std::optional<uint64_t>(4096);
  after = store->update("u", set_quota);
  REQUIRE(after.ok());
  CHECK(after->quota_bytes == std::optional<uint64_t>(4096));
  CHECK(after->labels == Labels{{"b", "2"}});  // absent: unchanged
  auto got = store->get("u");
  REQUIRE(got.ok());
  CHECK(got->quota_bytes == std::optional<uint64_t>(4096));

  UpdateVolume zero;
  zero.quota_bytes = std::optional<uint64_t>(0);
  CHECK(code_of(store->update("u", zero)) == ErrorCode::invalid_config);

  UpdateVolume bad_labels;
  bad_labels.labels = Labels{{"", "x"}};
  CHECK(code_of(store->update("u", bad_labels)) == ErrorCode::invalid_request);

  UpdateVolume clear;
  clear.quota_bytes = std::optional<uint64_t>();
  after = store->update("u", clear);
  REQUIRE(after.ok());
  CHECK_FALSE(after->quota_bytes.has_value());
}

TEST_CASE("store: the shared quota is one object per volume and follows updates",
          "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  CreateVolume c = dir_volume("q");
  c.quota_bytes = 1000;
  REQUIRE(store->create(c).ok());
  REQUIRE(store->create(dir_volume("free")).ok());
  auto unlimited = store->quota("free");
  REQUIRE(unlimited != nullptr);  // counts use; caps nothing until a quota is set
  CHECK(unlimited->limit() == UINT64_MAX);

  auto first = store->quota("q");
  REQUIRE(first != nullptr);
  CHECK(first->limit() == 1000);
  CHECK_FALSE(first->ready());  // counting is left to its first user
  auto second = store->quota("q");
  CHECK(second.get() == first.get());

  UpdateVolume raise;
  raise.quota_bytes = std::optional<uint64_t>(5000);
  REQUIRE(store->update("q", raise).ok());
  CHECK(first->limit() == 5000);
  CHECK(store->quota("q").get() == first.get());

  // Once counted, the quota's count is what used_bytes reports (no walk).
  first->add_existing(1234);
  auto got = store->get("q");
  REQUIRE(got.ok());
  CHECK(got->used_bytes == 1234);

  UpdateVolume clear;
  clear.quota_bytes = std::optional<uint64_t>();
  REQUIRE(store->update("q", clear).ok());
  CHECK(first->limit() == UINT64_MAX);  // holders stop being capped
  CHECK(store->quota("q").get() == first.get());
  // A quota set again reaches the same holders (a mount made while there was none).
  REQUIRE(store->update("q", raise).ok());
  CHECK(first->limit() == 5000);

  // The store keeps the object while the volume exists: counted once, even with no holder.
  first.reset();
  second.reset();
  auto again = store->quota("q");
  REQUIRE(again != nullptr);
  CHECK(again->limit() == 5000);
  CHECK(again->ready());
  CHECK(again->used() == 1234);
}

TEST_CASE("store: used_bytes counts each inode once and follows no symlink", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto created = store->create(dir_volume("sized"));
  REQUIRE(created.ok());
  const fs::path root = created->path;
  write_file(root / "a", 1000);
  fs::create_directories(root / "sub" / "deeper");
  write_file(root / "sub" / "b", 300);
  write_file(root / "sub" / "deeper" / "c", 20);
  fs::create_hard_link(root / "a", root / "sub" / "a-again");
  fs::create_hard_link(root / "a", root / "a-third");
  write_file(dir.path / "outside", 50000);
  fs::create_symlink(dir.path / "outside", root / "link-to-outside");
  fs::create_directory_symlink(dir.path, root / "link-to-dir");
  write_file(root / "sub" / "locked", 7, 0000);

  auto got = store->get("sized");
  REQUIRE(got.ok());
  CHECK(got->used_bytes == 1000 + 300 + 20 + 7);
  auto listed = store->list();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].used_bytes == got->used_bytes);
}

TEST_CASE("store: a measured used_bytes is reused until contents_changed", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto created = store->create(dir_volume("cached"));
  REQUIRE(created.ok());
  write_file(fs::path(created->path) / "a", 100);
  auto first = store->get("cached");
  REQUIRE(first.ok());
  CHECK(first->used_bytes == 100);
  write_file(fs::path(created->path) / "b", 200);
  auto cached = store->get("cached");
  REQUIRE(cached.ok());
  CHECK(cached->used_bytes == 100);  // the 2 s cache; a mount or the files API says otherwise
  store->contents_changed("cached");
  auto fresh = store->get("cached");
  REQUIRE(fresh.ok());
  CHECK(fresh->used_bytes == 300);
  store->contents_changed("no-such-volume");  // harmless
}

TEST_CASE("store: locate reaches a volume without measuring it", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto created = store->create(dir_volume("where", {{"k", "v"}}));
  REQUIRE(created.ok());
  write_file(fs::path(created->path) / "a", 4000);
  auto found = store->locate("where");
  REQUIRE(found.ok());
  CHECK(found->id == created->id);
  CHECK(found->path == created->path);
  CHECK(found->kind == VolumeKind::dir);
  CHECK(found->used_bytes == 0);
  auto missing = store->locate("nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(code_of(missing) == ErrorCode::volume_not_found);
}

TEST_CASE("store: a disk volume is a sparse ext4 image of whole MiB", "[volumes][store][disk]") {
  TempDir dir;
  auto store = open_store(dir.path);
  CreateVolume c = dir_volume("blk", {{"k", "v"}});
  c.kind = VolumeKind::disk;
  c.size_bytes = (10 << 20) + 1;
  auto created = store->create(c);
  if (!created.ok()) FAIL(created.error().message);
  const VolumeInfo& v = *created;
  CHECK(v.kind == VolumeKind::disk);
  CHECK(v.capacity_bytes == std::optional<uint64_t>(11 << 20));
  CHECK(v.disk_format == "raw");
  CHECK(v.disk_fstype == "ext4");
  CHECK_FALSE(v.quota_bytes.has_value());

  const fs::path image = fs::path(v.path) / "disk.raw";
  REQUIRE(fs::is_regular_file(image));
  CHECK(entries(v.path) == std::vector<std::string>{"disk.raw"});
  struct stat st {};
  REQUIRE(::stat(image.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == (11u << 20));
  CHECK(v.used_bytes == static_cast<uint64_t>(st.st_blocks) * 512);
  CHECK(v.used_bytes > 0);
  CHECK(v.used_bytes < (11u << 20));  // sparse
  // The ext4 superblock starts at 1024; its magic 0xEF53 (little-endian) is at offset 56.
  int fd = ::open(image.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  unsigned char magic[2] = {0, 0};
  CHECK(::pread(fd, magic, 2, 1080) == 2);
  ::close(fd);
  CHECK(magic[0] == 0x53);
  CHECK(magic[1] == 0xEF);

  UpdateVolume quota;
  quota.quota_bytes = std::optional<uint64_t>(1 << 20);
  CHECK(code_of(store->update("blk", quota)) == ErrorCode::invalid_config);
  UpdateVolume no_quota;  // asking a disk for no quota asks for what it has
  no_quota.quota_bytes = std::optional<uint64_t>();
  CHECK(store->update("blk", no_quota).ok());
  CHECK(store->quota("blk") == nullptr);

  REQUIRE(store->remove("blk").ok());
  CHECK_FALSE(fs::exists(v.path));
}

TEST_CASE("store: a disk larger than the host allows in one file fails and leaves nothing",
          "[volumes][store][disk]") {
  TempDir dir;
  auto store = open_store(dir.path);
  CreateVolume c = dir_volume("vast");
  c.kind = VolumeKind::disk;
  c.size_bytes = uint64_t{1} << 62;  // 4 EiB: past every Linux filesystem's file size limit
  auto r = store->create(c);
  CHECK(code_of(r) == ErrorCode::invalid_config);
  CHECK(r.error().message.find("host filesystem") != std::string::npos);
  CHECK(code_of(store->get("vast")) == ErrorCode::volume_not_found);
  CHECK(entries(dir.path / "volumes") == std::vector<std::string>{".staging", ".trash"});
  CHECK(entries(dir.path / "volumes" / ".staging").empty());
  // The name is free again.
  c.size_bytes = 8 << 20;
  CHECK(store->create(c).ok());
}

TEST_CASE("store: fifty threads creating one name give one volume and no leftovers",
          "[volumes][store][concurrency]") {
  TempDir dir;
  auto store = open_store(dir.path);
  constexpr int threads = 50;
  std::atomic<int> ok{0}, exists{0}, other{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      while (!go.load())
        std::this_thread::yield();
      auto r = store->create(dir_volume("contested", {{"thread", std::to_string(i)}}));
      if (r.ok()) {
        ok++;
      } else if (r.error().code == ErrorCode::volume_already_exists) {
        exists++;
      } else {
        other++;
      }
    });
  }
  go = true;
  for (auto& t : pool)
    t.join();
  CHECK(ok == 1);
  CHECK(exists == threads - 1);
  CHECK(other == 0);
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"contested"});
  CHECK(entries(dir.path / "volumes") ==
        std::vector<std::string>{".staging", ".trash", "contested"});
  CHECK(entries(dir.path / "volumes" / ".staging").empty());
  CHECK(entries(dir.path / "volumes" / ".trash").empty());
}

TEST_CASE("store: concurrent creates and removes of many names stay consistent",
          "[volumes][store][concurrency]") {
  TempDir dir;
  auto store = open_store(dir.path);
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string name = "v" + std::to_string(t) + "-" + std::to_string(i);
        if (!store->create(dir_volume(name)).ok()) failures++;
        if (!store->list().ok()) failures++;
        if (i % 2 == 0 && !store->remove(name).ok()) failures++;
      }
    });
  }
  for (auto& t : pool)
    t.join();
  CHECK(failures == 0);
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(all->size() == 40);
  CHECK(entries(dir.path / "volumes").size() == 42);
  CHECK(entries(dir.path / "volumes" / ".trash").empty());
}

TEST_CASE("store: remove deletes the folder and frees the name", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto first = store->create(dir_volume("gone"));
  REQUIRE(first.ok());
  write_file(fs::path(first->path) / "f", 10);
  REQUIRE(store->remove("gone").ok());
  CHECK_FALSE(fs::exists(first->path));
  CHECK(code_of(store->get("gone")) == ErrorCode::volume_not_found);
  CHECK(code_of(store->get_by_id(first->id)) == ErrorCode::volume_not_found);
  CHECK(entries(dir.path / "volumes" / ".trash").empty());
  auto second = store->create(dir_volume("gone"));
  REQUIRE(second.ok());
  CHECK(second->id != first->id);
  CHECK(entries(second->path).empty());
  auto again = store->remove("gone");
  REQUIRE(again.ok());
  auto twice = store->remove("gone");
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().code == ErrorCode::volume_not_found);
}

TEST_CASE("store: remove refuses a volume the in-use check names", "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  REQUIRE(store->create(dir_volume("busy")).ok());
  REQUIRE(store->create(dir_volume("idle")).ok());
  std::string asked;
  store->set_in_use_check([&](std::string_view name) -> std::optional<std::string> {
    asked = std::string(name);
    if (name == "busy") return std::string("mount 3f2a of sandbox sb1");
    return std::nullopt;
  });
  auto r = store->remove("busy");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::volume_in_use);
  CHECK(r.error().message.find("mount 3f2a of sandbox sb1") != std::string::npos);
  CHECK(asked == "busy");
  // Still there and usable.
  CHECK(store->get("busy").ok());
  CHECK(fs::is_directory(dir.path / "volumes" / "busy"));
  CHECK(store->remove("idle").ok());
  store->set_in_use_check(nullptr);
  CHECK(store->remove("busy").ok());
}

TEST_CASE("store: remove deletes trees a guest left read-only (0555 dirs and 0444 files)",
          "[volumes][store]") {
  TempDir dir;
  auto store = open_store(dir.path);
  auto created = store->create(dir_volume("ro"));
  REQUIRE(created.ok());
  const fs::path root = created->path;
  fs::create_directories(root / "a" / "b" / "c");
  write_file(root / "a" / "f", 10, 0444);
  write_file(root / "a" / "b" / "g", 10, 0444);
  write_file(root / "a" / "b" / "c" / "h", 10, 0444);
  fs::create_directories(root / "closed" / "inner");
  write_file(root / "closed" / "inner" / "i", 10, 0444);
  // A deep chain, deeper than one would want to hold fds for.
  fs::path deep = root / "deep";
  fs::create_directory(deep);
  int deep_fd = ::open(deep.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(deep_fd >= 0);
  for (int i = 0; i < 300; ++i) {
    REQUIRE(::mkdirat(deep_fd, "d", 0755) == 0);
    int next = ::openat(deep_fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(next >= 0);
    ::close(deep_fd);
    deep_fd = next;
  }
  ::close(deep_fd);
  for (const char* d : {"a/b/c", "a/b", "a"})
    REQUIRE(::chmod((root / d).c_str(), 0555) == 0);
  REQUIRE(::chmod((root / "closed" / "inner").c_str(), 0000) == 0);
  REQUIRE(::chmod((root / "closed").c_str(), 0500) == 0);

  Outcome<Done> removed = Done{};
  int probe_errno = 0;
  std::thread unprivileged([&] {
    drop_dac_capabilities_of_this_thread();
    // Without raising permissions, the tree could not be deleted: prove the test means it.
    if (::unlink((root / "a" / "f").c_str()) != 0) probe_errno = errno;
    removed = store->remove("ro");
  });
  unprivileged.join();
  CHECK(probe_errno == EACCES);
  if (!removed.ok()) FAIL(removed.error().message);
  CHECK_FALSE(fs::exists(root));
  CHECK(entries(dir.path / "volumes" / ".trash").empty());
  CHECK(store->create(dir_volume("ro")).ok());
}

TEST_CASE("store: open repairs what interrupted creates and removes left",
          "[volumes][store][repair]") {
  TempDir dir;
  const fs::path volumes = dir.path / "volumes";
  std::string good_id;
  {
    auto store = open_store(dir.path);
    auto good = store->create(dir_volume("good", {{"keep", "me"}}));
    REQUIRE(good.ok());
    good_id = good->id;
    write_file(fs::path(good->path) / "data", 42);
  }
  {
    // The leftovers of crashes at each step, made by hand.
    auto catalog = Catalog::open(dir.path / "catalog.db");
    REQUIRE(catalog.ok());
    auto row = [](std::string id, std::string name, VolumeState state) {
      VolumeRow r;
      r.id = std::move(id);
      r.name = std::move(name);
      r.created_at_ms = r.updated_at_ms = 1;
      r.state = state;
      return r;
    };
    // Crashed while building in staging.
    REQUIRE((*catalog)->insert(row("id-staged", "halfmade", VolumeState::creating)).ok());
    fs::create_directories(volumes / ".staging" / "id-staged" / "sub");
    write_file(volumes / ".staging" / "id-staged" / "sub" / "x", 5);
    // Crashed after the rename into place, before `ready`.
    REQUIRE((*catalog)->insert(row("id-placed", "halfplaced", VolumeState::creating)).ok());
    fs::create_directories(volumes / "halfplaced");
    // Crashed after `removing`, before the rename into .trash.
    REQUIRE((*catalog)->insert(row("id-rm1", "gone1", VolumeState::removing)).ok());
    fs::create_directories(volumes / "gone1");
    write_file(volumes / "gone1" / "y", 5);
    // Crashed after the rename into .trash, before the row was deleted.
    REQUIRE((*catalog)->insert(row("id-rm2", "gone2", VolumeState::removing)).ok());
    fs::create_directories(volumes / ".trash" / "id-rm2");
    // Crashed while deleting a trashed folder; a read-only remnant.
    fs::create_directories(volumes / ".trash" / "junk" / "ro");
    write_file(volumes / ".trash" / "junk" / "ro" / "z", 5, 0444);
    REQUIRE(::chmod((volumes / ".trash" / "junk" / "ro").c_str(), 0555) == 0);
    // Folders and files no row owns.
    fs::create_directories(volumes / "orphan" / "d");
    write_file(volumes / "stray.txt", 3);
    fs::create_directories(volumes / ".staging" / "no-row-at-all");
  }
  auto store = open_store(dir.path);
  auto all = store->list();
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"good"});
  auto good = store->get("good");
  REQUIRE(good.ok());
  CHECK(good->id == good_id);
  CHECK(good->labels == Labels{{"keep", "me"}});
  CHECK(good->used_bytes == 42);
  CHECK(entries(volumes) == std::vector<std::string>{".staging", ".trash", "good"});
  CHECK(entries(volumes / ".staging").empty());
  CHECK(entries(volumes / ".trash").empty());
  for (const char* name : {"halfmade", "halfplaced", "gone1", "gone2", "orphan"}) {
    CHECK(code_of(store->get(name)) == ErrorCode::volume_not_found);
    CHECK(store->create(dir_volume(name)).ok());
  }
  store.reset();
  // The catalog agrees: every row is ready and has its folder.
  auto catalog = Catalog::open(dir.path / "catalog.db");
  REQUIRE(catalog.ok());
  auto rows = (*catalog)->list(std::nullopt);
  REQUIRE(rows.ok());
  CHECK(rows->size() == 6);
  for (const VolumeRow& r : *rows) {
    CHECK(r.state == VolumeState::ready);
    CHECK(fs::is_directory(volumes / r.name));
  }
}

TEST_CASE("store: reopening keeps volumes and records the schema version", "[volumes][store]") {
  TempDir dir;
  std::vector<VolumeInfo> before;
  {
    auto store = open_store(dir.path);
    CreateVolume q = dir_volume("with-quota", {{"a", "b"}});
    q.quota_bytes = 12345;
    REQUIRE(store->create(q).ok());
    REQUIRE(store->create(dir_volume("plain")).ok());
    auto all = store->list();
    REQUIRE(all.ok());
    before = *all;
  }
  auto store = open_store(dir.path);
  auto after = store->list();
  REQUIRE(after.ok());
  REQUIRE(after->size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK((*after)[i].id == before[i].id);
    CHECK((*after)[i].name == before[i].name);
    CHECK((*after)[i].quota_bytes == before[i].quota_bytes);
    CHECK((*after)[i].labels == before[i].labels);
    CHECK((*after)[i].created_at_ms == before[i].created_at_ms);
  }
  CHECK(store->data_dir() == fs::absolute(dir.path));
  auto catalog = Catalog::open(dir.path / "catalog.db");
  REQUIRE(catalog.ok());
  auto version = (*catalog)->schema_version();
  REQUIRE(version.ok());
  CHECK(*version == Catalog::migrations().back().version);
}

TEST_CASE("store: one data directory is served by one store at a time", "[volumes][store]") {
  TempDir dir;
  auto first = open_store(dir.path);
  auto second = VolumeStore::open(dir.path);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().message.find("in use") != std::string::npos);
  first.reset();
  CHECK(VolumeStore::open(dir.path).ok());
}
