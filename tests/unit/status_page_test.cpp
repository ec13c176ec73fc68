// The status page's pure parts (docs/monitoring.md "The status page"): the ring of the last
// hour's samples (backlog and apply rate) and the page's JSON, whose `list` must be exactly
// `mpfailover list --json`'s object (the same function makes both).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <mpf/server/pair_view.hpp>
#include <mpf/server/sample_ring.hpp>
#include <mpf/server/status_page.hpp>

using json = nlohmann::json;
using mpf::server::SampleRing;

namespace {

mpf::server::Config config() {
  mpf::server::Config c;
  c.node.name = "a";
  c.peer.name = "b";
  c.peer.address = "198.18.0.12";
  c.replication.listen = "198.18.0.11";
  c.replication.port = 2008;
  return c;
}

// Node a (active) with its peer b up, as status --json says it.
json status_a() {
  return json{{"node", "a"},
              {"peer", "b"},
              {"role", "active"},
              {"epoch", 4},
              {"writes", "open"},
              {"peer_state", "up"},
              {"peer_role", "standby"},
              {"peer_epoch", 4},
              {"last_heartbeat_age_s", 0.4},
              {"lag_s", 0.25},
              {"maintenance", false},
              {"fenced", false},
              {"backlog",
               {{"transactions", 7},
                {"rows", 9},
                {"bytes", 1234},
                {"oldest_age_s", 2.5},
                {"sample_age_s", 1.0}}},
              {"link", {{"outbound", "up"}, {"inbound", "up"}, {"reconnects", 0}}},
              {"peer_facts",
               {{"writes", "closed"},
                {"lag_s", 0.1},
                {"backlog_transactions", 0},
                {"link", {{"outbound", "up"}, {"inbound", "up"}}},
                {"maintenance", false},
                {"fenced", true}}},
              {"peer_facts_age_s", 0.4},
              {"software_version", "1.2.0"},
              {"protocol_versions", "1-3"},
              {"catalog_version", 6},
              {"peer_software_version", "1.2.0"},
              {"peer_catalog_version", 6},
              {"version_error", nullptr},
              {"clock_skew_ms", 3}};
}

}  // namespace

TEST_SUITE("status_page") {
  TEST_CASE("the ring keeps the newest samples, oldest first, and forgets the rest") {
    SampleRing ring(3, 10);
    CHECK(ring.size() == 0);
    CHECK(ring.samples().empty());
    for (int i = 0; i < 5; ++i) CHECK(ring.record(100 + 10 * i, i, 0));
    CHECK(ring.size() == 3);
    CHECK(ring.capacity() == 3);
    const auto s = ring.samples();
    REQUIRE(s.size() == 3);
    CHECK(s[0].t == 120);
    CHECK(s[0].backlog == 2);
    CHECK(s[2].t == 140);
    CHECK(s[2].backlog == 4);
  }

  TEST_CASE("the default ring holds one hour of 10 s samples") {
    SampleRing ring;
    CHECK(ring.capacity() == 360);
    CHECK(ring.interval() == 10);
    for (int i = 0; i < 1000; ++i) ring.record(i * 10.0, i, static_cast<uint64_t>(i) * 5);
    const auto s = ring.samples();
    REQUIRE(s.size() == 360);
    CHECK(s.front().t == 6400);
    CHECK(s.back().t == 9990);
    CHECK(s.back().t - s.front().t == doctest::Approx(3590));
    CHECK(*s.back().apply_rate == doctest::Approx(0.5));
  }

  TEST_CASE("the apply rate is the counter's increase over the interval") {
    SampleRing ring(10, 10);
    ring.record(1000, 0, 50);
    ring.record(1010, 3, 80);   // 30 in 10 s
    ring.record(1020, 5, 80);   // none
    ring.record(1031, 5, 102);  // a late tick: 22 in 11 s
    const auto s = ring.samples();
    REQUIRE(s.size() == 4);
    CHECK_FALSE(s[0].apply_rate.has_value());  // nothing to compare with
    CHECK(*s[1].apply_rate == doctest::Approx(3.0));
    CHECK(*s[2].apply_rate == doctest::Approx(0.0));
    CHECK(*s[3].apply_rate == doctest::Approx(2.0));
  }

  TEST_CASE("no rate after a gap, or when the counter went back; a clock stepped back is ignored") {
    SampleRing ring(10, 10);
    ring.record(1000, 1, 10);
    ring.record(1100, 1, 1010);  // 100 s later: the daemon stalled, not this interval's rate
    ring.record(1110, 1, 5);     // the counter went back
    ring.record(1120, 1, 25);
    CHECK_FALSE(ring.record(1115, 1, 30));  // before the newest sample
    CHECK_FALSE(ring.record(1120, 1, 30));  // the same time
    const auto s = ring.samples();
    REQUIRE(s.size() == 4);
    CHECK_FALSE(s[1].apply_rate.has_value());
    CHECK_FALSE(s[2].apply_rate.has_value());
    CHECK(*s[3].apply_rate == doctest::Approx(2.0));
  }

  TEST_CASE("an unknown backlog stays unknown, and the JSON says null") {
    SampleRing ring(4, 10);
    ring.record(10, std::nullopt, 0);
    ring.record(20, 12, 4);
    const auto j = json::parse(ring.to_json().dump());
    CHECK(j["interval_s"] == 10);
    CHECK(j["capacity"] == 4);
    REQUIRE(j["points"].size() == 2);
    CHECK(j["points"][0]["t"] == 10);
    CHECK(j["points"][0]["backlog"].is_null());
    CHECK(j["points"][0]["apply_rate"].is_null());
    CHECK(j["points"][1]["backlog"] == 12);
    CHECK(j["points"][1]["apply_rate"].get<double>() == doctest::Approx(0.4));
  }

  TEST_CASE("the page's list is list --json's object, with the versions, samples and events") {
    const auto cfg = config();
    const auto s = status_a();
    SampleRing ring(360, 10);
    ring.record(990, 3, 0);
    ring.record(1000, 7, 20);
    mpf::server::RecentEvents events;
    mpf::server::HistoryList h;
    mpf::server::HistoryEvent e;
    e.node = "a";
    e.event = "failover";
    e.role_from = "standby";
    e.role_to = "active";
    e.epoch = 4;
    e.who = "root (uid 0)";
    e.why = "operator_failover";
    e.at = "2026-12-03T10:00:00+00:00";
    h.events.push_back(e);
    events.history = h;
    mpf::server::ConflictList c;
    mpf::server::ConflictRecord r;
    r.id = 3;
    r.detected_at = "2026-12-03T10:01:00+00:00";
    r.table = "public.users";
    r.key_text = "id=42";
    r.kind = "lww";
    r.winner_origin = "b";
    r.loser_origin = "a";
    r.loser_image = "{a huge row}";
    r.reason = "newer";
    c.conflicts.push_back(r);
    events.conflicts = c;

    const auto page =
        json::parse(mpf::server::status_page_json(cfg, s, ring, events, 1001.5).dump());
    // The very object `list --json` prints, not a look-alike.
    CHECK(page["list"] == json::parse(mpf::server::pair_view_json(cfg, s).dump()));
    CHECK(page["generated_at"] == 1001.5);
    const auto& nodes = page["list"]["nodes"];
    REQUIRE(nodes.size() == 2);
    CHECK(nodes[0]["name"] == "a");
    CHECK(nodes[0]["role"] == "active");
    CHECK(nodes[0]["backlog_transactions"] == 7);
    CHECK(nodes[0]["address"] == "198.18.0.11:2008");
    CHECK(nodes[1]["name"] == "b");
    CHECK(nodes[1]["role"] == "standby");
    CHECK(nodes[1]["fenced"] == true);
    CHECK(nodes[1]["address"] == "198.18.0.12:2008");
    CHECK(page["list"]["healthy"] == true);

    CHECK(page["versions"]["software_version"] == "1.2.0");
    CHECK(page["versions"]["catalog_version"] == 6);
    CHECK(page["versions"]["peer_catalog_version"] == 6);
    CHECK(page["versions"]["peer_protocol_versions"].is_null());  // not in this status
    CHECK(page["details"]["backlog"]["bytes"] == 1234);
    CHECK(page["details"]["clock_skew_ms"] == 3);

    CHECK(page["samples"]["points"].size() == 2);
    CHECK(page["samples"]["points"][1]["apply_rate"].get<double>() == doctest::Approx(2.0));

    REQUIRE(page["history"]["events"].size() == 1);
    CHECK(page["history"]["events"][0]["event"] == "failover");
    CHECK(page["history"]["events"][0]["role_to"] == "active");
    REQUIRE(page["conflicts"]["conflicts"].size() == 1);
    CHECK(page["conflicts"]["conflicts"][0]["key"] == "id=42");
    CHECK(page["conflicts"]["conflicts"][0]["winner_origin"] == "b");
    CHECK_FALSE(page["conflicts"]["conflicts"][0].contains("loser_image"));  // rows stay out
    CHECK(page["events_error"].is_null());
  }

  TEST_CASE("a peer that does not answer: unknown, not guessed; events not read yet: null") {
    auto s = status_a();
    s["peer_state"] = "unreachable";
    s["link"]["outbound"] = "down";
    SampleRing ring;
    mpf::server::RecentEvents events;
    events.error = "could not read the history: connection refused";
    const auto page =
        json::parse(mpf::server::status_page_json(config(), s, ring, events, 5).dump());
    const auto& b = page["list"]["nodes"][1];
    CHECK(b["state"] == "unreachable");
    CHECK(b["role"].is_null());
    CHECK(b["last_known_role"] == "standby");
    CHECK(b["backlog_transactions"].is_null());
    CHECK(page["list"]["healthy"] == false);
    CHECK(page["list"]["nodes"][0]["link"]["outbound"] == "down");
    CHECK(page["samples"]["points"].empty());
    CHECK(page["history"].is_null());
    CHECK(page["conflicts"].is_null());
    CHECK(page["events_error"] == "could not read the history: connection refused");
  }

  TEST_CASE("the page is self-contained: no external asset, and it fetches status.json") {
    const std::string html(mpf::server::status_page_html());
    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("</html>") != std::string::npos);
    CHECK(html.find("fetch(\"status.json\"") != std::string::npos);
    for (const char* external : {"http://", "https://", "//cdn", "src=\"", "@import", "url("}) {
      // The SVG namespace is a name, not something fetched.
      std::string rest = html;
      for (size_t at; (at = rest.find("http://www.w3.org/2000/svg")) != std::string::npos;) {
        rest.erase(at, 26);
      }
      CHECK_MESSAGE(rest.find(external) == std::string::npos, external);
    }
    // Values are written as text, never parsed as HTML.
    CHECK(html.find("innerHTML") == std::string::npos);
  }
}
