// PgApplier: applies an origin's transactions to this node's database, exactly once.
//
// Each call applies a group of chunks in one local transaction, with the origin's position
// stored in that same transaction (docs/design.md §2); a transaction split into parts keeps the
// local transaction open until its last part. Rows are applied set-based (docs/design.md §9): the
// group's net effect per key, one DELETE and one INSERT .. ON CONFLICT per table. The session sets
// mpfailover.applying, so nothing applied here is captured again (docs/design.md §3).
//
// Conflicts (docs/design.md §4): a change from the origin replaces a row last written by the origin
// itself unconditionally (its stream is ordered). Against a row written on this node, or a
// tombstone of a delete made here, the later (commit timestamp, node name) wins; the loser is
// recorded in mpfailover.conflict. Both nodes decide alike because both compare the same two
// commit timestamps. Before committing, the applier waits until this node's clock has passed
// the group's newest timestamp, so a change made here afterwards is always later (the causal
// half of a hybrid logical clock), up to kMaxCommitWait of clock skew.
//
// Thread safety: none; one applier per thread. Owns its database connection.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>
#include <mpf/replicator/net_effect.hpp>

namespace mpf::replicator {

class PgApplier {
 public:
  static Result<std::unique_ptr<PgApplier>> open(const std::string& conninfo);
  ~PgApplier();

  // Binds the origin's tables (RowChange::table_id refers to TableDef::table_id here) to this
  // node's tables of the same name. Refuses, naming the table and the difference, when a table
  // is missing here or its key or column names differ. Abandons any open transaction.
  Status bind(const std::string& origin, const std::vector<TableDef>& origin_tables);

  // The origin's last position committed here (Position{} when none).
  Result<Position> applied_position();

  // Applies `chunks` (in order; a group may end inside a split transaction). Returns the
  // position committed, unchanged while a split transaction is still open. An apply error
  // (constraint violation, missing column, ...) rolls the group back and is returned with the
  // failing transaction's position; nothing is skipped.
  Result<Position> apply(const std::vector<TxChunk>& chunks);

  // Rolls back an open transaction (session reset, lost connection to the origin).
  void reset();

  // The transaction the last failed apply() stopped on, exactly (not the first of its group);
  // zero when the failure was not one transaction's (the database went away). Also recorded in
  // mpfailover.apply_failure, where `mpfailover skip` checks its position against it.
  Position failed_position() const { return failed_at_; }

  // True while a transaction split into parts is partly applied (its local transaction open).
  bool in_split_transaction() const { return tx_ != nullptr; }

 private:
  struct BoundTable;
  explicit PgApplier(std::unique_ptr<pqxx::connection> conn);

  Result<Position> apply_fresh(const std::vector<TxChunk>& chunks);
  // Opens the local transaction unless open; returns the statements that begin it ("" when
  // open already), to be sent in the same round trip as what follows.
  std::string begin_sql();
  void begin_if_needed();
  // "EXECUTE statement('param', ...); ": a prepared statement inside a multi-statement string,
  // so that several travel in one round trip.
  std::string execute_sql(const std::string& statement,
                          const std::vector<std::string>& params) const;
  // The origin's position and COMMIT.
  std::string position_sql(Position pos) const;
  // The deletes and upserts of `net`, as statements to send.
  std::string flush(const NetEffect& net) const;
  // Last writer wins per row against this node's own writes (docs/design.md §4): runs `open` and
  // the version lookups, and returns the statements that write the winners, their tombstones and
  // the conflicts, to be sent by the caller (with what closes the group, in one round trip).
  // `fast`: upserts are not looked up but written by the upsert that fails unless none of them
  // had anything for last-writer-wins to decide (the caller then retries with fast = false).
  std::string apply_group(const NetEffect& net, const std::string& open, bool fast);
  void commit_wait(const NetEffect& net);
  Status apply_one_by_one(const std::vector<TxChunk>& chunks,
                          const std::map<Position, std::string>& skips);
  void record_skip(const TxChunk& chunk, const std::string& reason);
  // The statements that check the foreign keys of the rows `net` writes and deletes (see
  // BoundTable::reference_sqls), built at bind from this node's constraints.
  Result<std::vector<std::pair<std::string, bool>>> reference_checks(
      const TableDef& here, const std::map<std::string, std::string>& type_of,
      const std::vector<std::string>& key_aliases, const std::vector<std::string>& key_params);
  std::string references_sql(const NetEffect& net) const;
  void record_failure(Position at, const std::string& message);

  std::unique_ptr<pqxx::connection> conn_;
  // The open local transaction, begun and ended by hand (BEGIN and COMMIT travel with other
  // statements, saving round trips per group); null when none is open.
  std::unique_ptr<pqxx::nontransaction> tx_;
  std::string origin_;
  std::string local_node_;
  int64_t origin_roident_ = 0;
  std::vector<std::unique_ptr<BoundTable>> tables_;  // in foreign-key order, parents first
  std::vector<BoundTable*> by_id_;                   // origin table_id -> table
  Position committed_;
  uint64_t statement_generation_ = 0;      // prepared statement names stay unique across binds
  int fast_skips_ = 0;                     // groups left to apply without the fast attempt
  std::map<Position, std::string> skips_;  // operator's skip requests, read at bind
  Position failed_at_;                     // see failed_position()
  // The database's encoding is not UTF8: a value it cannot represent fails the conversion of
  // the whole query string, before any statement in it runs, so the group's BEGIN and
  // savepoint go in a round trip of their own (see apply_fresh).
  bool converts_ = false;
};

}  // namespace mpf::replicator
