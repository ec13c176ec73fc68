// Versioned SQL migrations for two streams:
//   "catalog" - the replicator's own schema `mpfailover` (capture log, ticks, positions, epoch,
//               conflicts); always applied by `mpfailover init-db`.
//   "app"     - the MeetingPlace application tables used by the demo and tests; applied only
//               with `init-db --app-schema` (a production application owns its own tables).
// Each migration runs in its own transaction and is recorded in mpfailover.schema_migrations.
#pragma once

#include <string>
#include <vector>

#include <pqxx/connection>

#include <mpf/core/status.hpp>

namespace mpf::schema {

struct Migration {
  std::string stream;
  int version;
  std::string name;
  std::string sql;
};

const std::vector<Migration>& all_migrations();

// Highest version this build knows for `stream`.
int latest_version(const std::string& stream);

struct MigrationReport {
  std::vector<std::string> applied;  // names of the migrations applied by this run
};

// Applies the pending migrations of `stream`. Idempotent. Refuses (kFailedPrecondition) when the
// database already holds a version newer than this build knows: an older binary must not run
// against a newer catalog.
Result<MigrationReport> migrate(pqxx::connection& conn, const std::string& stream);

// The version recorded in the database for `stream` (0 when none).
Result<int> installed_version(pqxx::connection& conn, const std::string& stream);

}  // namespace mpf::schema
