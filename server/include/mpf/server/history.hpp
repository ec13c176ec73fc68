// The pair's history on this node (mpfailover.history, migration 0006_release2.sql): every role
// change, failover, switchover, standalone/join, fencing change, skip, resync and repair, with who
// asked, why, the epoch and the replication positions at that moment. The daemon writes the events
// it carries out (node_driver.cpp, resync_runner.cpp); the CLI writes skip and verify --repair.
// `mpfailover history` reads it (as `pg_autoctl show events`).
//
// Cost: one INSERT per event (rare); reading is an index range scan on history(at).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <mpf/core/status.hpp>

namespace mpf::server {

struct HistoryEvent {
  std::string node;
  std::string event;      // role_change | failover | switchover | standalone | join | fencing |
                          // skip | resync | repair
  std::string role_from;  // empty: not a role change
  std::string role_to;
  std::optional<int64_t> epoch;
  std::string who;  // "daemon", "peer b", or the operator ("root (uid 0)")
  std::string why;
  std::string applied_from_peer;  // TICK/SEQ; empty when unknown
  std::string acked_by_peer;
  nlohmann::json detail = nlohmann::json::object();
  std::string at;  // ISO 8601; filled by read_history
};

// The event kind a role change's reason (RoleChanged reason=...) belongs to.
std::string history_event_for_reason(const std::string& reason);

// The operator running this process, for `who`: "alice (uid 1000)".
std::string current_operator();

// One INSERT in the caller's transaction (so a skip and its record commit together).
void record_history(pqxx::transaction_base& tx, const HistoryEvent& e);
// Its own connection and transaction (the CLI's verify --repair).
Status record_history(const std::string& conninfo, const HistoryEvent& e);

struct HistoryFilter {
  std::string since;  // as `conflicts --since`: a duration (7d) or a time; empty: all
  int64_t limit = 100;
};

struct HistoryList {
  std::vector<HistoryEvent> events;  // oldest first, the newest `limit`
  bool more = false;
};

// kInvalidArgument for a --since that is neither a duration nor a time; kUnavailable when the
// database cannot be reached; kFailedPrecondition when the catalog has no history (init-db).
Result<HistoryList> read_history(const std::string& conninfo, const HistoryFilter& filter);
// The same on an open connection (the daemon's sampler, for the status page).
Result<HistoryList> read_history(pqxx::connection& conn, const HistoryFilter& filter);

std::string format_history(const HistoryList& list);
std::string history_json(const HistoryList& list);

}  // namespace mpf::server
