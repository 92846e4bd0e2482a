#include "volumes/catalog.hpp"

#include <sqlite3.h>

#include <cassert>
#include <chrono>
#include <utility>

namespace sandfs::volumes {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace sqlite {

// ---- Statement ----------------------------------------------------------------------------------

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_error_(std::exchange(other.bind_error_, 0)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_error_ = std::exchange(other.bind_error_, 0);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  // SQLITE_TRANSIENT: SQLite copies the bytes, so `text` need not outlive the statement's use.
  const int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}

Statement& Statement::bind(int index, std::optional<int64_t> value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
  return *this;
}

Outcome<bool> Statement::step() {
  if (bind_error_ != 0) {
    return Error{ErrorCode::internal, std::string("catalog: binding a parameter failed: ") +
                                          sqlite3_errstr(bind_error_)};
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error{ErrorCode::internal, std::string("catalog: ") + sqlite3_errmsg(db_) + " (" +
                                        sqlite3_errstr(rc) + ") in: " + sqlite3_sql(stmt_)};
}

Outcome<Done> Statement::run() {
  Outcome<bool> r = step();
  if (!r) return r.error();
  return Done{};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = 0;
}

int64_t Statement::column_int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::optional<int64_t> Statement::column_optional_int64(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_int64(column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---- Database -----------------------------------------------------------------------------------

Outcome<std::unique_ptr<Database>> Database::open(const std::filesystem::path& file,
                                                  int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(file.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "catalog: cannot open " + file.string() + ": " +
                          (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_close_v2(raw);
    return Error{ErrorCode::internal, std::move(message)};
  }
  std::unique_ptr<Database> db(new Database(raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // journal_mode answers with a row naming the mode it got: anything but "wal" (a filesystem
  // without shared memory, say) is an error rather than a silent fallback.
  Outcome<Statement> wal = db->prepare("PRAGMA journal_mode=WAL");
  if (!wal) return wal.error();
  Outcome<bool> row = wal->step();
  if (!row) return row.error();
  if (!*row || wal->column_text(0) != "wal") {
    return Error{ErrorCode::internal,
                 "catalog: " + file.string() + " cannot use write-ahead logging (journal mode " +
                     (*row ? wal->column_text(0) : std::string("unknown")) + ")"};
  }
  wal->reset();
  if (auto r = db->exec("PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;"); !r) {
    return r.error();
  }
  return db;
}

Database::~Database() {
  sqlite3_close_v2(db_);
}

Outcome<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), 0, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Error{ErrorCode::internal, std::string("catalog: cannot prepare \"") + std::string(sql) +
                                          "\": " + sqlite3_errmsg(db_)};
  }
  return Statement(db_, stmt);
}

Outcome<Done> Database::exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text =
        "catalog: \"" + sql + "\" failed: " + (message != nullptr ? message : sqlite3_errstr(rc));
    sqlite3_free(message);
    return Error{ErrorCode::internal, std::move(text)};
  }
  return Done{};
}

int64_t Database::changes() const {
  return sqlite3_changes64(db_);
}

int64_t Database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

// ---- Transaction --------------------------------------------------------------------------------

Outcome<Transaction> Transaction::begin(Database& db) {
  // IMMEDIATE takes the write lock up front, so a transaction that reads then writes never fails
  // half-way with SQLITE_BUSY when another process holds the database.
  if (auto r = db.exec("BEGIN IMMEDIATE"); !r) return r.error();
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_ != nullptr) (void)db_->exec("ROLLBACK");
}

Outcome<Done> Transaction::commit() {
  assert(db_ != nullptr);
  Outcome<Done> r = db_->exec("COMMIT");
  if (r) db_ = nullptr;  // on failure the destructor rolls back
  return r;
}

// ---- Migrations ---------------------------------------------------------------------------------

namespace {

Outcome<Done> ensure_version_table(Database& db) {
  return db.exec(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      " version INTEGER PRIMARY KEY,"
      " applied_at_ms INTEGER NOT NULL)");
}

}  // namespace

Outcome<int> schema_version(Database& db) {
  if (auto r = ensure_version_table(db); !r) return r.error();
  Outcome<Statement> s = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!s) return s.error();
  Outcome<bool> row = s->step();
  if (!row) return row.error();
  return static_cast<int>(s->column_int64(0));
}

Outcome<int> migrate(Database& db, std::span<const Migration> migrations) {
  Outcome<int> current = schema_version(db);
  if (!current) return current.error();
  const int known = migrations.empty() ? 0 : migrations.back().version;
  if (*current > known) {
    return Error{ErrorCode::internal,
                 "catalog: its schema is version " + std::to_string(*current) +
                     ", written by a newer sandfs; this one knows versions up to " +
                     std::to_string(known) + ". Run the newer sandfs or restore a backup."};
  }
  int version = *current;
  int previous = 0;
  for (const Migration& m : migrations) {
    if (m.version <= previous) {
      return Error{ErrorCode::internal, "catalog: migration " + std::to_string(m.version) +
                                            " is out of order (after " + std::to_string(previous) +
                                            ")"};
    }
    previous = m.version;
    if (m.version <= version) continue;
    Outcome<Transaction> tx = Transaction::begin(db);
    if (!tx) return tx.error();
    if (auto r = db.exec(std::string(m.sql)); !r) {
      return Error{ErrorCode::internal, "catalog: migration " + std::to_string(m.version) +
                                            " failed: " + r.error().message};
    }
    Outcome<Statement> record =
        db.prepare("INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, ?2)");
    if (!record) return record.error();
    record->bind(1, int64_t{m.version}).bind(2, now_ms());
    if (auto r = record->run(); !r) return r.error();
    if (auto r = tx->commit(); !r) return r.error();
    version = m.version;
  }
  return version;
}

}  // namespace sqlite

// ---- Catalog ------------------------------------------------------------------------------------

std::string_view to_string(VolumeState state) {
  switch (state) {
    case VolumeState::creating:
      return "creating";
    case VolumeState::ready:
      return "ready";
    case VolumeState::removing:
      return "removing";
  }
  return "creating";
}

namespace {

using sqlite::ResetOnExit;
using sqlite::Statement;

constexpr sqlite::Migration catalog_migrations[] = {
    {1,
     "CREATE TABLE volumes ("
     " row_id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " id TEXT NOT NULL UNIQUE,"
     " name TEXT NOT NULL UNIQUE,"
     " kind TEXT NOT NULL CHECK (kind IN ('dir', 'disk')),"
     " quota_bytes INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 1),"
     " capacity_bytes INTEGER CHECK (capacity_bytes IS NULL OR capacity_bytes >= 1),"
     " disk_format TEXT,"
     " disk_fstype TEXT,"
     " created_at_ms INTEGER NOT NULL,"
     " updated_at_ms INTEGER NOT NULL,"
     " state TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'removing')));"
     "CREATE INDEX volumes_by_state_age ON volumes (state, created_at_ms);"
     "CREATE TABLE volume_labels ("
     " volume_row INTEGER NOT NULL REFERENCES volumes (row_id) ON DELETE CASCADE,"
     " key TEXT NOT NULL,"
     " value TEXT NOT NULL,"
     " PRIMARY KEY (volume_row, key)) WITHOUT ROWID;"
     "CREATE INDEX volume_labels_by_pair ON volume_labels (key, value);"},
};

constexpr std::string_view row_columns =
    "SELECT row_id, id, name, kind, quota_bytes, capacity_bytes, disk_format, disk_fstype,"
    " created_at_ms, updated_at_ms, state FROM volumes";

std::optional<int64_t> stored(std::optional<uint64_t> bytes) {
  if (!bytes) return std::nullopt;
  return static_cast<int64_t>(*bytes);
}

std::optional<uint64_t> loaded(std::optional<int64_t> bytes) {
  if (!bytes || *bytes < 0) return std::nullopt;
  return static_cast<uint64_t>(*bytes);
}

VolumeState state_from(std::string_view text) {
  if (text == "ready") return VolumeState::ready;
  if (text == "removing") return VolumeState::removing;
  return VolumeState::creating;
}

// Reads the columns of row_columns; returns the row_id.
int64_t read_row(const Statement& s, VolumeRow& row) {
  row.id = s.column_text(1);
  row.name = s.column_text(2);
  row.kind = s.column_text(3) == "disk" ? VolumeKind::disk : VolumeKind::dir;
  row.quota_bytes = loaded(s.column_optional_int64(4));
  row.capacity_bytes = loaded(s.column_optional_int64(5));
  row.disk_format = s.column_text(6);
  row.disk_fstype = s.column_text(7);
  row.created_at_ms = s.column_int64(8);
  row.updated_at_ms = s.column_int64(9);
  row.state = state_from(s.column_text(10));
  return s.column_int64(0);
}

}  // namespace

struct Catalog::Statements {
  Statement find_by_name;
  Statement find_by_id;
  Statement insert;
  Statement insert_label;
  Statement delete_labels;
  Statement labels_of;
  Statement set_state;
  Statement set_quota;
  Statement touch;
  Statement erase;
};

std::span<const sqlite::Migration> Catalog::migrations() {
  return catalog_migrations;
}

Outcome<std::unique_ptr<Catalog>> Catalog::open(const std::filesystem::path& file) {
  Outcome<std::unique_ptr<sqlite::Database>> db = sqlite::Database::open(file);
  if (!db) return db.error();
  if (auto r = sqlite::migrate(**db, migrations()); !r) return r.error();

  auto statements = std::make_unique<Statements>();
  struct Sql {
    Statement* target;
    std::string sql;
  };
  const Sql all[] = {
      {&statements->find_by_name, std::string(row_columns) + " WHERE name = ?1"},
      {&statements->find_by_id, std::string(row_columns) + " WHERE id = ?1"},
      {&statements->insert,
       "INSERT INTO volumes (id, name, kind, quota_bytes, capacity_bytes, disk_format,"
       " disk_fstype, created_at_ms, updated_at_ms, state)"
       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"},
      {&statements->insert_label,
       "INSERT INTO volume_labels (volume_row, key, value) VALUES (?1, ?2, ?3)"},
      {&statements->delete_labels, "DELETE FROM volume_labels WHERE volume_row = ?1"},
      {&statements->labels_of,
       "SELECT key, value FROM volume_labels WHERE volume_row = ?1 ORDER BY key"},
      {&statements->set_state,
       "UPDATE volumes SET state = ?3, updated_at_ms = ?4 WHERE id = ?1 AND state = ?2"},
      {&statements->set_quota, "UPDATE volumes SET quota_bytes = ?2 WHERE row_id = ?1"},
      {&statements->touch, "UPDATE volumes SET updated_at_ms = ?2 WHERE row_id = ?1"},
      {&statements->erase, "DELETE FROM volumes WHERE id = ?1"},
  };
  for (const Sql& s : all) {
    Outcome<Statement> prepared = (*db)->prepare(s.sql);
    if (!prepared) return prepared.error();
    *s.target = std::move(*prepared);
  }
  return std::unique_ptr<Catalog>(new Catalog(std::move(*db), std::move(statements)));
}

Catalog::Catalog(std::unique_ptr<sqlite::Database> db, std::unique_ptr<Statements> statements)
    : db_(std::move(db)), statements_(std::move(statements)) {}

Catalog::~Catalog() = default;

Outcome<int> Catalog::schema_version() {
  std::lock_guard lock(mutex_);
  return sqlite::schema_version(*db_);
}

Outcome<Done> Catalog::read_labels(VolumeRow& row, int64_t row_id) {
  Statement& s = statements_->labels_of;
  ResetOnExit reset(s);
  s.bind(1, row_id);
  row.labels.clear();
  for (;;) {
    Outcome<bool> more = s.step();
    if (!more) return more.error();
    if (!*more) return Done{};
    row.labels.emplace(s.column_text(0), s.column_text(1));
  }
}

Outcome<Done> Catalog::write_labels(int64_t row_id, const Labels& labels) {
  Statement& s = statements_->insert_label;
  for (const auto& [key, value] : labels) {
    ResetOnExit reset(s);
    s.bind(1, row_id).bind(2, key).bind(3, value);
    if (auto r = s.run(); !r) return r.error();
  }
  return Done{};
}

Outcome<std::optional<VolumeRow>> Catalog::find_locked(Statement& s, std::string_view key) {
  int64_t row_id = 0;
  VolumeRow row;
  {
    ResetOnExit reset(s);
    s.bind(1, key);
    Outcome<bool> found = s.step();
    if (!found) return found.error();
    if (!*found) return std::optional<VolumeRow>();
    row_id = read_row(s, row);
  }
  if (auto r = read_labels(row, row_id); !r) return r.error();
  return std::optional<VolumeRow>(std::move(row));
}

Outcome<std::optional<VolumeRow>> Catalog::find_by_name(std::string_view name) {
  std::lock_guard lock(mutex_);
  return find_locked(statements_->find_by_name, name);
}

Outcome<std::optional<VolumeRow>> Catalog::find_by_id(std::string_view id) {
  std::lock_guard lock(mutex_);
  return find_locked(statements_->find_by_id, id);
}

Outcome<Done> Catalog::insert(const VolumeRow& row) {
  std::lock_guard lock(mutex_);
  Outcome<sqlite::Transaction> tx = sqlite::Transaction::begin(*db_);
  if (!tx) return tx.error();
  // Checked inside the write transaction (and under the mutex), so of many inserts of one name
  // exactly one finds it free; the UNIQUE constraint stays as the last line of defence.
  Outcome<std::optional<VolumeRow>> existing = find_locked(statements_->find_by_name, row.name);
  if (!existing) return existing.error();
  if (*existing) {
    std::string message = "a volume named \"" + row.name + "\" already exists";
    if ((*existing)->state == VolumeState::creating) message += " (it is being created)";
    if ((*existing)->state == VolumeState::removing) {
      message += " (it is being removed; retry once the removal has finished)";
    }
    return Error{ErrorCode::volume_already_exists, std::move(message)};
  }
  Statement& s = statements_->insert;
  {
    ResetOnExit reset(s);
    s.bind(1, row.id).bind(2, row.name).bind(3, to_string(row.kind));
    s.bind(4, stored(row.quota_bytes)).bind(5, stored(row.capacity_bytes));
    if (row.disk_format.empty()) {
      s.bind_null(6);
    } else {
      s.bind(6, row.disk_format);
    }
    if (row.disk_fstype.empty()) {
      s.bind_null(7);
    } else {
      s.bind(7, row.disk_fstype);
    }
    s.bind(8, row.created_at_ms).bind(9, row.updated_at_ms).bind(10, to_string(row.state));
    if (auto r = s.run(); !r) return r.error();
  }
  if (auto r = write_labels(db_->last_insert_rowid(), row.labels); !r) return r.error();
  return tx->commit();
}

Outcome<std::vector<VolumeRow>> Catalog::list(std::optional<VolumeState> state,
                                              const Labels& selector) {
  // One clause per selector label, each an index lookup on (key, value); the text only depends on
  // how many labels there are, and every value is a bound parameter.
  std::string sql(row_columns);
  sql += " WHERE 1";
  int next = 1;
  if (state) sql += " AND state = ?" + std::to_string(next++);
  for (size_t i = 0; i < selector.size(); ++i) {
    sql += " AND row_id IN (SELECT volume_row FROM volume_labels WHERE key = ?" +
           std::to_string(next) + " AND value = ?" + std::to_string(next + 1) + ")";
    next += 2;
  }
  sql += " ORDER BY created_at_ms DESC, row_id DESC";

  std::lock_guard lock(mutex_);
  Outcome<Statement> s = db_->prepare(sql);
  if (!s) return s.error();
  int index = 1;
  if (state) s->bind(index++, to_string(*state));
  for (const auto& [key, value] : selector) {
    s->bind(index++, key);
    s->bind(index++, value);
  }
  std::vector<std::pair<int64_t, VolumeRow>> rows;
  for (;;) {
    Outcome<bool> more = s->step();
    if (!more) return more.error();
    if (!*more) break;
    VolumeRow row;
    const int64_t row_id = read_row(*s, row);
    rows.emplace_back(row_id, std::move(row));
  }
  s->reset();
  std::vector<VolumeRow> out;
  out.reserve(rows.size());
  for (auto& [row_id, row] : rows) {
    if (auto r = read_labels(row, row_id); !r) return r.error();
    out.push_back(std::move(row));
  }
  return out;
}

Outcome<bool> Catalog::set_state(std::string_view id, VolumeState from, VolumeState to) {
  std::lock_guard lock(mutex_);
  Statement& s = statements_->set_state;
  ResetOnExit reset(s);
  s.bind(1, id).bind(2, to_string(from)).bind(3, to_string(to)).bind(4, now_ms());
  // A single statement is its own transaction.
  if (auto r = s.run(); !r) return r.error();
  return db_->changes() == 1;
}

Outcome<std::optional<VolumeRow>> Catalog::update_ready(std::string_view id, const Change& change) {
  std::lock_guard lock(mutex_);
  Outcome<sqlite::Transaction> tx = sqlite::Transaction::begin(*db_);
  if (!tx) return tx.error();
  int64_t row_id = 0;
  {
    Statement& s = statements_->find_by_id;
    ResetOnExit reset(s);
    s.bind(1, id);
    Outcome<bool> found = s.step();
    if (!found) return found.error();
    VolumeRow probe;
    if (*found) row_id = read_row(s, probe);
    if (!*found || probe.state != VolumeState::ready) return std::optional<VolumeRow>();
  }
  if (change.quota_bytes) {
    Statement& s = statements_->set_quota;
    ResetOnExit reset(s);
    s.bind(1, row_id).bind(2, stored(*change.quota_bytes));
    if (auto r = s.run(); !r) return r.error();
  }
  if (change.labels) {
    {
      Statement& s = statements_->delete_labels;
      ResetOnExit reset(s);
      s.bind(1, row_id);
      if (auto r = s.run(); !r) return r.error();
    }
    if (auto r = write_labels(row_id, *change.labels); !r) return r.error();
  }
  {
    Statement& s = statements_->touch;
    ResetOnExit reset(s);
    s.bind(1, row_id).bind(2, now_ms());
    if (auto r = s.run(); !r) return r.error();
  }
  Outcome<std::optional<VolumeRow>> after = find_locked(statements_->find_by_id, id);
  if (!after) return after.error();
  if (auto r = tx->commit(); !r) return r.error();
  return after;
}

Outcome<bool> Catalog::erase(std::string_view id) {
  std::lock_guard lock(mutex_);
  // The labels go with the row (ON DELETE CASCADE, foreign_keys=ON): one statement, one
  // transaction.
  Statement& s = statements_->erase;
  ResetOnExit reset(s);
  s.bind(1, id);
  if (auto r = s.run(); !r) return r.error();
  return db_->changes() == 1;
}

}  // namespace sandfs::volumes
