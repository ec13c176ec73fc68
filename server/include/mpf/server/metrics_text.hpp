// The daemon's Prometheus metrics as text: a plain struct of values in, the text exposition
// format 0.0.4 out (# HELP and # TYPE for every metric). Pure: no clock, no I/O; the daemon
// gathers the values (metrics_server.hpp) and tests feed made-up ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace mpf::server {

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

struct MetricsValues {
  // The node's role and epoch, and the peer's state, in the words of `status --json`.
  std::string role;  // starting | standby | promoting | active | demoting | standalone
  int64_t epoch = 0;
  std::string peer_state;                      // unknown | up | service_down | unreachable
  std::optional<double> last_heartbeat_age_s;  // none before the peer's first answer
  std::optional<double> lag_s;                 // none until everything was acked once
  // Self-fencing and maintenance mode (docs/fencing.md), as status --json says them.
  bool fenced = false;
  std::string fenced_reason;  // empty unless fenced
  bool maintenance = false;

  // Links (since the daemon started).
  bool outbound_up = false;
  bool inbound_up = false;
  // The replication protocol version each session agreed on; none while it is down.
  std::optional<double> outbound_protocol_version;
  std::optional<double> inbound_protocol_version;
  uint64_t sent_bytes = 0;            // frame bytes the shipper sent
  uint64_t received_bytes = 0;        // frame bytes the receiver received
  uint64_t sent_transactions = 0;     // whole transactions shipped to the peer
  uint64_t applied_transactions = 0;  // the peer's transactions applied here
  uint64_t reconnects = 0;            // shipper sessions after the first
  uint64_t dropped_frames = 0;        // receiver: garbage, foreign or out-of-order frames

  // From the database, sampled every few seconds (none before the first sample or when the
  // database could not be read).
  struct Database {
    int64_t backlog_transactions = 0;
    int64_t backlog_rows = 0;
    int64_t backlog_bytes = 0;
    std::optional<double> backlog_oldest_age_s;  // none when nothing waits
    int64_t conflicts = 0;                       // rows of mpfailover.conflict
    double sample_age_s = 0;                     // how old these numbers are
    double sample_duration_s = 0;                // how long reading them took
  };
  std::optional<Database> database;
  uint64_t database_errors = 0;  // samples that failed
};

// Every metric is named mpfailover_*, its unit in the name (_seconds, _bytes, _total for
// counters). A value that is unknown (an optional without a value) leaves its metric without a
// sample: HELP and TYPE stay, so the name is still discoverable; absent() alerts on it.
std::string render_metrics(const MetricsValues& values);

}  // namespace mpf::server
