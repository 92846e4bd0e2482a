// Catalog: the volume rows of a VolumeStore, kept in SQLite; and the small SQLite wrapper under it.
//
// ## The database
// One file (catalog.db) opened with WAL, foreign_keys=ON, synchronous=FULL and a busy timeout.
// synchronous=FULL syncs the log at every commit, so a commit that returned survives a power
// failure too. NORMAL would not: a volume whose `ready` commit was lost would be rolled back by the
// store's repair at open(), deleting its folder with whatever a guest had written there since the
// client was told it exists. Catalog commits are a few per create or remove, so the sync is cheap.
// Its schema is versioned: `schema_version` holds one row per applied migration, and open() runs
// the missing ones in order, each in its own transaction, so a failed migration leaves the
// previous version intact. A catalog written by a newer sandfs (a version this one does not know)
// is refused rather than guessed at.
//
// ## Tables (migration 1)
//   volumes(row_id, id UNIQUE, name UNIQUE, kind, quota_bytes, capacity_bytes, disk_format,
//           disk_fstype, created_at_ms, updated_at_ms, state)
//   volume_labels(volume_row → volumes ON DELETE CASCADE, key, value), one row per label, indexed
//           by (key, value) so a label selector is a query, not a scan of every volume's labels.
//
// ## Threads
// One connection, guarded by a mutex held for the length of one method (each method is one
// transaction and takes microseconds to a few milliseconds). Nothing slow runs under it: the store
// builds, walks and deletes folders outside any Catalog call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "volumes/error.hpp"
#include "volumes/volume.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace sandfs::volumes {

namespace sqlite {

class Database;

// A prepared statement, finalized on destruction. Binding indexes start at 1, columns at 0.
class Statement {
 public:
  Statement() = default;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // A bind that fails (a wrong index: a programming error) is reported by the next step().
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::optional<int64_t> value);
  Statement& bind_null(int index);

  // true: a row is ready to read; false: done.
  Outcome<bool> step();
  // Steps a statement that returns no rows.
  Outcome<Done> run();
  // Rewinds and clears the bindings, ending any read the statement still holds open.
  void reset();

  int64_t column_int64(int column) const;
  std::optional<int64_t> column_optional_int64(int column) const;
  std::string column_text(int column) const;
  bool column_is_null(int column) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_error_ = 0;
};

// Resets a (cached) statement when the scope ends, whatever path leaves it.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& statement_;
};

// One connection. Not thread-safe by itself: its owner serialises calls.
class Database {
 public:
  // Opens or creates `file` and applies the pragmas above.
  static Outcome<std::unique_ptr<Database>> open(const std::filesystem::path& file,
                                                 int busy_timeout_ms = 5000);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Outcome<Statement> prepare(std::string_view sql);
  // Runs one or more statements that return nothing interesting (DDL, pragmas, BEGIN/COMMIT).
  Outcome<Done> exec(const std::string& sql);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t changes() const;
  // The rowid the last INSERT gave.
  int64_t last_insert_rowid() const;

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE … COMMIT; rolled back on destruction unless committed.
class Transaction {
 public:
  static Outcome<Transaction> begin(Database& db);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  Outcome<Done> commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

struct Migration {
  int version;           // > 0, strictly increasing along the list
  std::string_view sql;  // one or more statements
};

// The highest applied version (0 for a new database).
Outcome<int> schema_version(Database& db);
// Applies the migrations above the current version in order, one transaction each; returns the
// version reached. A database at a version above the last migration is an error.
Outcome<int> migrate(Database& db, std::span<const Migration> migrations);

}  // namespace sqlite

enum class VolumeState : uint8_t { creating, ready, removing };
std::string_view to_string(VolumeState state);  // "creating", "ready", "removing"

struct VolumeRow {
  std::string id;
  std::string name;
  VolumeKind kind = VolumeKind::dir;
  std::optional<uint64_t> quota_bytes;
  std::optional<uint64_t> capacity_bytes;
  std::string disk_format;  // "" for dir volumes (stored as NULL)
  std::string disk_fstype;
  Labels labels;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  VolumeState state = VolumeState::creating;
};

// Largest quota or capacity the catalog stores (SQLite integers are signed 64-bit).
inline constexpr uint64_t max_stored_bytes = static_cast<uint64_t>(INT64_MAX);

class Catalog {
 public:
  // Opens or creates the database at `file` and brings its schema up to date.
  static Outcome<std::unique_ptr<Catalog>> open(const std::filesystem::path& file);
  // The catalog's migrations, in order (migration 1 creates the tables above).
  static std::span<const sqlite::Migration> migrations();
  ~Catalog();

  Outcome<int> schema_version();

  // Inserts `row` with its labels. volume_already_exists when a row of any state has the name.
  Outcome<Done> insert(const VolumeRow& row);
  // Rows of any state.
  Outcome<std::optional<VolumeRow>> find_by_name(std::string_view name);
  Outcome<std::optional<VolumeRow>> find_by_id(std::string_view id);
  // Rows in `state` (all states when absent) carrying every label of `selector`, newest first.
  Outcome<std::vector<VolumeRow>> list(std::optional<VolumeState> state,
                                       const Labels& selector = {});
  // Moves the row `id` from `from` to `to`; false (nothing changed) when it is not in `from`.
  Outcome<bool> set_state(std::string_view id, VolumeState from, VolumeState to);

  struct Change {
    std::optional<std::optional<uint64_t>> quota_bytes;  // as UpdateVolume
    std::optional<Labels> labels;                        // replaces all
  };
  // Applies `change` to the ready row `id` and stamps updated_at_ms; the row after the change, or
  // nothing when no ready row has that id.
  Outcome<std::optional<VolumeRow>> update_ready(std::string_view id, const Change& change);
  // Deletes the row `id` and its labels; false when there was none.
  Outcome<bool> erase(std::string_view id);

 private:
  struct Statements;
  Catalog(std::unique_ptr<sqlite::Database> db, std::unique_ptr<Statements> statements);
  Outcome<std::optional<VolumeRow>> find_locked(sqlite::Statement& statement, std::string_view key);
  Outcome<Done> read_labels(VolumeRow& row, int64_t row_id);
  Outcome<Done> write_labels(int64_t row_id, const Labels& labels);

  std::mutex mutex_;
  std::unique_ptr<sqlite::Database> db_;  // declared before the statements: closed after them
  std::unique_ptr<Statements> statements_;
};

// Unix time now, in milliseconds.
int64_t now_ms();

}  // namespace sandfs::volumes
