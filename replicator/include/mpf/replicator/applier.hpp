// Where the receiver applies an origin's transactions. Implemented over PostgreSQL by
// PgApplierConnection (src/io/pg_applier_connection.cpp, around PgApplier) and in memory by the
// simulation (tests/sim/).
//
// An Applier is never "gone": when its database connection is lost or closed, every call returns
// kUnavailable until bind() opens a new one. The receiver session (receiver_session.hpp) decides
// when to bind, apply, roll back and close; the applier never decides anything by itself.
#pragma once

#include <string>
#include <vector>

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>

namespace mpf::replicator {

class Applier {
 public:
  virtual ~Applier() = default;

  // (Re)connects when closed, then binds the origin's tables (RowChange::table_id indexes
  // `tables`). Abandons an open transaction.
  virtual Status bind(const std::string& origin, const std::vector<TableDef>& tables) = 0;

  // The origin's last position committed (durably) here; Position{} when none.
  virtual Result<Position> applied_position() = 0;

  // Applies `chunks` in one local transaction with the origin's position, skipping what is at or
  // below the applied position. Returns the position committed, unchanged while a split
  // transaction is still open. kUnavailable / kUnknownOutcome: the connection is lost (the group
  // may or may not be committed: the applied position tells). Any other error: the group is rolled
  // back; nothing is skipped.
  virtual Result<Position> apply(const std::vector<TxChunk>& chunks) = 0;

  // The transaction the last failed apply() stopped on, exactly (not the first of its group), so
  // that an operator's skip leaves out that one only; Position{} when not known.
  virtual Position failed_position() const { return {}; }

  // Rolls back an open (split) transaction.
  virtual void rollback() = 0;

  // Drops the connection (and an open transaction with it); the next bind() reconnects.
  virtual void close() = 0;
};

}  // namespace mpf::replicator
