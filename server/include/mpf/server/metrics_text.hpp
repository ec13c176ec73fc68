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
    int64_t conflicts = 0;  // conflicts ever recorded (mpfailover.conflict's id sequence)
    // When this node last applied a transaction of the peer (Unix seconds); 0: never.
    double last_apply_timestamp_s = 0;
    bool peer_apply_blocked = false;  // the peer's apply stopped on a transaction of this node
    double sample_age_s = 0;          // how old these numbers are
    double sample_duration_s = 0;     // how long reading them took
  };
  std::optional<Database> database;
  uint64_t database_errors = 0;  // samples that failed

  // mpfailover_build_info's labels.
  std::string version;            // software_version()
  std::string protocol_versions;  // "1-3"
  int64_t catalog_version = 0;
  // Events as Unix timestamps (0: never, so `time() - x > N` fires for a peer never heard).
  double last_heartbeat_answer_timestamp_s = 0;
  // State gauges.
  bool apply_stopped = false;             // this node's apply of the peer's changes stopped
  bool writes_open = false;               // the application's writes are open here (or unfenced)
  bool version_error = false;             // status's version_error is set
  std::optional<double> clock_skew_s;     // none before the first answer
  std::optional<bool> witness_reachable;  // none without heartbeat.witness or before a ping
  uint64_t role_changes = 0;
  uint64_t hook_failures = 0;

  // The process (Prometheus's standard names); none where /proc could not tell.
  struct Process {
    double cpu_seconds = 0;
    double resident_memory_bytes = 0;
    double virtual_memory_bytes = 0;
    double start_time_seconds = 0;
    double open_fds = 0;
    double max_fds = 0;
  };
  std::optional<Process> process;
};

// Every metric is named mpfailover_*, its unit in the name (_seconds, _bytes, _total for
// counters). A value that is unknown (an optional without a value) leaves its metric without a
// sample: HELP and TYPE stay, so the name is still discoverable; absent() alerts on it.
std::string render_metrics(const MetricsValues& values);

}  // namespace mpf::server
