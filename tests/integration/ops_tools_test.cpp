// The operator tools against two real daemons on loopback with real databases (README
// "Operator tools"): `mpfailover list` (both nodes, the peer's facts from its heartbeats, the
// exit code once the peer is gone), `mpfailover history` (role changes, switchover, skip, with
// who and why), hooks.on_role_change without shared.address, the health endpoints over real
// HTTP, conflicts.retention, and the metrics exposition checked by promtool.
#include <array>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include "support/loopback_pair.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::eventually;
using mpf::test::LoopbackPair;
using mpf::test::LoopbackPairOptions;

namespace {

LoopbackPairOptions options(const std::string& name, const std::string& extra_a = "",
                            const std::string& extra_b = "") {
  LoopbackPairOptions o;
  o.name = name;
  o.curve = false;
  o.heartbeat = "500ms";
  o.initial_roles = true;
  // Lines after [replication]: another section may start there.
  o.replication_extra_a = extra_a;
  o.replication_extra_b = extra_b;
  return o;
}

json list_json(const LoopbackPair& p, const std::string& node, int* rc = nullptr) {
  auto r = p.cli(node, "list --json");
  if (rc) *rc = r.rc;
  return json::parse(r.out);
}

// GET target from 127.0.0.1:port over a plain socket: (status code, body); (0, "") when refused.
std::pair<int, std::string> http(uint16_t port, const std::string& method,
                                 const std::string& target) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {0, ""};
  }
  timeval tv{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  std::array<char, 4096> buf{};
  ssize_t n;
  while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) out.append(buf.data(), n);
  ::close(fd);
  if (out.rfind("HTTP/1.", 0) != 0 || out.size() < 12) return {0, out};
  const auto at = out.find("\r\n\r\n");
  return {std::stoi(out.substr(9, 3)), at == std::string::npos ? "" : out.substr(at + 4)};
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

bool has_event(const json& h, const std::function<bool(const json&)>& f) {
  for (const auto& e : h["events"])
    if (f(e)) return true;
  return false;
}

}  // namespace

TEST_SUITE("ops_list") {
  TEST_CASE("list shows both nodes with the peer's own facts, and exits 1 once the peer is gone") {
    LoopbackPair pair(options("list"));
    pair.a->start();
    pair.b->start();
    pair.roles_settled();
    // The peer's facts come with its Beats, the backlog with the first database sample.
    json l;
    const bool ready = eventually(
        [&] {
          int rc = -1;
          l = list_json(pair, "a", &rc);
          return rc == 0 && !l["nodes"][1]["writes"].is_null() &&
                 !l["nodes"][1]["backlog_transactions"].is_null() &&
                 !l["nodes"][0]["backlog_transactions"].is_null() &&
                 l["nodes"][1]["link"]["inbound"] == "up";
        },
        20s);
    REQUIRE_MESSAGE(ready, l.dump(2) << "\n" << pair.a->log_text());
    CHECK(l["healthy"] == true);
    CHECK(l["problems"].empty());
    const auto& a = l["nodes"][0];
    const auto& b = l["nodes"][1];
    CHECK(a["name"] == "a");
    CHECK(a["self"] == true);
    CHECK(a["role"] == "active");
    CHECK(a["epoch"].get<int>() >= 1);
    CHECK(a["writes"] == "unfenced");  // the loopback pair sets no node.app_role
    CHECK(a["link"]["outbound"] == "up");
    CHECK(a["link"]["inbound"] == "up");
    CHECK(a["backlog_transactions"] == 0);
    CHECK(a["address"] == "127.0.0.1:" + std::to_string(pair.port_a));
    CHECK(b["name"] == "b");
    CHECK(b["self"] == false);
    CHECK(b["state"] == "up");
    CHECK(b["role"] == "standby");
    CHECK(b["epoch"] == a["epoch"]);
    CHECK(b["writes"] == "unfenced");
    CHECK(b["link"]["outbound"] == "up");
    CHECK(b["backlog_transactions"] == 0);
    CHECK(b["last_heartbeat_age_s"].get<double>() < 5);
    CHECK(b["maintenance"] == false);
    CHECK(b["address"] == "127.0.0.1:" + std::to_string(pair.port_b));

    // The same pair from b: b first.
    int rc_b = -1;
    auto from_b = list_json(pair, "b", &rc_b);
    CHECK(rc_b == 0);
    CHECK(from_b["nodes"][0]["role"] == "standby");
    CHECK(from_b["nodes"][1]["role"] == "active");

    auto text = pair.cli("a", "list");
    CHECK(text.rc == 0);
    CHECK(text.out.find("NODE") != std::string::npos);
    CHECK(text.out.find("a *") != std::string::npos);
    CHECK(text.out.find("standby") != std::string::npos);
    CHECK(text.out.find("pair: healthy") != std::string::npos);

    // --watch: successive reports when piped, until interrupted.
    auto watch = mpf::test::run(std::string("timeout --preserve-status -s INT 2 ") + MPF_CLI_PATH +
                                " --config " + pair.conf("a") + " list --watch 300ms");
    CHECK_MESSAGE(count(watch.output, "pair: healthy") >= 3, watch.output);
    CHECK(watch.rc == 0);
    auto watch_json =
        mpf::test::run(std::string("timeout --preserve-status -s INT 1 ") + MPF_CLI_PATH +
                       " --config " + pair.conf("a") + " list --json --watch=200ms");
    CHECK_MESSAGE(count(watch_json.output, "\"nodes\"") >= 3, watch_json.output);
    CHECK(pair.cli("a", "list --watch 10ms").rc == 2);
    CHECK(pair.cli("a", "list extra").rc == 2);

    // The peer gone: its figures are unknown, not guessed, and the pair is unhealthy.
    pair.b->kill9();
    int rc = 0;
    const bool noticed = eventually(
        [&] {
          l = list_json(pair, "a", &rc);
          return rc == 1 && l["nodes"][1]["state"] != "up";
        },
        20s);
    REQUIRE_MESSAGE(noticed, l.dump(2));
    CHECK(l["healthy"] == false);
    // Log lines name the peer by its node name (peer=), its address apart.
    CHECK(pair.a->log_text().find("PeerHeartbeatMissed peer=b endpoint=") != std::string::npos);
    CHECK(l["nodes"][1]["role"].is_null());
    CHECK(l["nodes"][1]["last_known_role"] == "standby");
    CHECK(l["nodes"][1]["writes"].is_null());
    CHECK(l["nodes"][1]["backlog_transactions"].is_null());
    CHECK(l["nodes"][1]["link"].is_null());
    CHECK(l["nodes"][0]["role"] == "active");
    CHECK_FALSE(l["problems"].empty());
    text = pair.cli("a", "list");
    CHECK(text.rc == 1);
    CHECK(text.out.find("unknown (was standby)") != std::string::npos);
    CHECK(text.out.find("pair: UNHEALTHY") != std::string::npos);

    // No daemon here at all: exit 1 and why.
    pair.a->stop();
    auto down = pair.cli("a", "list");
    CHECK(down.rc == 1);
    CHECK(down.err.find("could not reach mpfailoverd") != std::string::npos);
  }
}

TEST_SUITE("ops_history") {
  TEST_CASE("history keeps role changes, a switchover with who asked, fencing-free roles, skip") {
    LoopbackPair pair(options("history"));
    pair.a->start();
    pair.b->start();
    pair.roles_settled();

    auto history = [&](const std::string& node, const std::string& args = "") {
      auto r = pair.cli(node, "history --json " + args);
      REQUIRE_MESSAGE(r.rc == 0, r.err);
      return json::parse(r.out);
    };
    auto h = history("a");
    CHECK(has_event(h, [](const json& e) {
      return e["event"] == "role_change" && e["role_to"] == "active" && e["who"] == "daemon" &&
             e["node"] == "a" && e["epoch"].get<int>() >= 1;
    }));
    CHECK(has_event(history("b"), [](const json& e) {
      return e["role_to"] == "standby" && e["why"].get<std::string>().find("initial_role") == 0;
    }));

    // A switchover asked on b: b records the operator's request, a the peer's.
    auto sw = pair.cli("b", "switchover");
    REQUIRE_MESSAGE(sw.rc == 0, sw.out << sw.err << "\n--- a ---\n"
                                       << pair.a->log_text() << "\n--- b ---\n"
                                       << pair.b->log_text());
    const bool swapped = eventually(
        [&] {
          auto s = json::parse(pair.cli("a", "status --json").out);
          return s["role"] == "standby" && s["peer_role"] == "active";
        },
        20s);
    REQUIRE(swapped);
    auto hb = history("b");
    CHECK_MESSAGE(has_event(hb,
                            [](const json& e) {
                              return e["event"] == "switchover" &&
                                     e["who"].get<std::string>().find("(uid ") != std::string::npos;
                            }),
                  hb.dump(2));
    CHECK(has_event(hb, [](const json& e) {
      return e["event"] == "switchover" && e["role_to"] == "promoting" && e["who"] == "peer a";
    }));
    auto ha = history("a");
    CHECK_MESSAGE(has_event(ha,
                            [](const json& e) {
                              return e["event"] == "switchover" && e["role_from"] == "active" &&
                                     e["role_to"] == "demoting" && e["who"] == "peer b" &&
                                     !e["acked_by_peer"].is_null() &&
                                     !e["applied_from_peer"].is_null();
                            }),
                  ha.dump(2));
    CHECK(has_event(
        ha, [](const json& e) { return e["event"] == "switchover" && e["role_to"] == "standby"; }));

    // skip is recorded by the CLI, with its reason. skip takes only the transaction apply
    // stopped on (docs/tables.md): one is recorded as if apply had stopped on b's 5/7.
    {
      pqxx::connection c(pair.db_a.conninfo());
      pqxx::nontransaction q(c);
      q.exec(
          "INSERT INTO mpfailover.apply_failure (origin, tick, seq, message) "
          "VALUES ('b', 5, 7, 'test: apply stopped here')");
    }
    auto skip = pair.cli("a", "skip 5/7 --reason \"bad row\"");
    REQUIRE_MESSAGE(skip.rc == 0, skip.err);
    ha = history("a");
    CHECK(has_event(ha, [](const json& e) {
      return e["event"] == "skip" && e["why"] == "bad row" && e["detail"]["position"] == "5/7" &&
             e["who"].get<std::string>().find("(uid ") != std::string::npos;
    }));
    // Oldest first; --since, --limit.
    CHECK(ha["events"].back()["event"] == "skip");
    CHECK(history("a", "--since 1h")["count"] == ha["count"]);
    CHECK(history("a", "--since '2999-01-01'")["count"] == 0);
    auto one = history("a", "--limit 1");
    CHECK(one["count"] == 1);
    CHECK(one["more"] == true);
    CHECK(one["events"][0]["event"] == "skip");
    CHECK(pair.cli("a", "history --since yesterdayish").rc == 2);
    auto text = pair.cli("a", "history");
    CHECK(text.rc == 0);
    CHECK(text.out.find("skip") != std::string::npos);
    CHECK(text.out.find("by peer b") != std::string::npos);
  }
}

TEST_SUITE("ops_hooks") {
  TEST_CASE("hooks.on_role_change runs on every role change without shared.address") {
    const std::string out = "/tmp/mpft_rolehook_" + std::to_string(::getpid()) + ".txt";
    const std::string script = "/tmp/mpft_rolehook_" + std::to_string(::getpid()) + ".sh";
    std::filesystem::remove(out);
    {
      std::ofstream s(script);
      s << "#!/bin/sh\necho \"$MPF_NODE $MPF_PEER $MPF_OLD_ROLE->$MPF_ROLE epoch=$MPF_EPOCH "
           "reason=$MPF_REASON shared=${MPF_SHARED_ADDRESS:-none}\" >> "
        << out << "\n";
    }
    std::filesystem::permissions(script, std::filesystem::perms::owner_all);
    LoopbackPair pair(options("rolehook", "[hooks]\non_role_change = " + script + "\n"));
    pair.a->start();
    pair.b->start();
    pair.roles_settled();
    auto text = [&] {
      std::ifstream in(out);
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    const bool ran =
        eventually([&] { return text().find("a b promoting->active") != std::string::npos; }, 15s);
    CHECK_MESSAGE(ran, text() << "\n" << pair.a->log_text());
    CHECK(text().find("a b starting->promoting") != std::string::npos);
    CHECK(text().find("shared=none") != std::string::npos);  // no shared.address
    CHECK(text().find("reason=") != std::string::npos);
    auto s = json::parse(pair.cli("a", "status --json").out);
    CHECK(s["last_hook"]["hook"] == "on_role_change");
    CHECK(s["last_hook"]["ok"] == true);
    CHECK(s["role_changes"].get<int>() >= 2);
    CHECK(s["hook_failures"] == 0);
    std::filesystem::remove(out);
    std::filesystem::remove(script);
  }
}

TEST_SUITE("ops_health") {
  TEST_CASE(
      "GET /active, /standby, /health answer 200/503 on both nodes, and follow a switchover") {
    const auto port_a = static_cast<uint16_t>(30000 + (::getpid() % 500) * 2);
    const auto port_b = static_cast<uint16_t>(port_a + 1);
    LoopbackPair pair(options("health",
                              "[metrics]\nlisten = 127.0.0.1:" + std::to_string(port_a) + "\n",
                              "[metrics]\nlisten = 127.0.0.1:" + std::to_string(port_b) + "\n"));
    pair.a->start();
    pair.b->start();
    pair.roles_settled();
    REQUIRE(eventually([&] { return http(port_a, "GET", "/active").first == 200; }, 10s));
    CHECK(http(port_a, "GET", "/standby").first == 503);
    CHECK(http(port_a, "GET", "/health").first == 200);
    CHECK(http(port_b, "GET", "/active").first == 503);
    CHECK(http(port_b, "GET", "/standby").first == 200);
    CHECK(http(port_b, "GET", "/health").first == 200);
    auto [code, body] = http(port_b, "GET", "/active");
    CHECK(code == 503);
    auto j = json::parse(body);
    CHECK(j["node"] == "b");
    CHECK(j["role"] == "standby");
    CHECK(j["ok"] == false);
    CHECK(http(port_a, "GET", "/nope").first == 404);
    CHECK(http(port_a, "POST", "/active").first == 405);
    CHECK(http(port_a, "GET", "/metrics").first == 200);

    REQUIRE(pair.cli("a", "switchover").rc == 0);
    const bool followed = eventually(
        [&] {
          return http(port_b, "GET", "/active").first == 200 &&
                 http(port_a, "GET", "/standby").first == 200;
        },
        20s);
    CHECK(followed);
    CHECK(http(port_a, "GET", "/active").first == 503);
  }
}

TEST_SUITE("ops_metrics") {
  TEST_CASE(
      "Prometheus conventions: build info, event timestamps, state gauges, process "
      "metrics, promtool-clean; conflicts.retention prunes old conflicts") {
    const auto port_a = static_cast<uint16_t>(29000 + ::getpid() % 1000);
    LoopbackPair pair(options("metrics", "[metrics]\nlisten = 127.0.0.1:" + std::to_string(port_a) +
                                             "\n[conflicts]\nretention = 60min\n"));
    // Two conflicts before the daemon starts: one older than the retention, one recent.
    {
      pqxx::connection c(pair.db_a.conninfo());
      pqxx::nontransaction q(c);
      q.exec(
          "INSERT INTO mpfailover.conflict (detected_at, relation, key, kind, reason) VALUES "
          "(now() - interval '2 hours', 'public.users', '{1}', 'lww', 'old'),"
          "(now() - interval '5 minutes', 'public.users', '{2}', 'lww', 'recent')");
    }
    auto scrape = [&] { return http(port_a, "GET", "/metrics"); };
    auto value = [](const std::string& text, const std::string& series) -> std::optional<double> {
      std::istringstream in(text);
      for (std::string line; std::getline(in, line);) {
        if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
      }
      return std::nullopt;
    };
    pair.a->start();
    REQUIRE(eventually([&] { return scrape().first == 200; }, 15s));
    // The peer has never answered: the event's timestamp is 0, so `time() - x > N` fires.
    auto [code, text] = scrape();
    CHECK(value(text, "mpfailover_last_heartbeat_answer_timestamp_seconds") == 0.0);
    CHECK(text.find("mpfailover_build_info{version=\"") != std::string::npos);
    CHECK(value(text, "process_resident_memory_bytes").value_or(0) > 1e6);
    CHECK(value(text, "process_open_fds").value_or(0) > 3);
    const double now = static_cast<double>(::time(nullptr));
    const double started = value(text, "process_start_time_seconds").value_or(0);
    CHECK(started > now - 120);
    CHECK(started <= now + 1);
    CHECK(value(text, "process_cpu_seconds_total").has_value());

    // The old conflict is pruned at start, the recent one kept.
    const bool pruned = eventually(
        [&] {
          pqxx::connection c(pair.db_a.conninfo());
          pqxx::nontransaction q(c);
          return q.exec("SELECT count(*) FROM mpfailover.conflict WHERE reason = 'old'")[0][0]
                     .as<int>() == 0;
        },
        15s);
    CHECK_MESSAGE(pruned, pair.a->log_text());
    {
      pqxx::connection c(pair.db_a.conninfo());
      pqxx::nontransaction q(c);
      CHECK(q.exec("SELECT count(*) FROM mpfailover.conflict WHERE reason = 'recent'")[0][0]
                .as<int>() == 1);
    }

    pair.b->start();
    pair.roles_settled();
    REQUIRE(eventually(
        [&] {
          text = scrape().second;
          return value(text, "mpfailover_last_heartbeat_answer_timestamp_seconds").value_or(0) > 0;
        },
        15s));
    const double answered = *value(text, "mpfailover_last_heartbeat_answer_timestamp_seconds");
    CHECK(answered > now - 60);
    CHECK(answered < now + 60);
    CHECK(value(text, "mpfailover_role_changes_total").value_or(0) >= 2);
    CHECK(value(text, "mpfailover_hook_failures_total") == 0.0);
    CHECK(value(text, "mpfailover_writes_open") == 1.0);          // active, unfenced
    CHECK(value(text, "mpfailover_fenced{reason=\"\"}") == 0.0);  // the reason label, empty
    CHECK(value(text, "mpfailover_maintenance") == 0.0);
    CHECK(value(text, "mpfailover_version_error") == 0.0);
    CHECK(value(text, "mpfailover_apply_blocked") == 0.0);
    CHECK(value(text, "mpfailover_clock_skew_seconds").has_value());
    CHECK(value(text, "mpfailover_conflicts_total") == 2.0);  // ever recorded, pruned or not

    // The exposition passes Prometheus's own linter.
    const std::string file = pair.dir + "/metrics.txt";
    {
      std::ofstream out(file);
      out << text;
    }
    auto lint = mpf::test::run("promtool check metrics < " + file);
    CHECK_MESSAGE(lint.rc == 0, lint.output);
  }
}

namespace {

// Roles are the cluster's, not a database's: dropped after the pair's databases are gone.
struct ClusterRoles {
  std::vector<std::string> names;
  ~ClusterRoles() {
    for (const auto& n : names) {
      try {
        pqxx::connection c(mpf::test::base_conninfo());
        pqxx::nontransaction q(c);
        q.exec("DROP ROLE IF EXISTS " + n);
      } catch (const std::exception&) {
      }
    }
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from << " not in " << text);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_SUITE("ops_least_privilege") {
  TEST_CASE("the pair runs with an ordinary login that init-db --grant-to prepared") {
    const std::string pid = std::to_string(::getpid());
    const std::string daemon_role = "mpft_daemon_" + pid;
    const std::string app_a = "mpft_lpapp_a_" + pid;
    const std::string app_b = "mpft_lpapp_b_" + pid;
    ClusterRoles roles{{daemon_role, app_a, app_b}};  // destroyed after the pair
    LoopbackPair pair(options("leastpriv"));
    {
      pqxx::connection c(mpf::test::base_conninfo());
      pqxx::nontransaction q(c);
      for (const auto& r : roles.names) q.exec("DROP ROLE IF EXISTS " + r);
      q.exec("CREATE ROLE " + daemon_role + " LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB");
      q.exec("CREATE ROLE " + app_a + " LOGIN");
      q.exec("CREATE ROLE " + app_b + " LOGIN");
    }
    const std::vector<std::pair<std::string, std::string>> nodes{{"a", app_a}, {"b", app_b}};
    for (const auto& [node, app] : nodes) {
      const auto& conf = pair.conf(node);
      // Each node fences its own application login (roles are the whole cluster's).
      write_file(conf, replaced(read_file(conf), "[node]\n", "[node]\napp_role = " + app + "\n"));
      auto init = pair.cli(node, "init-db --grant-to " + daemon_role);
      REQUIRE_MESSAGE(init.rc == 0, init.out << init.err);
      CHECK(init.out.find("granted " + daemon_role) != std::string::npos);
      // From here on the daemon and the CLI log in as the ordinary role.
      write_file(conf, replaced(read_file(conf), "user=postgres", "user=" + daemon_role));
    }

    pair.a->start();
    pair.b->start();
    pair.roles_settled();
    auto status = [&](const std::string& node) {
      return json::parse(pair.cli(node, "status --json").out);
    };
    REQUIRE(eventually([&] { return status("a")["writes"] == "open"; }, 10s));
    CHECK(status("b")["writes"] == "closed");

    auto write_on = [&](const LoopbackPair& p, bool on_a, const std::string& login) {
      pqxx::connection c((on_a ? p.db_a : p.db_b).conninfo());
      pqxx::work tx(c);
      tx.exec("INSERT INTO users (login) VALUES ('" + login + "')");
      tx.commit();
    };
    write_on(pair, true, "from_a");
    CHECK_MESSAGE(eventually([&] { return pair.converged(); }, 20s), pair.b->log_text());

    // A switchover: fencing both ways as the ordinary role, then replication the other way.
    // (a must see b up first: roles_settled() asked b.)
    REQUIRE(eventually([&] { return status("a")["peer_state"] == "up"; }, 10s));
    auto sw = pair.cli("a", "switchover");
    REQUIRE_MESSAGE(sw.rc == 0, sw.out << sw.err << pair.a->log_text());
    REQUIRE(eventually(
        [&] { return status("b")["writes"] == "open" && status("a")["writes"] == "closed"; }, 20s));
    write_on(pair, false, "from_b");
    CHECK_MESSAGE(eventually([&] { return pair.converged(); }, 20s), pair.a->log_text());
    {
      pqxx::connection c(pair.db_b.conninfo());
      pqxx::nontransaction q(c);
      CHECK(q.exec("SELECT count(*) FROM users WHERE login IN ('from_a', 'from_b')")[0][0]
                .as<int>() == 2);
      CHECK_FALSE(
          q.exec("SELECT rolsuper FROM pg_roles WHERE rolname = '" + daemon_role + "'")[0][0]
              .as<bool>());
    }
    for (const auto* d : {pair.a.get(), pair.b.get()}) {
      const auto log = d->log_text();
      CHECK_MESSAGE(log.find("permission denied") == std::string::npos, log);
      CHECK_MESSAGE(log.find("must be owner") == std::string::npos, log);
    }
    CHECK(status("a")["last_error"].is_null());
    CHECK(status("b")["last_error"].is_null());
    auto h = json::parse(pair.cli("a", "history --json").out);
    CHECK(has_event(h, [](const json& e) { return e["event"] == "fencing"; }));
  }
}
