// The status page (docs/monitoring.md "The status page") in a real headless browser (Debian's
// chromium) against two real daemons on loopback: the page loads with no console message at all
// (the page logs nothing; a script error, a refused resource or a CSP violation would show), the
// numbers it drew (copied into data- attributes) are `mpfailover list --json`'s at the same
// moment, and during a link cut (the peer daemon killed) it shows the peer gone, the link down,
// the pair unhealthy and the backlog growing. Screenshots are kept as artifacts in the build
// directory: status_page.png (healthy) and status_page_cut.png.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "support/http_client.hpp"
#include "support/loopback_pair.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::eventually;
using mpf::test::LoopbackPair;
using mpf::test::LoopbackPairOptions;

namespace {

std::string chromium_path() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

struct Browser {
  std::string dom;
  std::string log;  // chromium's stderr: console messages are its "INFO:CONSOLE" lines
  int rc = -1;
};

// One headless chromium run against `url`: the DOM after a few seconds of the page's own time
// (fetches complete within it), or a screenshot into `screenshot`.
Browser browse(const std::string& url, const std::string& profile,
               const std::string& screenshot = "") {
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
      " --disable-extensions"
      " --hide-scrollbars --window-size=1280,1000 --enable-logging=stderr --v=0"
      " --virtual-time-budget=4000 --user-data-dir=" +
      profile;
  const std::string action = screenshot.empty() ? " --dump-dom" : " --screenshot=" + screenshot;
  auto r =
      mpf::test::run_split("timeout 60 " + chromium_path() + flags + action + " '" + url + "'");
  return Browser{r.out, r.err, r.rc};
}

std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
  }
  return out;
}

// The attributes of the first element `tag` whose attribute `key` is `value`.
std::map<std::string, std::string> element(const std::string& dom, const std::string& tag,
                                           const std::string& key, const std::string& value) {
  const std::regex open("<" + tag + "\\b([^>]*)>");
  const std::regex attr(R"(([a-zA-Z-]+)="([^"]*)\")");
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), open); it != std::sregex_iterator();
       ++it) {
    std::map<std::string, std::string> attrs;
    const std::string inner = (*it)[1];
    for (auto a = std::sregex_iterator(inner.begin(), inner.end(), attr);
         a != std::sregex_iterator(); ++a) {
      std::string v = (*a)[2];
      // The serializer escapes these in attribute values.
      for (auto [from, to] : {std::pair{"&quot;", "\""}, std::pair{"&lt;", "<"},
                              std::pair{"&gt;", ">"}, std::pair{"&amp;", "&"}}) {
        for (size_t at; (at = v.find(from)) != std::string::npos;) v.replace(at, strlen(from), to);
      }
      attrs[(*a)[1]] = v;
    }
    if (attrs.count(key) && attrs[key] == value) return attrs;
  }
  return {};
}

// What the page wrote for a value: a string as is, anything else as JSON.
std::string as_attr(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The node row's figures that do not move by themselves between two looks (lag does).
std::map<std::string, std::string> stable(const json& n) {
  return {{"data-node", as_attr(n["name"])},
          {"data-role", as_attr(n["role"])},
          {"data-epoch", as_attr(n["epoch"])},
          {"data-writes", as_attr(n["writes"])},
          {"data-state", as_attr(n["state"])},
          {"data-link-out", n["link"].is_object() ? as_attr(n["link"]["outbound"]) : "null"},
          {"data-link-in", n["link"].is_object() ? as_attr(n["link"]["inbound"]) : "null"},
          {"data-backlog", as_attr(n["backlog_transactions"])},
          {"data-maintenance", as_attr(n["maintenance"])},
          {"data-fenced", as_attr(n["fenced"])}};
}

std::map<std::string, std::string> stable_from_dom(const std::map<std::string, std::string>& row) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : row) {
    if (k != "data-lag" && k != "data-self") out[k] = v;
  }
  return out;
}

std::string dump(const std::map<std::string, std::string>& m) {
  std::string s;
  for (const auto& [k, v] : m) s += k + "=" + v + " ";
  return s;
}

// The page's rows equal `list --json`'s, taken just before and just after the browser looked
// (when the two lists differ, something moved meanwhile: look again, up to three times).
bool page_matches_list(const LoopbackPair& pair, const std::string& url, const std::string& profile,
                       Browser& seen, json& list) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto before = json::parse(pair.cli("a", "list --json").out);
    seen = browse(url, profile);
    list = json::parse(pair.cli("a", "list --json").out);
    bool same = true;
    for (int i = 0; i < 2; ++i)
      same = same && stable(before["nodes"][i]) == stable(list["nodes"][i]);
    if (!same) continue;
    bool match = true;
    for (const auto& n : list["nodes"]) {
      const auto row = element(seen.dom, "tr", "data-node", n["name"].get<std::string>());
      const auto want = stable(n);
      const auto got = stable_from_dom(row);
      if (got != want) {
        MESSAGE("page: " << dump(got) << "\nlist: " << dump(want));
        match = false;
      }
      // Lag moves with the clock: the page's is the list's within a few seconds.
      if (row.count("data-lag") && !n["lag_s"].is_null() && row.at("data-lag") != "null") {
        CHECK(std::abs(std::stod(row.at("data-lag")) - n["lag_s"].get<double>()) < 5.0);
      }
    }
    if (match) return true;
  }
  return false;
}

void insert_users(const LoopbackPair& pair, int n, const std::string& prefix) {
  pqxx::connection c(pair.db_a.conninfo());
  for (int i = 0; i < n; ++i) {
    pqxx::work tx(c);  // one transaction each: the backlog counts transactions
    tx.exec("INSERT INTO users (login) VALUES ('" + prefix + std::to_string(i) + "')");
    tx.commit();
  }
}

// list --json without the figures that move with the clock by themselves.
json still(json list) {
  for (auto& n : list["nodes"]) {
    for (const char* k : {"lag_s", "last_heartbeat_age_s", "facts_age_s"}) n.erase(k);
  }
  return list;
}

int64_t list_backlog(const json& list) {
  const auto& b = list["nodes"][0]["backlog_transactions"];
  return b.is_number() ? b.get<int64_t>() : -1;
}

}  // namespace

TEST_SUITE("status_page") {
  TEST_CASE("the page in a real browser: list --json's numbers, no console message, a cut shown") {
    const std::string chromium = chromium_path();
    REQUIRE_MESSAGE(!chromium.empty(),
                    "chromium is not installed (hint: apt-get install chromium, or run "
                    "deploy/install-deps.sh)");
    const auto port_a = static_cast<uint16_t>(33000 + (::getpid() % 1500) * 2);
    const auto port_b = static_cast<uint16_t>(port_a + 1);
    LoopbackPairOptions o;
    o.name = "page";
    o.curve = false;
    o.heartbeat = "500ms";
    o.initial_roles = true;
    o.replication_extra_a = "[metrics]\nlisten = 127.0.0.1:" + std::to_string(port_a) + "\n";
    o.replication_extra_b = "[metrics]\nlisten = 127.0.0.1:" + std::to_string(port_b) + "\n";
    LoopbackPair pair(o);
    const std::string url = "http://127.0.0.1:" + std::to_string(port_a) + "/";
    const std::string profile = pair.dir + "/chromium";
    const std::string artifacts = std::string(MPF_BINARY_DIR) + "/tests";
    pair.a->start();
    pair.b->start();
    pair.roles_settled();
    // Settled: both backlogs sampled, the peer's facts in, the history read once.
    json list;
    const bool ready = eventually(
        [&] {
          list = json::parse(pair.cli("a", "list --json").out);
          return list["healthy"] == true && !list["nodes"][0]["backlog_transactions"].is_null() &&
                 !list["nodes"][1]["backlog_transactions"].is_null();
        },
        20s);
    REQUIRE_MESSAGE(ready, list.dump(2) << "\n" << pair.a->log_text());

    // Over plain HTTP first: the page, its data (list --json's very object), read-only.
    using mpf::test::http_request;
    auto page = http_request(port_a, "GET", "/");
    CHECK(page.code == 200);
    CHECK(page.headers["content-type"] == "text/html; charset=utf-8");
    CHECK(page.headers["content-security-policy"].find("default-src 'none'") != std::string::npos);
    CHECK(page.body.rfind("<!DOCTYPE html>", 0) == 0);
    const bool same_list = eventually(
        [&] {
          const auto before = still(json::parse(pair.cli("a", "list --json").out));
          auto data = http_request(port_a, "GET", "/status.json");
          const auto after = still(json::parse(pair.cli("a", "list --json").out));
          if (data.code != 200 || data.headers["content-type"] != "application/json") return false;
          const auto from_page = still(json::parse(data.body)["list"]);
          if (before != after) return false;  // something moved meanwhile: look again
          CHECK_MESSAGE(from_page == after, from_page.dump() << "\n" << after.dump());
          return true;
        },
        10s);
    CHECK(same_list);
    CHECK(http_request(port_a, "POST", "/").code == 405);
    CHECK(http_request(port_a, "POST", "/status.json").code == 405);
    CHECK(http_request(port_a, "GET", "/status.html").code == 404);
    CHECK(http_request(port_a, "GET", "/?refresh=1").code == 200);

    Browser seen;
    REQUIRE_MESSAGE(page_matches_list(pair, url, profile, seen, list), seen.dom);
    CHECK(seen.rc == 0);
    CHECK_MESSAGE(console_lines(seen.log).empty(), seen.log);
    const auto body = element(seen.dom, "body", "data-error", "");
    REQUIRE_MESSAGE(!body.empty(), seen.dom);
    CHECK(body.at("data-js-errors") == "0");
    CHECK(std::stoi(body.at("data-refreshes")) >= 1);
    CHECK(body.at("data-healthy") == "true");
    CHECK(seen.dom.find(">healthy<") != std::string::npos);
    // The history: this node's role changes as `mpfailover history` lists them (the newest 20),
    // once the sampler has read them (every 5 s).
    json history;
    std::map<std::string, std::string> shown;
    const bool events = eventually(
        [&] {
          history = json::parse(pair.cli("a", "history --json --limit 20").out);
          auto page = browse(url, profile);
          shown = element(page.dom, "table", "id", "history");
          if (shown.count("data-count") == 0) return false;
          if (std::stoi(shown.at("data-count")) != history["count"].get<int>()) return false;
          seen.dom = page.dom;
          return true;
        },
        20s);
    CHECK_MESSAGE(events, history.dump(2) << "\n" << dump(shown));
    CHECK(history["count"].get<int>() >= 1);
    CHECK(seen.dom.find("promoting") != std::string::npos);
    // The versions and a chart.
    const auto status = json::parse(pair.cli("a", "status --json").out);
    CHECK(element(seen.dom, "dl", "id", "versions")["data-software"] ==
          status["software_version"].get<std::string>());
    const auto chart = element(seen.dom, "svg", "id", "backlog-chart");
    REQUIRE(chart.count("data-points"));
    CHECK(std::stoi(chart.at("data-points")) >= 1);
    CHECK(chart.at("data-last") == as_attr(list["nodes"][0]["backlog_transactions"]));
    std::filesystem::remove(artifacts + "/status_page.png");
    std::filesystem::remove(artifacts + "/status_page_cut.png");
    auto shot = browse(url, profile, artifacts + "/status_page.png");
    CHECK_MESSAGE(std::filesystem::exists(artifacts + "/status_page.png"), shot.log);

    // The cut: b's daemon is gone, a keeps writing.
    pair.b->kill9();
    insert_users(pair, 5, "cut1_");
    const bool cut = eventually(
        [&] {
          list = json::parse(pair.cli("a", "list --json").out);
          return list["nodes"][0]["link"]["outbound"] == "down" &&
                 list["nodes"][1]["state"] != "up" && list_backlog(list) >= 5;
        },
        20s);
    REQUIRE_MESSAGE(cut, list.dump(2));
    REQUIRE_MESSAGE(page_matches_list(pair, url, profile, seen, list), seen.dom);
    CHECK_MESSAGE(console_lines(seen.log).empty(), seen.log);
    const int64_t first = list_backlog(list);
    CHECK(element(seen.dom, "tr", "data-node", "a")["data-link-out"] == "down");
    CHECK(element(seen.dom, "tr", "data-node", "b")["data-state"] != "up");
    CHECK(element(seen.dom, "body", "data-error", "")["data-healthy"] == "false");
    CHECK(seen.dom.find(">UNHEALTHY<") != std::string::npos);
    CHECK(seen.dom.find("replication outbound of node a is down") != std::string::npos);

    // More writes: the backlog the page draws grows with `list`'s.
    insert_users(pair, 5, "cut2_");
    const bool grew = eventually(
        [&] {
          list = json::parse(pair.cli("a", "list --json").out);
          return list_backlog(list) >= first + 5;
        },
        20s);
    REQUIRE_MESSAGE(grew, list.dump(2));
    REQUIRE_MESSAGE(page_matches_list(pair, url, profile, seen, list), seen.dom);
    const auto grown = element(seen.dom, "tr", "data-node", "a");
    CHECK(std::stoll(grown.at("data-backlog")) > first);
    const auto chart_cut = element(seen.dom, "svg", "id", "backlog-chart");
    CHECK(chart_cut.at("data-last") == as_attr(list["nodes"][0]["backlog_transactions"]));
    CHECK(std::stoll(chart_cut.at("data-max")) >= std::stoll(grown.at("data-backlog")));
    CHECK(std::stoi(chart_cut.at("data-points")) >= 2);
    shot = browse(url, profile, artifacts + "/status_page_cut.png");
    CHECK_MESSAGE(std::filesystem::exists(artifacts + "/status_page_cut.png"), shot.log);
    CHECK_MESSAGE(console_lines(shot.log).empty(), shot.log);
  }
}
