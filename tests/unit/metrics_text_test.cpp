// render_metrics: the Prometheus text exposition format 0.0.4 from a plain struct.
#include <map>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include <mpf/heartbeat/peer_monitor.hpp>
#include <mpf/heartbeat/role_machine.hpp>
#include <mpf/server/metrics_text.hpp>

using mpf::server::MetricsValues;
using mpf::server::render_metrics;

namespace {

MetricsValues sample_values() {
  MetricsValues v;
  v.role = "active";
  v.epoch = 7;
  v.peer_state = "up";
  v.last_heartbeat_age_s = 1.5;
  v.lag_s = 0.25;
  v.outbound_up = true;
  v.outbound_protocol_version = 2;  // inbound down: no sample
  v.sent_bytes = 123456789012ull;
  v.received_bytes = 42;
  v.sent_transactions = 9;
  v.applied_transactions = 11;
  v.reconnects = 3;
  v.dropped_frames = 2;
  MetricsValues::Database d;
  d.backlog_transactions = 5;
  d.backlog_rows = 8;
  d.backlog_bytes = 4096;
  d.backlog_oldest_age_s = 12.5;
  d.conflicts = 4;
  d.sample_age_s = 2;
  d.sample_duration_s = 0.003;
  v.database = d;
  v.database_errors = 1;
  return v;
}

struct Parsed {
  std::map<std::string, std::string> help;
  std::map<std::string, std::string> type;
  std::map<std::string, std::string> samples;  // "name{labels}" -> value text
  std::vector<std::string> bad_lines;
};

// A strict reading of the format: comment lines are "# HELP name text" or "# TYPE name type",
// every sample's metric has had its TYPE line before it, values parse as numbers.
Parsed parse(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      const auto rest = line.substr(7);
      const auto sp = rest.find(' ');
      p.help[rest.substr(0, sp)] = sp == std::string::npos ? "" : rest.substr(sp + 1);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const auto rest = line.substr(7);
      const auto sp = rest.find(' ');
      p.type[rest.substr(0, sp)] = rest.substr(sp + 1);
      continue;
    }
    const auto sp = line.rfind(' ');
    if (line.empty() || line[0] == '#' || sp == std::string::npos) {
      p.bad_lines.push_back(line);
      continue;
    }
    const std::string series = line.substr(0, sp);
    const std::string name = series.substr(0, series.find('{'));
    if (!p.type.count(name) || name.rfind("mpfailover_", 0) != 0) p.bad_lines.push_back(line);
    try {
      const std::string value = line.substr(sp + 1);
      if (value != "NaN" && value != "+Inf" && value != "-Inf") (void)std::stod(value);
      p.samples[series] = value;
    } catch (const std::exception&) {
      p.bad_lines.push_back(line);
    }
  }
  return p;
}

}  // namespace

TEST_CASE("every metric has HELP and TYPE, a unit-bearing name, and well-formed samples") {
  const auto text = render_metrics(sample_values());
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  const auto p = parse(text);
  CHECK(p.bad_lines.empty());
  for (const auto& [name, type] : p.type) {
    CAPTURE(name);
    CHECK(p.help.count(name) == 1);
    CHECK(!p.help.at(name).empty());
    CHECK((type == "gauge" || type == "counter"));
    if (type == "counter") CHECK(name.size() > 6);
    if (type == "counter") CHECK(name.substr(name.size() - 6) == "_total");
  }
  CHECK(p.type.size() == p.help.size());
}

TEST_CASE("the values land in their metrics") {
  const auto p = parse(render_metrics(sample_values()));
  const std::map<std::string, std::string> expected = {
      {"mpfailover_epoch", "7"},
      {"mpfailover_heartbeat_age_seconds", "1.5"},
      {"mpfailover_replication_lag_seconds", "0.25"},
      {"mpfailover_link_up{direction=\"outbound\"}", "1"},
      {"mpfailover_link_up{direction=\"inbound\"}", "0"},
      {"mpfailover_protocol_version{direction=\"outbound\"}", "2"},
      {"mpfailover_sent_bytes_total", "123456789012"},
      {"mpfailover_received_bytes_total", "42"},
      {"mpfailover_sent_transactions_total", "9"},
      {"mpfailover_applied_transactions_total", "11"},
      {"mpfailover_reconnects_total", "3"},
      {"mpfailover_dropped_frames_total", "2"},
      {"mpfailover_backlog_transactions", "5"},
      {"mpfailover_backlog_rows", "8"},
      {"mpfailover_backlog_bytes", "4096"},
      {"mpfailover_backlog_oldest_age_seconds", "12.5"},
      {"mpfailover_conflicts_total", "4"},
      {"mpfailover_database_sample_age_seconds", "2"},
      {"mpfailover_database_sample_duration_seconds", "0.003"},
      {"mpfailover_database_sample_errors_total", "1"},
  };
  for (const auto& [series, value] : expected) {
    CAPTURE(series);
    REQUIRE(p.samples.count(series) == 1);
    CHECK(p.samples.at(series) == value);
  }
  CHECK(p.type.at("mpfailover_applied_transactions_total") == "counter");
  CHECK(p.type.at("mpfailover_backlog_transactions") == "gauge");
  CHECK(p.samples.count("mpfailover_protocol_version{direction=\"inbound\"}") == 0);
}

TEST_CASE("role and peer state are one gauge per label, 1 for the current one only") {
  auto v = sample_values();
  using mpf::heartbeat::PeerState;
  using mpf::heartbeat::Role;
  // Every word the heartbeat core can say has its series, so a query sees 0 rather than nothing.
  for (Role r : {Role::kStarting, Role::kStandby, Role::kPromoting, Role::kActive, Role::kDemoting,
                 Role::kStandalone}) {
    v.role = std::string(mpf::heartbeat::to_string(r));
    for (PeerState s :
         {PeerState::kUnknown, PeerState::kUp, PeerState::kServiceDown, PeerState::kUnreachable}) {
      v.peer_state = std::string(mpf::heartbeat::to_string(s));
      CAPTURE(v.role);
      CAPTURE(v.peer_state);
      const auto p = parse(render_metrics(v));
      int roles = 0, ones = 0;
      for (const auto& [series, value] : p.samples) {
        if (series.rfind("mpfailover_role{", 0) != 0) continue;
        ++roles;
        if (value == "1") {
          ++ones;
          CHECK(series == "mpfailover_role{role=\"" + v.role + "\"}");
        }
      }
      CHECK(roles == 6);
      CHECK(ones == 1);
      int states = 0;
      ones = 0;
      for (const auto& [series, value] : p.samples) {
        if (series.rfind("mpfailover_peer_state{", 0) != 0) continue;
        ++states;
        if (value == "1") {
          ++ones;
          CHECK(series == "mpfailover_peer_state{state=\"" + v.peer_state + "\"}");
        }
      }
      CHECK(states == 4);
      CHECK(ones == 1);
    }
  }
}

TEST_CASE("a role the renderer does not know still shows, escaped") {
  auto v = sample_values();
  v.role = "new\"role\\x";
  const auto p = parse(render_metrics(v));
  CHECK(p.samples.at("mpfailover_role{role=\"new\\\"role\\\\x\"}") == "1");
  CHECK(p.samples.at("mpfailover_role{role=\"active\"}") == "0");
}

TEST_CASE("unknown values leave their metric without a sample but keep HELP and TYPE") {
  auto v = sample_values();
  v.last_heartbeat_age_s.reset();
  v.lag_s.reset();
  v.database.reset();
  const auto p = parse(render_metrics(v));
  CHECK(p.bad_lines.empty());
  for (const char* name :
       {"mpfailover_heartbeat_age_seconds", "mpfailover_replication_lag_seconds",
        "mpfailover_backlog_transactions", "mpfailover_backlog_rows", "mpfailover_backlog_bytes",
        "mpfailover_backlog_oldest_age_seconds", "mpfailover_conflicts_total",
        "mpfailover_database_sample_age_seconds"}) {
    CAPTURE(name);
    CHECK(p.type.count(name) == 1);
    CHECK(p.samples.count(name) == 0);
  }
  CHECK(p.samples.at("mpfailover_database_sample_errors_total") == "1");

  auto empty_backlog = sample_values();
  empty_backlog.database->backlog_oldest_age_s.reset();
  const auto q = parse(render_metrics(empty_backlog));
  CHECK(q.samples.count("mpfailover_backlog_oldest_age_seconds") == 0);
  CHECK(q.samples.at("mpfailover_backlog_transactions") == "5");
}

TEST_CASE("self-fencing and maintenance mode show, the fence with its reason (issue #18)") {
  auto v = sample_values();
  v.fenced = true;
  v.fenced_reason = "peer_and_witness_silent";
  v.maintenance = true;
  const auto p = parse(render_metrics(v));
  CHECK(p.bad_lines.empty());
  CHECK(p.samples.at("mpfailover_fenced{reason=\"peer_and_witness_silent\"}") == "1");
  CHECK(p.samples.at("mpfailover_maintenance") == "1");
  v.fenced = false;
  v.maintenance = false;
  const auto q = parse(render_metrics(v));
  CHECK(q.samples.at("mpfailover_fenced{reason=\"\"}") == "0");
  CHECK(q.samples.at("mpfailover_maintenance") == "0");
}
