// NodeDatabase: what the node driver reads from and writes to this node's PostgreSQL, outside
// replication proper: the persisted role and epoch, the application login's write access, and
// facts for status and the failover checks.
//
// One connection, opened lazily and reopened after a failure; statements time out after 5 s so a
// hung database cannot stall heartbeats for long. Every failure comes back as a Status naming
// what could not be done.
//
// Thread safety: one thread (the driver's).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <pqxx/connection>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/heartbeat/role_machine.hpp>
#include <mpf/server/history.hpp>

namespace mpf::server {

struct AppliedFromPeer {
  Position position;
  std::optional<double> age_s;  // since it was applied; none if nothing was ever applied
};

class NodeDatabase {
 public:
  explicit NodeDatabase(std::string conninfo);
  ~NodeDatabase();

  Result<heartbeat::PersistedRole> load_role();
  // Stores role, epoch and standalone_from, and marks the node initialized.
  Status persist_role(const heartbeat::PersistedRole& role);

  // Opens or closes the application's writes: ALTER ROLE ... SET default_transaction_read_only,
  // and when closing, ends the role's open sessions (a session keeps the setting it started
  // with). The replicator's own sessions set default_transaction_read_only = off themselves.
  Status set_app_writes(const std::string& app_role, bool writable);

  Result<AppliedFromPeer> applied_from(const std::string& origin);
  // The replicated tables' definitions as one canonical text (for the digest in heartbeats).
  Result<std::string> definitions_text();
  Result<int32_t> catalog_version();

  // One row of mpfailover.history (history.hpp). A catalog older than version 7 has no history
  // table: kFailedPrecondition, which the driver logs once.
  Status record_history(const HistoryEvent& e);
  // Deletes the conflicts older than `retention` (conflicts.retention); the number deleted.
  Result<int64_t> prune_conflicts(Duration retention);

 private:
  Result<pqxx::connection*> conn();
  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace mpf::server
