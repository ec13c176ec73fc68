// `mpfailover init-db`: apply catalog migrations (and, on request, the MeetingPlace application
// schema), then install capture on every configured table. Idempotent.
#pragma once

#include <string>
#include <vector>

#include <mpf/core/status.hpp>
#include <mpf/server/config.hpp>

namespace mpf::server {

struct InitDbOptions {
  bool app_schema = false;  // also create the MeetingPlace tables
  // The daemon's own login (not a superuser): granted what mpfailoverd needs, nothing more
  // (docs/operator-tools.md, "Least privilege"). Empty: no grants.
  std::string grant_to;
};

struct InitDbReport {
  std::vector<std::string> migrations_applied;
  std::vector<std::string> tables_captured;
  std::vector<std::string> notes;  // things the operator should know (printed by the CLI)
};

Result<InitDbReport> init_db(const Config& config, const InitDbOptions& options);

// Checks, at daemon start, that the database is initialised for this node and that every
// configured table exists, has a primary key, and is captured. Names what is wrong.
Status check_database(const Config& config);

// The replicated tables alone (#12), for `mpfailover check`: every table in replication.tables
// is one replication can do exactly (describe_tables' refusals), and, once init-db has run, none
// changed since (schema drift). The first problem, naming table, column and reason.
Status check_tables(const Config& config);

}  // namespace mpf::server
