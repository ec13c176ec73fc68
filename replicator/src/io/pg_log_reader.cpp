// NOTES: how the reader finds commit order (docs/design.md §1).
//
// A change number (seq) is taken when a row is written, so it does not tell commit order:
// transaction A may take 10, B take 11 and commit first. The reader therefore never asks "what
// is after seq N". Instead ticks record pg_current_snapshot(); window t holds exactly the
// transactions visible in tick t's snapshot and not in tick t-1's. A transaction held open while
// later ones commit simply lands in the window of the tick after its commit; nothing is skipped.
//
// Inside a window, transactions are ordered by their last change number. If T2 wrote a row after
// T1 committed (row lock, unique or FK wait), T2's change number for it is larger than all of
// T1's, so ordering by max(seq) keeps per-row order. Position (t, max_seq) is therefore a total,
// commit-consistent order, and resuming "after (t, s)" means: rest of window t, then t+1, ...
//
// Memory: the window is read through a WITH HOLD cursor (materialised by PostgreSQL, not here, and
// holding no snapshot while we stream it), FETCHed in bounded slices, and grouped into chunks of
// at most max_changes, so one 200,000-row transaction never sits in memory whole.
#include <pqxx/pqxx>

#include <mpf/replicator/pg_log_reader.hpp>

#include "pg_text.hpp"

namespace mpf::replicator {
namespace {

constexpr const char* kCursor = "mpf_window";
constexpr const char* kTickAndRead = "mpf_tick_and_read";
constexpr const char* kCounter = "mpf_change_counter";

Status db_error(const std::string& what, const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) {
    return unavailable("lost the database connection while " + what + ": " + e.what());
  }
  return unavailable("database error while " + what + ": " + e.what());
}

// "WITH win AS (...)": the snapshots of ticks t-1 and t, which bound window t; the window's
// rows are those whose transaction is visible in win.cur and not in win.prev.
std::string window_cte(int64_t t) {
  return "WITH win AS (SELECT (SELECT snapshot FROM mpfailover.tick WHERE tick_id = " +
         std::to_string(t - 1) +
         ") AS prev, (SELECT snapshot FROM mpfailover.tick WHERE tick_id = " + std::to_string(t) +
         ") AS cur)";
}

// The rows of a window: `win` (prev, cur snapshots) must be in scope. One pass over the window's
// rows, found through the txid index (catalog 0006) by the range [xmin(prev), xmax(cur)): each
// transaction's position (its last change number) and size come from window aggregates over the
// rows of the window. (A join back to the log once chose a nested loop and took minutes on a
// 100,000-transaction backlog.)
std::string window_rows(const std::string& resume_seq) {
  return "SELECT * FROM ("
         // The conflict timestamp is the source transaction's commit time (docs/design.md §4), the
         // same value PostgreSQL keeps for the rows it wrote, so both nodes compare equal
         // numbers; the capture-time clock stands in once commit data is truncated.
         "  SELECT max(l.seq) OVER w AS pos, count(*) OVER w AS n, l.txid::text, l.seq,"
         "         l.table_id, l.op::text,"
         "         coalesce((extract(epoch FROM pg_xact_commit_timestamp("
         "           (l.txid::text::numeric % 4294967296)::text::xid)) * 1000000)::bigint,"
         "           l.hlc), l.origin, l.key, l.image"
         "  FROM mpfailover.change_log l, win"
         "  WHERE l.txid >= pg_snapshot_xmin(win.prev) AND l.txid < pg_snapshot_xmax(win.cur)"
         "    AND NOT pg_visible_in_snapshot(l.txid, win.prev)"
         "    AND pg_visible_in_snapshot(l.txid, win.cur)"
         "  WINDOW w AS (PARTITION BY l.txid)"
         ") x WHERE x.pos > " +
         resume_seq;
}

// At the head of the log, closing window t and reading it is one statement and one round trip:
// the tick records the statement's own snapshot (pg_current_snapshot() is the snapshot the
// statement scans the log with), so the rows returned are exactly window t's, the same rows
// window_query(t) reads later. Column 0 is the newest tick afterwards (the one made, or the
// newest existing when nothing new has committed), column 1 whether this statement made it;
// the window's columns follow, all NULL in the single row returned when no tick was made. At most
// $2 window rows; $1 is the resume change number. Prepared once per connection: it runs at every
// poll while a transaction is running, and planning it cost about as much as running it on a small
// log.
std::string tick_and_read_query() {
  return "WITH last AS (SELECT tick_id, snapshot FROM mpfailover.tick "
         "              ORDER BY tick_id DESC LIMIT 1), "
         // Two tickers at once (two daemons on one database, a misconfiguration) cannot record
         // snapshots out of order: the second insert of the same tick_id fails on the key.
         "made AS (INSERT INTO mpfailover.tick (tick_id, snapshot) "
         "  SELECT last.tick_id + 1, pg_current_snapshot() FROM last "
         "  WHERE EXISTS (SELECT 1 FROM mpfailover.change_log l "
         "    WHERE l.txid >= pg_snapshot_xmin(last.snapshot) "
         "    AND NOT pg_visible_in_snapshot(l.txid, last.snapshot)) "
         "  RETURNING tick_id, snapshot), "
         "win AS (SELECT last.snapshot AS prev, made.snapshot AS cur FROM last, made) "
         "SELECT coalesce((SELECT tick_id FROM made), (SELECT tick_id FROM last)), "
         "       EXISTS (SELECT 1 FROM made), r.* "
         "FROM (SELECT 1) one LEFT JOIN (" +
         window_rows("$1::bigint") + " ORDER BY x.pos, x.seq LIMIT $2::bigint) r ON true " +
         "ORDER BY r.pos, r.seq";
}

std::unique_ptr<pqxx::connection> open_connection(const std::string& conninfo,
                                                  const PgLogReader::Options& options) {
  auto conn = std::make_unique<pqxx::connection>(conninfo);
  // Values leave in UTF8 whatever the database's encoding (PROTOCOL.md, "Encoding").
  conn->set_client_encoding("UTF8");
  pqxx::nontransaction tx(*conn);
  // Ticks, acks and trims are writes, also on a standby whose application login is read-only.
  tx.exec("SET default_transaction_read_only = off");
  if (!options.synchronous_commit) tx.exec("SET synchronous_commit = off");
  return conn;
}

// REQUIRES: the catalog exists.
void prepare_statements(pqxx::connection& conn) {
  conn.prepare(kTickAndRead, tick_and_read_query());
  conn.prepare(kCounter,
               "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM mpfailover.change_seq");
}

Op parse_op(const std::string& s) {
  MPF_ASSERT(s.size() == 1 && (s[0] == 'I' || s[0] == 'U' || s[0] == 'D'),
             "unknown op in change_log: " + s);
  return static_cast<Op>(s[0]);
}

}  // namespace

PgLogReader::PgLogReader(std::string conninfo, std::unique_ptr<pqxx::connection> conn,
                         Options options)
    : conninfo_(std::move(conninfo)), conn_(std::move(conn)), options_(options), assembler_(1) {}

PgLogReader::~PgLogReader() = default;

Result<std::unique_ptr<PgLogReader>> PgLogReader::open(const std::string& conninfo,
                                                       Options options) {
  MPF_ASSERT(options.fetch_rows > 0, "fetch_rows must be positive");
  try {
    auto conn = open_connection(conninfo, options);
    {
      pqxx::nontransaction tx(*conn);
      auto ok = tx.exec("SELECT to_regclass('mpfailover.change_log') IS NOT NULL");
      if (!ok[0][0].as<bool>()) {
        return failed_precondition(
            "database has no mpfailover catalog\nhint: run mpfailover init-db");
      }
    }
    prepare_statements(*conn);
    return std::unique_ptr<PgLogReader>(new PgLogReader(conninfo, std::move(conn), options));
  } catch (const std::exception& e) {
    return db_error("opening the log reader", e);
  }
}

void PgLogReader::close_window() {
  if (!cursor_open_) return;
  cursor_open_ = false;
  try {
    pqxx::nontransaction tx(*conn_);
    tx.exec(std::string("CLOSE ") + kCursor);
  } catch (const std::exception&) {
    broken_ = true;  // the next seek() reconnects
  }
}

Status PgLogReader::seek(Position after) {
  close_window();
  assembler_.reset();
  small_open_ = false;
  small_window_ = pqxx::result();
  start_checked_ = false;
  backlog_ahead_ = false;
  if (broken_ || !conn_->is_open()) {
    try {
      conn_ = open_connection(conninfo_, options_);
      prepare_statements(*conn_);
      broken_ = false;
    } catch (const std::exception& e) {
      return db_error("reconnecting the log reader", e);
    }
  }
  if (after.tick == 0) {
    next_window_ = 1;
    resume_seq_ = 0;
  } else {
    next_window_ = after.tick;
    resume_seq_ = after.seq;
  }
  return Status::ok();
}

Result<int64_t> PgLogReader::tick() {
  try {
    // One statement, one round trip. Two tickers at once (two daemons on one database, a
    // misconfiguration) cannot record snapshots out of order: the second insert of the same
    // tick_id fails on the primary key.
    pqxx::nontransaction q(*conn_);
    auto r = q.exec(
        "WITH last AS (SELECT tick_id, snapshot FROM mpfailover.tick "
        "              ORDER BY tick_id DESC LIMIT 1), "
        "made AS (INSERT INTO mpfailover.tick (tick_id, snapshot) "
        "  SELECT last.tick_id + 1, pg_current_snapshot() FROM last "
        "  WHERE EXISTS (SELECT 1 FROM mpfailover.change_log l "
        "    WHERE l.txid >= pg_snapshot_xmin(last.snapshot) "
        "    AND NOT pg_visible_in_snapshot(l.txid, last.snapshot)) "
        "  RETURNING tick_id) "
        "SELECT coalesce((SELECT tick_id FROM made), (SELECT tick_id FROM last))");
    newest_tick_ = r[0][0].as<int64_t>();
    return newest_tick_;
  } catch (const std::exception& e) {
    broken_ = true;
    return db_error("recording a tick", e);
  }
}

std::string PgLogReader::window_query(int64_t t) const {
  return window_cte(t) + " " + window_rows(std::to_string(resume_seq_)) + " ORDER BY x.pos, x.seq";
}

Result<bool> PgLogReader::open_window() {
  const int64_t t = next_window_;
  try {
    // After a seek, the first window read at the head may hold an outage's backlog. Reading a
    // large window first as a small one (one statement, at most fetch_rows + 1 rows) ran the
    // whole window query once for nothing before the cursor ran it again: ~0.6 s of a
    // 100,000-transaction drain's start-up. So when the change counter is more than a fetch
    // ahead of the resume point, the first window closed at the head goes straight to the cursor.
    if (!start_checked_) {
      // After a seek: the window's starting tick must still exist (not trimmed away).
      pqxx::nontransaction q(*conn_);
      auto ticks = q.exec("SELECT count(*) FILTER (WHERE tick_id = " + std::to_string(t - 1) +
                          "), coalesce(max(tick_id), 0), (SELECT CASE WHEN is_called THEN "
                          "last_value ELSE 0 END FROM mpfailover.change_seq) "
                          "FROM mpfailover.tick WHERE tick_id >= " +
                          std::to_string(t - 1));
      if (ticks[0][0].as<int64_t>() == 0) {
        return failed_precondition("log position " + std::to_string(t) + "/" +
                                   std::to_string(resume_seq_) +
                                   " is no longer in the change log (trimmed)");
      }
      newest_tick_ = std::max(newest_tick_, ticks[0][1].as<int64_t>());
      backlog_ahead_ =
          ticks[0][2].as<int64_t>() - resume_seq_ > static_cast<int64_t>(options_.fetch_rows);
      start_checked_ = true;
    }
    // Most windows are small: read one whole in a single round trip, and fall back to a cursor
    // only when it holds more rows than a fetch.
    bool large = false;
    if (newest_tick_ == t - 1 && backlog_ahead_) {
      backlog_ahead_ = false;
      auto newest = tick();
      if (!newest) return newest.status();
      if (*newest < t) return false;
      large = true;
    } else if (newest_tick_ == t - 1) {
      // At the head: close window t and read it in the same statement.
      pqxx::nontransaction q(*conn_);
      auto rows =
          q.exec_prepared(kTickAndRead, resume_seq_, static_cast<int64_t>(options_.fetch_rows + 1));
      newest_tick_ = rows[0][0].as<int64_t>();
      const bool made = rows[0][1].as<bool>();
      if (newest_tick_ < t) return false;  // nothing new has committed
      if (made && newest_tick_ == t && rows.size() <= options_.fetch_rows) {
        // (All NULL past column 1 when no row is past resume_seq_: the window is empty then.)
        if (!rows[0][2].is_null()) small_window_ = std::move(rows);
        small_offset_ = 2;
        small_open_ = true;
        return true;
      }
      // Another ticker closed window t (or more) first: read it below. Or window t is large:
      // read it through the cursor.
      large = made && newest_tick_ == t;
    } else if (newest_tick_ < t) {
      auto newest = tick();
      if (!newest) return newest.status();
      if (*newest < t) return false;
    }
    if (!large) {
      pqxx::nontransaction q(*conn_);
      auto rows = q.exec(window_query(t) + " LIMIT " + std::to_string(options_.fetch_rows + 1));
      if (rows.size() <= options_.fetch_rows) {
        small_window_ = std::move(rows);
        small_offset_ = 0;
        small_open_ = true;
        return true;
      }
    }
    // A large window: a WITH HOLD cursor, materialised by PostgreSQL and holding no snapshot
    // while it is streamed.
    pqxx::work tx(*conn_);
    tx.exec(std::string("DECLARE ") + kCursor + " NO SCROLL CURSOR WITH HOLD FOR " +
            window_query(t));
    tx.commit();
    cursor_open_ = true;
    return true;
  } catch (const std::exception& e) {
    broken_ = true;
    return db_error("opening log window " + std::to_string(t), e);
  }
}

Result<ChangeBatch> PgLogReader::next_batch(size_t max_changes) {
  MPF_ASSERT(max_changes > 0, "max_changes must be positive");
  if (broken_) return unavailable("log reader needs seek() after an error");
  assembler_.set_max_chunk(max_changes);
  ChangeBatch batch;
  size_t n = 0;
  while (true) {
    while (assembler_.has_ready()) {
      const size_t size = assembler_.front().changes.size();
      if (!batch.empty() && n + size > max_changes) return batch;
      n += size;
      batch.chunks.push_back(assembler_.pop());
      if (n >= max_changes) return batch;
    }
    if (!cursor_open_ && !small_open_) {
      // Window next_window_ has not been closed yet: send what we have rather than spend a round
      // trip asking whether it can be (the caller polls again soon enough).
      if (!batch.empty() && newest_tick_ < next_window_) return batch;
      auto opened = open_window();
      if (!opened) return opened.status();
      if (!*opened) return batch;
    }
    try {
      if (small_open_) {
        // The whole window came in one round trip.
        small_open_ = false;
        feed(small_window_, small_offset_);
        small_window_ = pqxx::result();
        MPF_ASSERT(!assembler_.mid_transaction(), "window ended inside a transaction");
        ++next_window_;
        resume_seq_ = 0;
        continue;
      }
      pqxx::nontransaction tx(*conn_);
      auto rows =
          tx.exec("FETCH FORWARD " + std::to_string(options_.fetch_rows) + " FROM " + kCursor);
      if (rows.empty()) {
        MPF_ASSERT(!assembler_.mid_transaction(), "window ended inside a transaction");
        tx.exec(std::string("CLOSE ") + kCursor);
        cursor_open_ = false;
        ++next_window_;
        resume_seq_ = 0;
        continue;
      }
      feed(rows, 0);
    } catch (const std::exception& e) {
      broken_ = true;
      cursor_open_ = false;
      small_open_ = false;
      return db_error("reading log window " + std::to_string(next_window_), e);
    }
  }
}

void PgLogReader::feed(const pqxx::result& rows, int column) {
  for (const auto& r : rows) {
    RowOfTx row;
    row.position = Position{next_window_, r[column].as<int64_t>()};
    row.total_changes = r[column + 1].as<int64_t>();
    row.txid = r[column + 2].as<uint64_t>();
    row.change.seq = r[column + 3].as<int64_t>();
    row.change.table_id = r[column + 4].as<int32_t>();
    row.change.op = parse_op(r[column + 5].as<std::string>());
    row.change.hlc = r[column + 6].as<int64_t>();
    row.origin = r[column + 7].as<std::string>();
    row.change.key = pg::parse_array(r[column + 8]);
    row.change.image = pg::parse_array(r[column + 9]);
    assembler_.add(std::move(row));
  }
}

Result<int64_t> PgLogReader::trim(Position acked, Duration retention) {
  if (acked.tick < 1) return int64_t{0};
  try {
    pqxx::work tx(*conn_);
    if (retention > Duration::zero()) {
      // Keep acknowledged windows younger than the retention: trim only up to the newest
      // window whose tick is old enough.
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(retention).count();
      auto old = tx.exec(
          "SELECT coalesce(max(tick_id), 0) FROM mpfailover.tick "
          "WHERE created_at <= now() - interval '1 millisecond' * " +
          std::to_string(ms));
      const int64_t cap = old[0][0].as<int64_t>();
      if (cap < acked.tick) acked = Position{cap + 1, 0};
      if (acked.tick < 2) return int64_t{0};
    }
    const std::string prev = std::to_string(acked.tick - 1);
    // Every window before the acknowledged one...
    auto before = tx.exec(
        "DELETE FROM mpfailover.change_log l USING mpfailover.tick k "
        "WHERE k.tick_id = " +
        prev +
        " AND l.txid < pg_snapshot_xmax(k.snapshot)"
        " AND pg_visible_in_snapshot(l.txid, k.snapshot)");
    // ...and, in it, the transactions up to the acknowledged one, so the log holds exactly
    // the backlog. Both deletes find their rows through the txid index (catalog 0006), so a
    // trim costs what it deletes, not a scan of the whole backlog.
    auto within = tx.exec(
        window_cte(acked.tick) +
        ", done AS ("
        "  SELECT l.txid FROM mpfailover.change_log l, win"
        "  WHERE l.txid >= pg_snapshot_xmin(win.prev) AND l.txid < pg_snapshot_xmax(win.cur)"
        "    AND NOT pg_visible_in_snapshot(l.txid, win.prev)"
        "    AND pg_visible_in_snapshot(l.txid, win.cur)"
        "  GROUP BY l.txid HAVING max(l.seq) <= " +
        std::to_string(acked.seq) +
        ") DELETE FROM mpfailover.change_log l USING done WHERE l.txid = done.txid");
    tx.exec("DELETE FROM mpfailover.tick WHERE tick_id < " + prev);
    tx.commit();
    return static_cast<int64_t>(before.affected_rows() + within.affected_rows());
  } catch (const std::exception& e) {
    broken_ = true;
    return db_error("trimming the change log", e);
  }
}

Status PgLogReader::vacuum_log() {
  try {
    pqxx::nontransaction q(*conn_);
    q.exec("VACUUM (TRUNCATE false) mpfailover.change_log");
    return Status::ok();
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("vacuuming the change log", e);
  }
}

Result<int64_t> PgLogReader::forget_tombstones(Duration retention) {
  try {
    pqxx::nontransaction q(*conn_);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(retention).count();
    auto r = q.exec(
        "DELETE FROM mpfailover.tombstone WHERE deleted_at < now() - "
        "interval '1 millisecond' * " +
        std::to_string(ms));
    return static_cast<int64_t>(r.affected_rows());
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("forgetting old tombstones", e);
  }
}

Result<int64_t> PgLogReader::change_counter() {
  try {
    pqxx::nontransaction q(*conn_);
    auto r = q.exec_prepared(kCounter);
    return r[0][0].as<int64_t>();
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("reading the change counter", e);
  }
}

Result<std::string> PgLogReader::wake_name() {
  try {
    pqxx::nontransaction q(*conn_);
    auto r = q.exec(
        "SELECT 'mpfailover-wake/' || s.system_identifier || '/' || d.oid "
        "FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()");
    return r[0][0].as<std::string>();
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("reading the database's identity", e);
  }
}

Status PgLogReader::store_peer_ack(const std::string& peer, Position acked, uint64_t transactions) {
  try {
    pqxx::nontransaction q(*conn_);
    // One statement: the position, the running total, and at most one history sample a second
    // (catalog 0004), pruned to 15 minutes by index range on (peer, sampled_at).
    q.exec_params(
        "WITH ack AS ("
        "  INSERT INTO mpfailover.peer_ack (peer, tick, seq, acked_transactions) "
        "  VALUES ($1, $2, $3, $4) "
        "  ON CONFLICT (peer) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
        "    acked_at = now(), acked_transactions = mpfailover.peer_ack.acked_transactions + "
        "    EXCLUDED.acked_transactions "
        "  RETURNING peer, tick, seq, acked_transactions, acked_at), "
        "sample AS ("
        "  INSERT INTO mpfailover.ack_history (peer, sampled_at, tick, seq, acked_transactions) "
        "  SELECT peer, acked_at, tick, seq, acked_transactions FROM ack "
        "  WHERE NOT EXISTS (SELECT 1 FROM mpfailover.ack_history h WHERE h.peer = $1 "
        "    AND h.sampled_at > now() - interval '1 second') "
        "  ON CONFLICT DO NOTHING RETURNING 1) "
        "DELETE FROM mpfailover.ack_history WHERE peer = $1 "
        "  AND sampled_at < now() - interval '15 minutes' AND EXISTS (SELECT 1 FROM sample)",
        peer, acked.tick, acked.seq, static_cast<int64_t>(transactions));
    return Status::ok();
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("storing the peer's acknowledged position", e);
  }
}

Status PgLogReader::store_apply_error(const std::string& peer, Position position,
                                      const std::string& message) {
  try {
    pqxx::nontransaction q(*conn_);
    q.exec_params(
        "INSERT INTO mpfailover.peer_apply_error (peer, tick, seq, message) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (peer) DO UPDATE SET "
        "first_reported_at = CASE WHEN (peer_apply_error.tick, peer_apply_error.seq) = "
        "  (EXCLUDED.tick, EXCLUDED.seq) THEN peer_apply_error.first_reported_at ELSE now() END, "
        "tick = EXCLUDED.tick, seq = EXCLUDED.seq, message = EXCLUDED.message, "
        "reported_at = now()",
        peer, position.tick, position.seq, message);
    return Status::ok();
  } catch (const std::exception& e) {
    broken_ = true;
    cursor_open_ = false;
    return db_error("storing the peer's apply error", e);
  }
}

std::string waiting_changes_cte(Position acked, double sample_percent) {
  const std::string sample =
      sample_percent < 100 ? " TABLESAMPLE SYSTEM (" + std::to_string(sample_percent) + ")" : "";
  // The complement of trim(acked): a transaction is covered when it is visible in the snapshot
  // of tick acked.tick - 1 (every earlier window), or is in window acked.tick with its last
  // change number <= acked.seq. When that tick is gone (trimmed past, e.g. after a Welcome)
  // nothing left in the log is covered.
  //
  // One scan of the log, aggregated at once per transaction and per (table, window-acked.tick
  // transaction) with grouping sets: only that window's transactions need their last change
  // number before their rows can be counted, so only they get a group per table. `agg` holds
  // one row per transaction (gs = 6) plus a few per table (gs = 1); the rest reads it.
  return window_cte(acked.tick) +
         ", agg AS MATERIALIZED ("
         "  SELECT x.txid, x.table_id, x.wtxid, GROUPING(x.table_id, x.wtxid, x.txid) AS gs,"
         "         count(*) AS rows, sum(x.bytes)::bigint AS bytes, max(x.seq) AS last_seq,"
         "         bool_or(x.wtxid IS NOT NULL) AS in_window,"
         "         min(ARRAY[x.hlc, x.seq, x.table_id]) AS first_change"
         "  FROM (SELECT l.txid, l.table_id, l.seq, l.hlc, pg_column_size(l.*) AS bytes,"
         "          CASE WHEN pg_visible_in_snapshot(l.txid, win.cur) THEN l.txid END AS wtxid"
         "        FROM mpfailover.change_log l" +
         sample +
         ", win"
         "        WHERE NOT coalesce(l.txid < pg_snapshot_xmax(win.prev)"
         "                           AND pg_visible_in_snapshot(l.txid, win.prev), false)) x"
         "  GROUP BY GROUPING SETS ((x.table_id, x.wtxid), (x.txid))), "
         "done AS MATERIALIZED ("
         "  SELECT a.txid FROM agg a WHERE a.gs = 6 AND a.in_window AND a.last_seq <= " +
         std::to_string(acked.seq) +
         "), "
         "waiting_tx AS NOT MATERIALIZED ("
         "  SELECT a.txid, a.rows, a.bytes, a.last_seq, a.first_change FROM agg a"
         "  WHERE a.gs = 6 AND a.txid NOT IN (SELECT txid FROM done)), "
         "waiting_table AS NOT MATERIALIZED ("
         "  SELECT a.table_id, sum(a.rows)::bigint AS rows, sum(a.bytes)::bigint AS bytes,"
         "         min(a.first_change[1]) AS first_hlc FROM agg a"
         "  WHERE a.gs = 1 AND (a.wtxid IS NULL OR a.wtxid NOT IN (SELECT txid FROM done))"
         "  GROUP BY a.table_id)";
}

}  // namespace mpf::replicator
