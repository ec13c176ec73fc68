// Where the shipper gets committed changes from. Implemented over PostgreSQL by PgLogReader
// (src/io/pg_log_reader.cpp) and in memory by the simulation.
#pragma once

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>

namespace mpf::replicator {

class LogSource {
 public:
  virtual ~LogSource() = default;

  // Restarts reading just after `after` (exclusive): the next chunk returned is the first part
  // of the first transaction ordered after it. Position{} reads from the beginning.
  virtual Status seek(Position after) = 0;

  // Whole transactions in commit-consistent order, at most `max_changes` changes in all; a
  // transaction with more changes than that comes alone, in parts of at most `max_changes`.
  // Empty when nothing new has committed. REQUIRES: max_changes > 0.
  virtual Result<ChangeBatch> next_batch(size_t max_changes) = 0;
};

}  // namespace mpf::replicator
