// Catalog: the SQLite wrapper (pragmas, migrations) and the volume rows.
#include "volumes/catalog.hpp"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

using namespace sandfs::volumes;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sandfs-catalog-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// One value from a query on a separate connection (the test's own view of the file).
std::string query_text(const fs::path& db_file, const std::string& sql) {
  auto db = sqlite::Database::open(db_file);
  REQUIRE(db.ok());
  auto s = (*db)->prepare(sql);
  REQUIRE(s.ok());
  auto row = s->step();
  REQUIRE(row.ok());
  REQUIRE(*row);
  return s->column_text(0);
}

VolumeRow make_row(const std::string& id, const std::string& name, int64_t created,
                   Labels labels = {}) {
  VolumeRow row;
  row.id = id;
  row.name = name;
  row.labels = std::move(labels);
  row.created_at_ms = row.updated_at_ms = created;
  row.state = VolumeState::ready;
  return row;
}

std::vector<std::string> names(const std::vector<VolumeRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    out.push_back(r.name);
  return out;
}

}  // namespace

TEST_CASE("catalog: a new database gets WAL and foreign keys and synchronous FULL",
          "[volumes][catalog]") {
  TempDir dir;
  auto db = sqlite::Database::open(dir.path / "x.db");
  REQUIRE(db.ok());
  auto ask = [&](const char* sql) {
    auto s = (*db)->prepare(sql);
    REQUIRE(s.ok());
    auto row = s->step();
    REQUIRE(row.ok());
    REQUIRE(*row);
    return s->column_text(0);
  };
  CHECK(ask("PRAGMA journal_mode") == "wal");
  CHECK(ask("PRAGMA foreign_keys") == "1");
  CHECK(ask("PRAGMA synchronous") == "2");  // FULL: a returned commit survives a power cut
  CHECK(ask("PRAGMA busy_timeout") == "5000");
}

TEST_CASE("catalog: the schema version is recorded and reopening does not migrate again",
          "[volumes][catalog]") {
  TempDir dir;
  const fs::path file = dir.path / "catalog.db";
  const int latest = Catalog::migrations().back().version;
  {
    auto c = Catalog::open(file);
    REQUIRE(c.ok());
    auto v = (*c)->schema_version();
    REQUIRE(v.ok());
    CHECK(*v == latest);
    REQUIRE((*c)->insert(make_row("id-1", "kept", 1)).ok());
  }
  CHECK(query_text(file, "SELECT COUNT(*) FROM schema_version") ==
        std::to_string(Catalog::migrations().size()));
  auto c = Catalog::open(file);
  REQUIRE(c.ok());
  CHECK(query_text(file, "SELECT COUNT(*) FROM schema_version") ==
        std::to_string(Catalog::migrations().size()));
  auto row = (*c)->find_by_name("kept");
  REQUIRE(row.ok());
  CHECK(row->has_value());
}

TEST_CASE("catalog: migrations run in order once each and a failing one changes nothing",
          "[volumes][catalog]") {
  TempDir dir;
  auto db = sqlite::Database::open(dir.path / "m.db");
  REQUIRE(db.ok());
  const sqlite::Migration first[] = {
      {1, "CREATE TABLE a (x INTEGER)"},
      {2, "INSERT INTO a VALUES (2)"},
  };
  auto v = sqlite::migrate(**db, first);
  REQUIRE(v.ok());
  CHECK(*v == 2);
  // Running the same list again applies nothing (the INSERT would add a second row).
  v = sqlite::migrate(**db, first);
  REQUIRE(v.ok());
  CHECK(*v == 2);
  const sqlite::Migration broken[] = {
      {1, "CREATE TABLE a (x INTEGER)"},
      {2, "INSERT INTO a VALUES (2)"},
      {3, "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1)"},
  };
  v = sqlite::migrate(**db, broken);
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().code == ErrorCode::internal);
  CHECK(v.error().message.find("migration 3") != std::string::npos);
  auto version = sqlite::schema_version(**db);
  REQUIRE(version.ok());
  CHECK(*version == 2);
  // Migration 3's first statement was rolled back with it.
  auto s = (*db)->prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'");
  REQUIRE(s.ok());
  REQUIRE(*s->step());
  CHECK(s->column_int64(0) == 0);
  auto count = (*db)->prepare("SELECT COUNT(*) FROM a");
  REQUIRE(count.ok());
  REQUIRE(*count->step());
  CHECK(count->column_int64(0) == 1);
}

TEST_CASE("catalog: migrations out of order are refused", "[volumes][catalog]") {
  TempDir dir;
  auto db = sqlite::Database::open(dir.path / "m.db");
  REQUIRE(db.ok());
  const sqlite::Migration unordered[] = {
      {2, "CREATE TABLE a (x INTEGER)"},
      {1, "CREATE TABLE b (x INTEGER)"},
  };
  auto v = sqlite::migrate(**db, unordered);
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().message.find("out of order") != std::string::npos);
}

TEST_CASE("catalog: a catalog from a newer sandfs is refused", "[volumes][catalog]") {
  TempDir dir;
  const fs::path file = dir.path / "catalog.db";
  {
    auto c = Catalog::open(file);
    REQUIRE(c.ok());
  }
  {
    auto db = sqlite::Database::open(file);
    REQUIRE(db.ok());
    REQUIRE((*db)->exec("INSERT INTO schema_version VALUES (999, 0)").ok());
  }
  auto c = Catalog::open(file);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("newer sandfs") != std::string::npos);
}

TEST_CASE("catalog: rows round-trip and names are unique in every state", "[volumes][catalog]") {
  TempDir dir;
  auto c = Catalog::open(dir.path / "catalog.db");
  REQUIRE(c.ok());
  Catalog& cat = **c;
  VolumeRow disk = make_row("id-disk", "d", 5, {{"team", "a"}, {"tier", "gold"}});
  disk.kind = VolumeKind::disk;
  disk.capacity_bytes = 64ull << 20;
  disk.disk_format = "raw";
  disk.disk_fstype = "ext4";
  disk.state = VolumeState::creating;
  REQUIRE(cat.insert(disk).ok());

  auto got = cat.find_by_id("id-disk");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  const VolumeRow& r = **got;
  CHECK(r.name == "d");
  CHECK(r.kind == VolumeKind::disk);
  CHECK(r.capacity_bytes == std::optional<uint64_t>(64ull << 20));
  CHECK_FALSE(r.quota_bytes.has_value());
  CHECK(r.disk_format == "raw");
  CHECK(r.disk_fstype == "ext4");
  CHECK(r.labels == Labels{{"team", "a"}, {"tier", "gold"}});
  CHECK(r.created_at_ms == 5);
  CHECK(r.state == VolumeState::creating);

  auto dup = cat.insert(make_row("id-other", "d", 6));
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().code == ErrorCode::volume_already_exists);
  CHECK(dup.error().message.find("being created") != std::string::npos);

  auto moved = cat.set_state("id-disk", VolumeState::ready, VolumeState::removing);
  REQUIRE(moved.ok());
  CHECK_FALSE(*moved);  // not ready: nothing changes
  moved = cat.set_state("id-disk", VolumeState::creating, VolumeState::ready);
  REQUIRE(moved.ok());
  CHECK(*moved);
  auto missing = cat.find_by_name("nope");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());
}

TEST_CASE("catalog: label selectors are answered in SQL and lists are newest first",
          "[volumes][catalog]") {
  TempDir dir;
  auto c = Catalog::open(dir.path / "catalog.db");
  REQUIRE(c.ok());
  Catalog& cat = **c;
  REQUIRE(cat.insert(make_row("1", "old", 100, {{"env", "prod"}, {"team", "a"}})).ok());
  REQUIRE(cat.insert(make_row("2", "mid", 200, {{"env", "prod"}, {"team", "b"}})).ok());
  REQUIRE(cat.insert(make_row("3", "new", 300, {{"env", "dev"}, {"team", "a"}})).ok());
  VolumeRow hidden = make_row("4", "hidden", 400, {{"env", "prod"}});
  hidden.state = VolumeState::creating;
  REQUIRE(cat.insert(hidden).ok());

  auto all = cat.list(VolumeState::ready);
  REQUIRE(all.ok());
  CHECK(names(*all) == std::vector<std::string>{"new", "mid", "old"});
  auto any_state = cat.list(std::nullopt);
  REQUIRE(any_state.ok());
  CHECK(names(*any_state) == std::vector<std::string>{"hidden", "new", "mid", "old"});

  auto prod = cat.list(VolumeState::ready, {{"env", "prod"}});
  REQUIRE(prod.ok());
  CHECK(names(*prod) == std::vector<std::string>{"mid", "old"});
  auto prod_a = cat.list(VolumeState::ready, {{"env", "prod"}, {"team", "a"}});
  REQUIRE(prod_a.ok());
  CHECK(names(*prod_a) == std::vector<std::string>{"old"});
  CHECK((*prod_a)[0].labels == Labels{{"env", "prod"}, {"team", "a"}});
  auto none = cat.list(VolumeState::ready, {{"env", "prod"}, {"team", "c"}});
  REQUIRE(none.ok());
  CHECK(none->empty());
  // A key alone never matches: both key and value must be equal.
  auto value_mismatch = cat.list(VolumeState::ready, {{"env", ""}});
  REQUIRE(value_mismatch.ok());
  CHECK(value_mismatch->empty());
  // Values that look like SQL are data.
  auto odd = cat.list(VolumeState::ready, {{"env", "' OR 1=1 --"}});
  REQUIRE(odd.ok());
  CHECK(odd->empty());
}

TEST_CASE("catalog: update replaces labels and quota and erase drops the labels too",
          "[volumes][catalog]") {
  TempDir dir;
  const fs::path file = dir.path / "catalog.db";
  auto c = Catalog::open(file);
  REQUIRE(c.ok());
  Catalog& cat = **c;
  VolumeRow row = make_row("u1", "upd", 1, {{"a", "1"}, {"b", "2"}});
  row.quota_bytes = 1000;
  REQUIRE(cat.insert(row).ok());

  Catalog::Change change;
  change.labels = Labels{{"c", "3"}};
  auto after = cat.update_ready("u1", change);
  REQUIRE(after.ok());
  REQUIRE(after->has_value());
  CHECK((*after)->labels == Labels{{"c", "3"}});
  CHECK((*after)->quota_bytes == std::optional<uint64_t>(1000));
  CHECK((*after)->updated_at_ms > 1);

  change = {};
  change.quota_bytes = std::optional<uint64_t>();
  after = cat.update_ready("u1", change);
  REQUIRE(after.ok());
  REQUIRE(after->has_value());
  CHECK_FALSE((*after)->quota_bytes.has_value());
  CHECK((*after)->labels == Labels{{"c", "3"}});

  auto absent = cat.update_ready("no-such-id", change);
  REQUIRE(absent.ok());
  CHECK_FALSE(absent->has_value());

  auto erased = cat.erase("u1");
  REQUIRE(erased.ok());
  CHECK(*erased);
  erased = cat.erase("u1");
  REQUIRE(erased.ok());
  CHECK_FALSE(*erased);
  CHECK(query_text(file, "SELECT COUNT(*) FROM volume_labels") == "0");
}
