// The pure parts of the operator tools: the facts a Beat carries for the peer's `list`, the
// pair's health rule (list and status exit codes), the health endpoints' verdicts, and the
// history event a role change's reason belongs to.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <mpf/heartbeat/heartbeat_message.hpp>
#include <mpf/heartbeat/node_facts.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/pair_health.hpp>

using json = nlohmann::json;
using mpf::heartbeat::decode_facts;
using mpf::heartbeat::encode_facts;
using mpf::heartbeat::NodeFacts;

namespace {

// A healthy pair as node a (active) sees it.
json healthy_active() {
  return json{{"node", "a"},
              {"peer", "b"},
              {"role", "active"},
              {"writes", "open"},
              {"peer_state", "up"},
              {"peer_role", "standby"},
              {"peer_facts", {{"writes", "closed"}}},
              {"link", {{"outbound", "up"}, {"inbound", "up"}}},
              {"version_error", nullptr}};
}

}  // namespace

TEST_SUITE("ops_tools") {
  TEST_CASE("facts survive the round trip through a Beat's note") {
    NodeFacts f;
    f.writes = "closed";
    f.lag_s = 0.25;
    f.backlog_transactions = 12;
    f.backlog_bytes = 3456;
    f.outbound_up = true;
    f.inbound_up = false;
    f.standalone = true;
    f.automatic_failover = true;
    const auto note = encode_facts(f);
    CHECK(note.rfind("facts1 ", 0) == 0);
    auto back = decode_facts(note);
    REQUIRE(back);
    CHECK(*back == f);

    // ... and inside a real heartbeat frame.
    mpf::heartbeat::HeartbeatMessage m;
    m.status.node = "a";
    m.status.target = "b";
    m.note = note;
    auto decoded = mpf::heartbeat::decode_heartbeat(mpf::heartbeat::encode(m));
    REQUIRE(decoded);
    CHECK(decode_facts(decoded->note) == f);
  }

  TEST_CASE("unknown facts stay unknown; other notes are not facts") {
    NodeFacts f;
    f.writes = "open";
    auto back = decode_facts(encode_facts(f));
    REQUIRE(back);
    CHECK_FALSE(back->lag_s);
    CHECK_FALSE(back->backlog_transactions);
    CHECK_FALSE(back->outbound_up);
    CHECK_FALSE(decode_facts(""));
    CHECK_FALSE(decode_facts("heartbeat protocol 2 is not supported"));
    CHECK_FALSE(decode_facts("facts1x writes=open"));
    // A later release's keys are ignored, malformed values left unknown.
    auto later = decode_facts("facts1 writes=open lag_s=abc backlog_tx=7 colour=blue");
    REQUIRE(later);
    CHECK(later->writes == "open");
    CHECK_FALSE(later->lag_s);
    CHECK(later->backlog_transactions == 7);
    // A value that is not a plain word never travels or lands.
    f.writes = "open writes=closed";
    CHECK(decode_facts(encode_facts(f))->writes == "unknown");
  }

  TEST_CASE("pair_health: healthy pair, and each way it is not") {
    CHECK(mpf::server::pair_health(healthy_active()).healthy);
    CHECK(mpf::server::pair_health(healthy_active()).problems.empty());

    auto s = healthy_active();
    s["peer_state"] = "unreachable";
    auto h = mpf::server::pair_health(s);
    CHECK_FALSE(h.healthy);
    REQUIRE(h.problems.size() == 1);
    CHECK(h.problems[0] == "peer b is unreachable");

    s = healthy_active();
    s["peer_role"] = "active";
    s["peer_facts"]["writes"] = "open";
    CHECK(mpf::server::pair_health(s).problems ==
          std::vector<std::string>{"both nodes are active"});

    s = healthy_active();
    s["role"] = "standby";
    s["writes"] = "closed";
    s["peer_role"] = "standby";
    CHECK(mpf::server::pair_health(s).problems ==
          std::vector<std::string>{"no node is active (both are standby)"});

    s = healthy_active();
    s["role"] = "standalone";
    CHECK_FALSE(mpf::server::pair_health(s).healthy);

    s = healthy_active();
    s["link"]["inbound"] = "down";
    CHECK(mpf::server::pair_health(s).problems ==
          std::vector<std::string>{"replication inbound of node a is down"});

    s = healthy_active();
    s["writes"] = "closed";
    CHECK(mpf::server::pair_health(s).problems ==
          std::vector<std::string>{"node a is active but its writes are closed"});

    s = healthy_active();
    s["peer_facts"]["writes"] = "open";
    CHECK(mpf::server::pair_health(s).problems ==
          std::vector<std::string>{"node b is standby but its writes are open"});

    s = healthy_active();
    s["version_error"] = "no protocol version in common";
    CHECK_FALSE(mpf::server::pair_health(s).healthy);

    // Unfenced (node.app_role unset) is a configuration choice, not a failure.
    s = healthy_active();
    s["writes"] = "unfenced";
    s["peer_facts"]["writes"] = "unfenced";
    CHECK(mpf::server::pair_health(s).healthy);
  }

  TEST_CASE("health endpoints: /active, /standby, /health") {
    auto s = healthy_active();
    CHECK(mpf::server::health_endpoint("/active", s)->code == 200);
    CHECK(mpf::server::health_endpoint("/standby", s)->code == 503);
    CHECK(mpf::server::health_endpoint("/health", s)->code == 200);
    CHECK_FALSE(mpf::server::health_endpoint("/metrics", s));
    CHECK_FALSE(mpf::server::health_endpoint("/", s));
    auto body = json::parse(mpf::server::health_endpoint("/standby", s)->body);
    CHECK(body["ok"] == false);
    CHECK(body["role"] == "active");
    CHECK(body["problems"][0] == "role is active, not standby");

    // The survivor stays healthy for keepalived when its peer is gone.
    s["peer_state"] = "unreachable";
    CHECK(mpf::server::health_endpoint("/health", s)->code == 200);
    CHECK(mpf::server::health_endpoint("/active", s)->code == 200);

    s["writes"] = "closed";  // active with closed writes: not serving
    CHECK(mpf::server::health_endpoint("/active", s)->code == 503);
    CHECK(mpf::server::health_endpoint("/health", s)->code == 503);

    s = healthy_active();
    s["role"] = "promoting";
    CHECK(mpf::server::health_endpoint("/health", s)->code == 503);
    CHECK(mpf::server::health_endpoint("/active", s)->code == 503);
  }

  TEST_CASE("a role change's reason names its history event") {
    using mpf::server::history_event_for_reason;
    CHECK(history_event_for_reason("operator_failover") == "failover");
    CHECK(history_event_for_reason("automatic_failover") == "failover");
    CHECK(history_event_for_reason("operator_switchover") == "switchover");
    CHECK(history_event_for_reason("handover") == "switchover");
    CHECK(history_event_for_reason("backlog_drained") == "switchover");
    CHECK(history_event_for_reason("operator_standalone") == "standalone");
    CHECK(history_event_for_reason("operator_join") == "join");
    CHECK(history_event_for_reason("persisted") == "role_change");
    CHECK(history_event_for_reason("peer_active_higher_epoch") == "role_change");
  }
}
