// Capture: a trigger on every replicated table writes each INSERT, UPDATE and DELETE into
// mpfailover.change_log in the same transaction as the change. The trigger function is C
// (replicator/pgmodule/mpfailover_capture.c), loaded into PostgreSQL as module
// "mpfailover_capture".
#pragma once

#include <string>
#include <vector>

#include <pqxx/connection>

#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>

namespace mpf::replicator {

// The session setting the applier sets so that its own writes are not captured again
// (docs/design.md §3). Any session that sets it is invisible to capture: only the replicator may.
inline constexpr const char* kApplyingSetting = "mpfailover.applying";

// Looks up each configured table (PostgreSQL identifier syntax: users, app.users, "My Table";
// unqualified means schema public). Refuses, naming the table, the column and the reason, every
// definition apply cannot replicate exactly (docs/tables.md): missing, not an ordinary table,
// no primary key, a deferrable or generated key, a non-key GENERATED ALWAYS identity column,
// inheritance children. table_id is left 0.
Result<std::vector<TableDef>> describe_tables(pqxx::connection& conn,
                                              const std::vector<std::string>& tables);

// Records the node name, (re)generates the capture trigger of every table, assigns stable
// table ids, and removes capture from tables no longer configured. One transaction.
// REQUIRES: the catalog migrations have been applied.
Result<std::vector<TableDef>> install_capture(pqxx::connection& conn, const std::string& node_name,
                                              const std::vector<std::string>& tables);

// Schema drift (#12): each installed table as it is now against its definition recorded by
// init-db. A table dropped or renamed, a column added, dropped, renamed or retyped, a changed
// primary key or a definition replication refuses: failed_precondition naming the table, the
// column and the change, with the runbook's hint. Run by `mpfailover check` and by the applier's
// bind, so apply waits (the next session binds again) instead of applying rows to a definition
// the origin does not share. On the source, the capture trigger itself refuses writes to a table
// with a column dropped, renamed or added since init-db; the shipper goes on shipping the
// changes captured before, which match the peer's definition.
Status check_definitions(pqxx::connection& conn);

// The tables capture is installed on, as recorded in the catalog.
Result<std::vector<TableDef>> installed_tables(pqxx::connection& conn);

// The CREATE TRIGGER statement for `table`: the C function mpfailover.capture() (module
// replicator/pgmodule) with the table id, origin, key columns and image columns as arguments.
std::string capture_trigger_sql(const TableDef& table, const std::string& node_name);

}  // namespace mpf::replicator
