// `mpfailover conflicts`: the changes reconciliation overrode (mpfailover.conflict), read
// straight from this node's database. Rows are written by the applier (replicator/src/io/
// pg_applier.cpp): kind 'lww' when last-writer-wins decided between a change from the peer and
// a row (or a delete) made here, 'skip' when an operator skipped a transaction, 'repair' for
// verify --repair. Each is recorded on the node that applied it.
//
// Cost: an index range scan on conflict(detected_at) or conflict(relation, detected_at),
// newest first, at most `limit` rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include <mpf/core/status.hpp>

namespace mpf::server {

struct ConflictFilter {
  // Only conflicts detected at or after this: a duration back from now ("30min", "2h", "7d")
  // or a time PostgreSQL's timestamptz accepts ("2026-11-22 10:00", ISO 8601). Empty: all.
  std::string since;
  // Only this table: "public.meetings" or, unqualified, "meetings". Empty: all.
  std::string table;
  int64_t limit = 100;
};

struct ConflictRecord {
  int64_t id = 0;
  std::string detected_at;  // ISO 8601
  std::string table;
  std::string key;            // JSON object column -> value (array when the table is unknown)
  std::string key_text;       // "id=42" for humans
  std::string kind;           // lww | skip | repair
  std::string winner_origin;  // empty for a skip
  std::string winner_time;    // the winner's conflict timestamp, ISO 8601; empty if none
  std::string loser_origin;
  std::string loser_time;
  std::string loser_op;     // I | U | D: the overridden change, or U for an overridden local row
  std::string loser_image;  // the overridden change's row image (text[]), when it was remote
  std::string loser_row;    // the overridden local row (JSON), when it was local
  std::string reason;
};

struct ConflictList {
  std::vector<ConflictRecord> conflicts;  // newest first
  bool more = false;                      // more matched than the limit
};

// kInvalidArgument for a --since PostgreSQL cannot read as a time; kUnavailable when the
// database cannot be reached; kFailedPrecondition when it has no catalog.
Result<ConflictList> read_conflicts(const std::string& conninfo, const ConflictFilter& filter);
// The same on an open connection (the daemon's sampler, for the status page).
Result<ConflictList> read_conflicts(pqxx::connection& conn, const ConflictFilter& filter);

// A "--since" duration in seconds ("90s", "30min", "2h", "7d", "1.5h"); none when `text` is not
// a duration (then it is taken as a time).
std::optional<double> parse_since_duration(const std::string& text);

std::string format_conflicts(const ConflictList& list);
std::string conflicts_json(const ConflictList& list);

}  // namespace mpf::server
