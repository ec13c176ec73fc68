#include <array>
#include <cmath>
#include <cstdio>
#include <string_view>

#include <mpf/server/metrics_text.hpp>

namespace mpf::server {
namespace {

// The labels every state gauge always has, so a PromQL query sees 0 for the states the node is
// not in instead of no series. A value outside the list (a newer daemon's word) still shows.
constexpr std::array<std::string_view, 6> kRoles = {"starting", "standby",  "promoting",
                                                    "active",   "demoting", "standalone"};
constexpr std::array<std::string_view, 4> kPeerStates = {"unknown", "up", "service_down",
                                                         "unreachable"};

class Writer {
 public:
  void head(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, double v, std::string_view labels = {}) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += number(v);
    out_ += '\n';
  }
  void sample(std::string_view name, uint64_t v) {
    out_ += name;
    out_ += ' ';
    out_ += std::to_string(v);
    out_ += '\n';
  }
  void sample(std::string_view name, int64_t v) {
    out_ += name;
    out_ += ' ';
    out_ += std::to_string(v);
    out_ += '\n';
  }
  void gauge(std::string_view name, std::string_view help, double v) {
    head(name, "gauge", help);
    sample(name, v);
  }
  void gauge(std::string_view name, std::string_view help, int64_t v) {
    head(name, "gauge", help);
    sample(name, v);
  }
  void gauge(std::string_view name, std::string_view help, const std::optional<double>& v) {
    head(name, "gauge", help);
    if (v) sample(name, *v);
  }
  void counter(std::string_view name, std::string_view help, uint64_t v) {
    head(name, "counter", help);
    sample(name, v);
  }
  // One sample per known value, 1 for `current` and 0 for the rest.
  template <size_t N>
  void state_set(std::string_view name, std::string_view help, std::string_view label,
                 const std::array<std::string_view, N>& known, const std::string& current) {
    head(name, "gauge", help);
    bool seen = false;
    for (auto k : known) {
      seen = seen || k == current;
      sample(name, k == current ? 1.0 : 0.0, std::string(label) + "=\"" + escape(k) + "\"");
    }
    if (!seen && !current.empty()) {
      sample(name, 1.0, std::string(label) + "=\"" + escape(current) + "\"");
    }
  }
  std::string take() { return std::move(out_); }

 private:
  static std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
  }

 public:
  // Label values: backslash, double quote and newline escaped (format 0.0.4).
  static std::string escape(std::string_view s) {
    std::string r;
    for (char c : s) {
      if (c == '\\' || c == '"') {
        r += '\\';
        r += c;
      } else if (c == '\n') {
        r += "\\n";
      } else {
        r += c;
      }
    }
    return r;
  }

 private:
  std::string out_;
};

void render_state(Writer& w, const MetricsValues& v) {
  w.head("mpfailover_build_info", "gauge",
         "Always 1; the labels say which release runs and what it speaks.");
  w.sample("mpfailover_build_info", 1.0,
           "version=\"" + Writer::escape(v.version) + "\",protocol_versions=\"" +
               Writer::escape(v.protocol_versions) + "\",catalog_version=\"" +
               std::to_string(v.catalog_version) + "\"");
  w.gauge("mpfailover_last_heartbeat_answer_timestamp_seconds",
          "When the peer last answered a heartbeat (Unix time; 0: never, so time() - this "
          "fires for a peer that never answered).",
          v.last_heartbeat_answer_timestamp_s);
  const auto& d = v.database;
  w.gauge("mpfailover_last_apply_timestamp_seconds",
          "When a transaction of the peer was last applied here (Unix time; 0: never).",
          d ? std::optional(d->last_apply_timestamp_s) : std::nullopt);
  auto flag = [&](std::string_view name, std::string_view help, bool on) {
    w.gauge(name, help, on ? 1.0 : 0.0);
  };
  flag("mpfailover_apply_blocked",
       "1 while this node's apply of the peer's changes is stopped on a transaction (see "
       "mpfailover skip).",
       v.apply_stopped);
  w.gauge("mpfailover_peer_apply_blocked",
          "1 while the peer's apply is stopped on a transaction of this node.",
          d ? std::optional(d->peer_apply_blocked ? 1.0 : 0.0) : std::nullopt);
  flag("mpfailover_writes_open", "1 while the application's writes are open on this node.",
       v.writes_open);
  flag("mpfailover_version_error",
       "1 while the nodes' versions (protocol, catalog, heartbeat) do not pair (see status).",
       v.version_error);
  w.gauge("mpfailover_clock_skew_seconds",
          "The peer's clock minus this node's, measured from heartbeat answers.", v.clock_skew_s);
  w.gauge("mpfailover_witness_reachable",
          "1 when a witness answered the last ping, 0 when none did (no sample without "
          "heartbeat.witness).",
          v.witness_reachable ? std::optional(*v.witness_reachable ? 1.0 : 0.0) : std::nullopt);
  w.counter("mpfailover_role_changes_total", "Role changes of this node since the daemon started.",
            v.role_changes);
  w.counter("mpfailover_hook_failures_total",
            "Hooks that failed (exit status, timeout, could not start) since the daemon started.",
            v.hook_failures);
}

void render_process(Writer& w, const MetricsValues& v) {
  const auto& p = v.process;
  auto one = [&](std::string_view name, std::string_view type, std::string_view help,
                 double MetricsValues::Process::*field) {
    w.head(name, type, help);
    if (p) w.sample(name, (*p).*field);
  };
  one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
      &MetricsValues::Process::cpu_seconds);
  one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
      &MetricsValues::Process::resident_memory_bytes);
  one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
      &MetricsValues::Process::virtual_memory_bytes);
  one("process_start_time_seconds", "gauge",
      "Start time of the process since unix epoch in seconds.",
      &MetricsValues::Process::start_time_seconds);
  one("process_open_fds", "gauge", "Number of open file descriptors.",
      &MetricsValues::Process::open_fds);
  one("process_max_fds", "gauge", "Maximum number of open file descriptors.",
      &MetricsValues::Process::max_fds);
}

}  // namespace

std::string render_metrics(const MetricsValues& v) {
  Writer w;
  w.state_set("mpfailover_role", "This node's role: 1 for the current role, 0 for the others.",
              "role", kRoles, v.role);
  w.gauge("mpfailover_epoch", "This node's epoch (incremented by every promotion).", v.epoch);
  w.head("mpfailover_fenced", "gauge",
         "1 while this active node is fenced (writes closed until the peer or the arbiter "
         "confirms its epoch), with the reason; 0 otherwise.");
  if (v.fenced) {
    w.sample("mpfailover_fenced", 1.0, "reason=\"" + v.fenced_reason + "\"");
  } else {
    w.sample("mpfailover_fenced", 0.0, "reason=\"\"");
  }
  w.gauge("mpfailover_maintenance",
          "1 while maintenance mode pauses automatic failover and self-fencing on this node.",
          v.maintenance ? 1.0 : 0.0);
  w.state_set("mpfailover_peer_state",
              "The peer's state as heartbeats and pings see it: 1 for the current state.", "state",
              kPeerStates, v.peer_state);
  w.gauge("mpfailover_heartbeat_age_seconds",
          "Seconds since the peer last answered a heartbeat (no sample before its first answer).",
          v.last_heartbeat_age_s);
  w.gauge("mpfailover_replication_lag_seconds",
          "Seconds since everything this node had committed was last acknowledged by the peer "
          "(no sample until it first was).",
          v.lag_s);
  w.head("mpfailover_link_up", "gauge",
         "1 while a replication session is established, per direction.");
  w.sample("mpfailover_link_up", v.outbound_up ? 1.0 : 0.0, "direction=\"outbound\"");
  w.sample("mpfailover_link_up", v.inbound_up ? 1.0 : 0.0, "direction=\"inbound\"");
  w.head("mpfailover_protocol_version", "gauge",
         "The replication protocol version the session agreed on, per direction (no sample while "
         "it is down); a rolling upgrade is over when both show the new release's version.");
  if (v.outbound_protocol_version) {
    w.sample("mpfailover_protocol_version", *v.outbound_protocol_version, "direction=\"outbound\"");
  }
  if (v.inbound_protocol_version) {
    w.sample("mpfailover_protocol_version", *v.inbound_protocol_version, "direction=\"inbound\"");
  }
  w.counter("mpfailover_sent_bytes_total", "Frame bytes sent to the peer by the shipper.",
            v.sent_bytes);
  w.counter("mpfailover_received_bytes_total",
            "Frame bytes received from the peer by the receiver.", v.received_bytes);
  w.counter("mpfailover_sent_transactions_total", "Transactions shipped to the peer.",
            v.sent_transactions);
  w.counter("mpfailover_applied_transactions_total",
            "The peer's transactions applied here (its rate is the apply rate).",
            v.applied_transactions);
  w.counter("mpfailover_reconnects_total",
            "Replication sessions to the peer started after the first one.", v.reconnects);
  w.counter("mpfailover_dropped_frames_total",
            "Frames the receiver dropped: garbage, foreign or out of order.", v.dropped_frames);

  const auto& d = v.database;
  auto db_gauge = [&](std::string_view name, std::string_view help, int64_t value) {
    w.head(name, "gauge", help);
    if (d) w.sample(name, value);
  };
  db_gauge("mpfailover_backlog_transactions",
           "Transactions captured here and not yet acknowledged by the peer.",
           d ? d->backlog_transactions : 0);
  db_gauge("mpfailover_backlog_rows", "Changes (log rows) waiting for the peer.",
           d ? d->backlog_rows : 0);
  db_gauge("mpfailover_backlog_bytes", "Size of the changes waiting for the peer.",
           d ? d->backlog_bytes : 0);
  w.gauge("mpfailover_backlog_oldest_age_seconds",
          "Age of the oldest change waiting for the peer (no sample when nothing waits).",
          d ? d->backlog_oldest_age_s : std::nullopt);
  w.head("mpfailover_conflicts_total", "counter",
         "Changes reconciliation overrode on this node (rows of mpfailover.conflict).");
  if (d) w.sample("mpfailover_conflicts_total", d->conflicts);
  w.gauge("mpfailover_database_sample_age_seconds",
          "Age of the backlog and conflict numbers (sampled every few seconds).",
          d ? std::optional(d->sample_age_s) : std::nullopt);
  w.gauge("mpfailover_database_sample_duration_seconds",
          "How long reading the backlog and conflict numbers took.",
          d ? std::optional(d->sample_duration_s) : std::nullopt);
  w.counter("mpfailover_database_sample_errors_total",
            "Samples of the backlog and conflict numbers that failed (see the log).",
            v.database_errors);
  render_state(w, v);
  render_process(w, v);
  return w.take();
}

}  // namespace mpf::server
