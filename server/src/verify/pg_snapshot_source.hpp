// The active's side of `mpfailover resync`: one consistent snapshot of the replicated tables
// (and the tombstones), served in bounded chunks to the peer over the verify channel, and the
// position in this node's change stream that the snapshot holds exactly.
//
// Thread safety: none; the verify responder's worker is its only user. Owns its connections.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include <mpf/core/status.hpp>
#include <mpf/server/verify/verify_codec.hpp>

namespace mpf::server::verify {

class PgSnapshotSource {
 public:
  static constexpr size_t kChunkBytes = 4u << 20;  // values per answer (frames are <= 8 MiB)
  static constexpr std::chrono::seconds kIdleTimeout{60};

  PgSnapshotSource(std::string conninfo, std::string node, std::string peer);
  ~PgSnapshotSource();

  // Opens the snapshot (replacing an earlier one): REPEATABLE READ, taken while the tick table
  // is locked, and recorded as a new tick with that very snapshot (see the .cpp's NOTES).
  Result<SnapshotBeginAnswer> begin(const std::string& requester);
  Result<SnapshotChunk> fetch(const SnapshotFetch& request);
  Result<SnapshotEndAnswer> end(uint64_t snapshot_id);
  // Ends a snapshot nobody asked anything of for kIdleTimeout (its standby went away).
  void expire(std::chrono::steady_clock::time_point now);

 private:
  struct Table {
    std::string relation;
    uint64_t columns = 0;
    std::string select_sql;
  };
  void close();
  Result<Position> applied_now();

  std::string conninfo_;
  std::string node_;
  std::string peer_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::transaction_base> tx_;  // the snapshot's REPEATABLE READ transaction
  uint64_t id_ = 0;
  std::vector<Table> tables_;
  std::vector<bool> done_;
  std::optional<size_t> current_;  // the table whose cursor is open
  uint64_t next_chunk_ = 0;
  std::deque<std::vector<std::optional<std::string>>> carried_;  // fetched, not yet sent
  std::chrono::steady_clock::time_point last_used_{};
};

}  // namespace mpf::server::verify
