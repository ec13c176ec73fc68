// NOTES: the snapshot boundary of `mpfailover resync` (docs/protocol.md "Snapshot copy").
//
// The standby must apply, after the copy, every transaction of this node that the copy does not
// hold, and none that it does. Transactions are ordered by snapshot windows (docs/design.md §1):
// window t holds those visible in tick t's snapshot and not in tick t-1's, and a position is
// (tick, last change number). So the copy is made exactly a tick boundary:
//
//   1. a second connection locks mpfailover.tick (EXCLUSIVE: the shipper's ticker and trim wait;
//      readers do not), so no tick is being recorded and every recorded one is committed;
//   2. the copy's REPEATABLE READ transaction takes its snapshot S (its first statement);
//   3. the second connection records tick T = max + 1 with snapshot S itself, and commits.
//
// Every earlier tick's snapshot was taken before the lock, so it is contained in S: ticks stay
// monotonic. A transaction is in the copy iff it is visible in S iff its window is <= T; the
// ticker's next tick, taken after the lock is released, contains S. Inside window T the copy has
// every transaction, so the boundary is (T, the window's last change number), computed in S
// itself. The standby stores that position as applied in the transaction that writes the copy,
// and the shipper resumes just after it (Welcome), as after any apply (docs/design.md §2).
//
// Trim: the log is trimmed only up to the standby's acknowledged position (peer_ack), which
// cannot pass T before the standby has committed the copy (its receiver refuses sessions while
// the copy runs, and T did not exist before); the tick T - 1 a resume after T needs is kept.
#include "pg_snapshot_source.hpp"

#include <random>

#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/replicator/capture.hpp>
#include <mpf/server/verify/resync_plan.hpp>

namespace mpf::server::verify {
namespace {

constexpr const char* kCursor = "mpf_snapshot";
constexpr size_t kFetchRows = 200;
constexpr const char* kTombstones = "mpfailover.tombstone";

std::string quote_relation(pqxx::connection& c, const std::string& relation) {
  const auto dot = relation.find('.');
  return c.quote_name(relation.substr(0, dot)) + "." + c.quote_name(relation.substr(dot + 1));
}

Status db_error(const std::string& what, const std::exception& e) {
  return unavailable("database error while " + what + ": " + one_line(e.what()));
}

}  // namespace

PgSnapshotSource::PgSnapshotSource(std::string conninfo, std::string node, std::string peer)
    : conninfo_(std::move(conninfo)), node_(std::move(node)), peer_(std::move(peer)) {}

PgSnapshotSource::~PgSnapshotSource() { close(); }

void PgSnapshotSource::close() {
  try {
    if (tx_) tx_->abort();
  } catch (const std::exception&) {
    // The connection goes below anyway.
  }
  tx_.reset();
  conn_.reset();
  tables_.clear();
  done_.clear();
  current_.reset();
  carried_.clear();
  id_ = 0;
}

void PgSnapshotSource::expire(std::chrono::steady_clock::time_point now) {
  if (!tx_ || now - last_used_ < kIdleTimeout) return;
  spdlog::warn("SnapshotExpired peer={} snapshot={:x} idle_s={}", peer_, id_, kIdleTimeout.count());
  close();
}

Result<SnapshotBeginAnswer> PgSnapshotSource::begin(const std::string& requester) {
  if (requester != peer_) {
    return failed_precondition("node \"" + requester + "\" is not the peer of node \"" + node_ +
                               "\" (\"" + peer_ + "\"): only the peer may copy its data");
  }
  if (tx_) {
    spdlog::warn("SnapshotReplaced peer={} snapshot={:x}", peer_, id_);
    close();
  }
  SnapshotBeginAnswer answer;
  try {
    pqxx::connection lock_conn(conninfo_);
    auto defs = replicator::installed_tables(lock_conn);
    if (!defs) return defs.status();
    {
      pqxx::nontransaction q(lock_conn);
      q.exec("SET default_transaction_read_only = off; SET lock_timeout = '10s'");
      auto role = q.exec("SELECT role FROM mpfailover.node");
      const std::string r = role.empty() ? "uninitialized" : role[0][0].c_str();
      if (r != "active") {
        return failed_precondition("node \"" + node_ + "\" is " + r +
                                   ", not active: resync copies the active's data");
      }
    }
    conn_ = std::make_unique<pqxx::connection>(conninfo_);
    conn_->set_client_encoding("UTF8");  // the copy travels in UTF8, as the change stream does
    {
      pqxx::nontransaction q(*conn_);
      // Text forms that read back exactly on the standby (the same pinning as verify's hashes).
      q.exec(
          "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; "
          "SET TimeZone = 'UTC'; SET bytea_output = 'hex'; "
          "SET idle_in_transaction_session_timeout = '120s'; "
          "SET application_name = 'mpfailover resync snapshot'");
    }
    pqxx::work lock_tx(lock_conn);
    lock_tx.exec("LOCK TABLE mpfailover.tick IN EXCLUSIVE MODE");
    tx_ = std::make_unique<pqxx::transaction<pqxx::isolation_level::repeatable_read,
                                             pqxx::readwrite_policy::read_only>>(*conn_);
    // The copy's snapshot: its transaction's first statement, taken under the lock.
    const std::string snapshot = tx_->exec("SELECT pg_current_snapshot()::text")[0][0].c_str();
    const int64_t tick =
        lock_tx
            .exec_params(
                "INSERT INTO mpfailover.tick (tick_id, snapshot) "
                "SELECT max(tick_id) + 1, $1::pg_snapshot FROM mpfailover.tick RETURNING tick_id",
                snapshot)[0][0]
            .as<int64_t>();
    lock_tx.commit();
    // The last change number of window `tick`, read in the snapshot itself.
    const int64_t max_seq =
        tx_->exec(
               "SELECT coalesce(max(l.seq), 0) FROM mpfailover.change_log l, mpfailover.tick k "
               "WHERE k.tick_id = " +
               std::to_string(tick - 1) +
               " AND NOT (l.txid < pg_snapshot_xmax(k.snapshot) "
               "AND pg_visible_in_snapshot(l.txid, k.snapshot))")[0][0]
            .as<int64_t>();
    answer.position = snapshot_position(tick, max_seq);
    auto applied = tx_->exec_params(
        "SELECT tick, seq FROM mpfailover.applied_position WHERE origin = $1", requester);
    if (!applied.empty()) {
      answer.peer_applied = Position{applied[0][0].as<int64_t>(), applied[0][1].as<int64_t>()};
    }
    for (const auto& d : *defs) {
      Table t;
      t.relation = d.relation;
      t.columns = d.columns.size();
      t.select_sql = "SELECT ";
      for (size_t i = 0; i < d.columns.size(); ++i) {
        t.select_sql += (i ? ", " : "") + conn_->quote_name(d.columns[i]) + "::text";
      }
      t.select_sql += " FROM " + quote_relation(*conn_, d.relation);
      tables_.push_back(std::move(t));
    }
    // Tombstones last: the standby keeps the active's memory of deletes (docs/design.md §4), with
    // the conflict timestamp resolved here (txids are local to this node).
    tables_.push_back(Table{kTombstones, 5,
                            "SELECT t.relation, t.key::text, t.origin, "
                            "mpfailover.tombstone_hlc(t)::text, t.deleted_at::text "
                            "FROM mpfailover.tombstone t"});
    for (const auto& t : tables_) {
      auto est = tx_->exec("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = " +
                           tx_->quote(t.relation) + "::regclass");
      answer.tables.push_back(
          SnapshotTable{t.relation, t.columns, est.empty() ? 0 : est[0][0].as<uint64_t>()});
    }
  } catch (const std::exception& e) {
    close();
    return db_error("opening the snapshot for \"" + requester + "\"", e);
  }
  std::random_device rd;
  id_ = (uint64_t{rd()} << 32 | rd()) | 1;
  answer.snapshot_id = id_;
  done_.assign(tables_.size(), false);
  last_used_ = std::chrono::steady_clock::now();
  spdlog::info("SnapshotOpened peer={} snapshot={:x} position={} peer_applied={} tables={}", peer_,
               id_, answer.position.to_string(), answer.peer_applied.to_string(), tables_.size());
  return answer;
}

Result<SnapshotChunk> PgSnapshotSource::fetch(const SnapshotFetch& request) {
  if (!tx_ || request.snapshot_id != id_) {
    return failed_precondition("no snapshot " + std::to_string(request.snapshot_id) +
                               " open on node \"" + node_ +
                               "\" (it ended after 60 s unused, or the daemon restarted): run "
                               "resync again");
  }
  last_used_ = std::chrono::steady_clock::now();
  size_t index = tables_.size();
  for (size_t i = 0; i < tables_.size(); ++i) {
    if (tables_[i].relation == request.relation) index = i;
  }
  if (index == tables_.size()) {
    return invalid_argument("table \"" + request.relation + "\" is not in the snapshot");
  }
  try {
    if (current_ != index) {
      if (done_[index]) {
        return invalid_argument("table \"" + request.relation + "\" was copied already");
      }
      if (current_) tx_->exec(std::string("CLOSE ") + kCursor);
      carried_.clear();
      current_.reset();
      tx_->exec(std::string("DECLARE ") + kCursor + " NO SCROLL CURSOR FOR " +
                tables_[index].select_sql);
      current_ = index;
      next_chunk_ = 0;
    }
    if (request.chunk != next_chunk_) {
      return invalid_argument("chunk " + std::to_string(request.chunk) + " of \"" +
                              request.relation + "\" asked, expected " +
                              std::to_string(next_chunk_));
    }
    SnapshotChunk chunk;
    chunk.columns = tables_[index].columns;
    ChunkBudget budget(static_cast<size_t>(request.max_rows), kChunkBytes);
    bool exhausted = false;
    for (;;) {
      while (!carried_.empty()) {
        size_t bytes = 0;
        for (const auto& v : carried_.front()) bytes += (v ? v->size() : 0) + 5;
        if (!budget.take(bytes)) break;
        chunk.rows.push_back(std::move(carried_.front()));
        carried_.pop_front();
      }
      if (!carried_.empty() || budget.full() || exhausted) break;
      auto rows = tx_->exec("FETCH FORWARD " + std::to_string(kFetchRows) + " FROM " + kCursor);
      exhausted = rows.size() < kFetchRows;
      for (const auto& r : rows) {
        std::vector<std::optional<std::string>> values;
        values.reserve(r.size());
        for (const auto& f : r) {
          values.push_back(f.is_null() ? std::nullopt : std::optional<std::string>(f.c_str()));
        }
        carried_.push_back(std::move(values));
      }
    }
    chunk.last = exhausted && carried_.empty();
    if (chunk.last) {
      tx_->exec(std::string("CLOSE ") + kCursor);
      current_.reset();
      done_[index] = true;
    }
    ++next_chunk_;
    return chunk;
  } catch (const std::exception& e) {
    close();
    return db_error("reading the snapshot of \"" + request.relation + "\"", e);
  }
}

Result<Position> PgSnapshotSource::applied_now() {
  try {
    pqxx::connection c(conninfo_);
    pqxx::nontransaction q(c);
    auto r =
        q.exec_params("SELECT tick, seq FROM mpfailover.applied_position WHERE origin = $1", peer_);
    if (r.empty()) return Position{};
    return Position{r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
  } catch (const std::exception& e) {
    return db_error("reading the applied position of \"" + peer_ + "\"", e);
  }
}

Result<SnapshotEndAnswer> PgSnapshotSource::end(uint64_t snapshot_id) {
  if (tx_ && snapshot_id == id_) {
    spdlog::info("SnapshotClosed peer={} snapshot={:x}", peer_, id_);
    close();
  }
  auto applied = applied_now();
  if (!applied) return applied.status();
  return SnapshotEndAnswer{*applied};
}

}  // namespace mpf::server::verify
