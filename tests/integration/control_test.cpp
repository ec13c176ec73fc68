// The operator commands that go through the daemon's control socket, against a real daemon and
// database: status, failover, switchover, standalone, join; the persisted role; write fencing
// of the application login; and the error paths (daemon down, bad argument, outsider).
//
// The peer is configured on 127.0.0.1 at a port nothing listens on: heartbeats go unanswered
// and ping answers, so the peer is "service down, host up" — a failover is allowed.
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>

#include "support/command.hpp"
#include "support/daemon.hpp"
#include "support/test_db.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::Daemon;
using mpf::test::eventually;

namespace {

using mpf::test::Run;
using mpf::test::run;

const std::string kCli = MPF_CLI_PATH;

// The CLI as another user can run it: the checkout may be in a 0700 folder (root's home), where
// `nobody` cannot reach the build tree, so a copy goes to /tmp (mode 0755) once per run.
const std::string& outsider_cli() {
  static const std::string path = [] {
    const std::string p = "/tmp/mpft_cli_" + std::to_string(::getpid());
    std::filesystem::copy_file(kCli, p, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(
        p, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);
    std::atexit([] { std::remove(("/tmp/mpft_cli_" + std::to_string(::getpid())).c_str()); });
    return p;
  }();
  return path;
}

struct OneNode {
  mpf::test::TestDatabase db;
  std::string app_role;
  std::string conf;
  std::unique_ptr<Daemon> daemon;

  explicit OneNode(const std::string& extra = "") {
    db.init("a");
    app_role = "mpft_app_" + std::to_string(::getpid());
    {
      pqxx::connection c(db.conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("DROP ROLE IF EXISTS " + app_role);
      tx.exec("CREATE ROLE " + app_role + " LOGIN");
      tx.exec("GRANT ALL ON ALL TABLES IN SCHEMA public TO " + app_role);
    }
    conf = "/tmp/" + db.name() + "_node.conf";
    std::ofstream out(conf);
    out << "[node]\nname = a\ndatabase = " << db.conninfo() << "\napp_role = " << app_role
        << "\n[peer]\nname = b\naddress = 127.0.0.1\nport = 9\n"
        << "[replication]\nlisten = 127.0.0.1\nport = " << 27000 + ::getpid() % 1000
        << "\n[heartbeat]\ninterval = 200ms\ntimeout = 150ms\nping_timeout = 300ms\n"
        << "[control]\nsocket = " << db.control_socket() << "\n[security]\nmode = plain\n"
        << "[log]\nlevel = debug\n"
        << extra;
    out.close();
    daemon = std::make_unique<Daemon>(MPF_DAEMON_PATH, conf, conf + ".log");
    daemon->start();
  }
  ~OneNode() {
    daemon.reset();
    std::remove(conf.c_str());
    std::remove((conf + ".log").c_str());
    try {
      pqxx::connection c(mpf::test::base_conninfo());
      pqxx::nontransaction tx(c);
      tx.exec("DROP ROLE IF EXISTS " + app_role);
    } catch (const std::exception&) {
    }
  }

  Run cli(const std::string& args) const { return run(kCli + " --config " + conf + " " + args); }

  // status exits 3 while the pair is unhealthy, as it is here (the peer never runs).
  json status() const {
    auto r = cli("status --json");
    REQUIRE_MESSAGE((r.rc == 0 || r.rc == 3), r.output);
    return json::parse(r.output);
  }

  bool status_says(const std::function<bool(const json&)>& f) const {
    auto r = cli("status --json");
    if (r.rc != 0 && r.rc != 3) return false;
    try {
      return f(json::parse(r.output));
    } catch (const json::exception&) {
      return false;
    }
  }

  // What a new session of the application login gets.
  std::string app_read_only() const {
    pqxx::connection c(mpf::test::with_dbname(mpf::test::base_conninfo(), db.name()) +
                       " user=" + app_role);
    pqxx::nontransaction tx(c);
    return tx.exec("SHOW default_transaction_read_only")[0][0].as<std::string>();
  }

  std::string persisted() const {
    pqxx::connection c(db.conninfo());
    pqxx::nontransaction tx(c);
    auto r = tx.exec("SELECT initialized, role, epoch FROM mpfailover.node");
    return std::string(r[0][0].as<bool>() ? "initialized " : "new ") + r[0][1].as<std::string>() +
           " " + r[0][2].as<std::string>();
  }
};

}  // namespace

TEST_SUITE("control") {
  TEST_CASE("a brand-new node is standby with writes closed; failover promotes and persists") {
    OneNode n;
    REQUIRE_MESSAGE(eventually(
                        [&] {
                          return n.status_says([](const json& s) {
                            return s["role"] == "standby" && s["peer_state"] != "unknown";
                          });
                        },
                        10s),
                    n.daemon->log_text());
    auto s = n.status();
    for (const char* field : {"node", "role", "epoch", "peer_state", "last_heartbeat_age_s",
                              "clock_skew_ms", "lag_s", "shared_address_holder"}) {
      CAPTURE(field);
      CHECK(s.contains(field));
    }
    CHECK(s["node"] == "a");
    CHECK(s["epoch"] == 0);
    // Nothing listens on the peer's port, but 127.0.0.1 answers ping.
    CHECK(s["peer_state"] == "service_down");
    CHECK(s["last_heartbeat_age_s"].is_null());
    CHECK(s["writes"] == "closed");
    CHECK(n.app_read_only() == "on");
    CHECK(n.persisted() == "initialized standby 0");

    auto human = n.cli("status");
    CHECK(human.rc == 3);  // the peer does not answer: unhealthy, for monitoring
    CHECK(human.output.find("node a: standby, epoch 0") != std::string::npos);
    // Issue #13: no "last heartbeat never ago"; the verdict in words.
    CHECK(human.output.find("never ago") == std::string::npos);
    CHECK(human.output.find("no heartbeat answered yet") != std::string::npos);
    CHECK(human.output.find("health: UNHEALTHY (peer service_down") != std::string::npos);

    auto f = n.cli("failover");
    CHECK_MESSAGE(f.rc == 0, f.output);
    CHECK(f.output.find("last change applied from peer \"b\"") != std::string::npos);
    CHECK(f.output.find("node \"a\" is active at epoch 1") != std::string::npos);
    CHECK(n.status()["role"] == "active");
    CHECK(n.persisted() == "initialized active 1");
    CHECK(n.app_read_only() == "off");

    auto again = n.cli("failover");
    CHECK(again.rc == 1);
    CHECK(again.output.find("already active") != std::string::npos);
    // Issue #13: a refused failover never announced "promoting" first.
    CHECK(again.output.find("promoting") == std::string::npos);

    auto sw = n.cli("switchover");
    CHECK(sw.rc == 1);
    CHECK(sw.output.find("switchover refused") != std::string::npos);

    SUBCASE("the persisted role rules after a restart") {
      n.daemon->stop();
      n.daemon->start();
      CHECK_MESSAGE(eventually(
                        [&] {
                          return n.status_says([](const json& x) {
                            return x["role"] == "active" && x["epoch"] == 1;
                          });
                        },
                        10s),
                    n.daemon->log_text());
    }
    SUBCASE("standalone pauses replication and join comes back") {
      auto a = n.cli("standalone");
      CHECK_MESSAGE(a.rc == 0, a.output);
      auto st = n.status();
      CHECK(st["role"] == "standalone");
      CHECK(st["replicating"] == false);
      CHECK(n.persisted() == "initialized standalone 1");
      CHECK(n.cli("standalone").rc == 1);
      auto j = n.cli("join");
      CHECK_MESSAGE(j.rc == 0, j.output);
      CHECK(n.status()["role"] == "active");
    }
  }

  TEST_CASE(
      "issue #18: an active restarted without the peer's word comes back fenced; "
      "maintenance mode is persisted and shown") {
    OneNode n;
    REQUIRE_MESSAGE(eventually(
                        [&] {
                          return n.status_says([](const json& s) {
                            return s["role"] == "standby" && s["peer_state"] != "unknown";
                          });
                        },
                        10s),
                    n.daemon->log_text());
    REQUIRE(n.cli("failover").rc == 0);
    REQUIRE(eventually([&] { return n.app_read_only() == "off"; }, 10s));
    auto s = n.status();
    CHECK(s["fenced"] == false);
    CHECK(s["fenced_reason"].is_null());
    CHECK(s["maintenance"] == false);

    // Restarted with the peer silent: active at its epoch, but writes closed until the peer's
    // word (before: writes reopened at the old epoch).
    n.daemon->stop();
    n.daemon->start();
    REQUIRE_MESSAGE(eventually(
                        [&] {
                          return n.status_says([](const json& x) {
                            return x["role"] == "active" && x["fenced"] == true;
                          });
                        },
                        10s),
                    n.daemon->log_text());
    s = n.status();
    CHECK(s["fenced_reason"] == "restart_unconfirmed");
    CHECK(s["writes"] == "closed");
    CHECK(n.app_read_only() == "on");
    auto text = n.cli("status");
    CHECK(text.output.find("FENCED: restart_unconfirmed") != std::string::npos);
    CHECK(n.daemon->log_text().find("FenceChanged") == std::string::npos);  // fenced from start
    // `failover` refuses on a fenced active; --force reopens (the operator's judgement).
    auto refused = n.cli("failover");
    CHECK(refused.rc == 1);
    CHECK(refused.output.find("fenced") != std::string::npos);
    auto forced = n.cli("failover --force --yes --json");
    (void)forced;
    CHECK(eventually(
        [&] { return n.status_says([](const json& x) { return x["fenced"] == false; }); }, 10s));
    CHECK(eventually([&] { return n.app_read_only() == "off"; }, 10s));

    // Maintenance mode: on, persisted across a restart, shown; off again.
    auto on = n.cli("maintenance on --json");
    REQUIRE_MESSAGE(on.rc == 0, on.output);
    CHECK(json::parse(on.output)["maintenance"] == true);
    CHECK(n.status()["maintenance"] == true);
    CHECK(n.cli("status").output.find("[maintenance") != std::string::npos);
    n.daemon->stop();
    n.daemon->start();
    CHECK_MESSAGE(
        eventually(
            [&] { return n.status_says([](const json& x) { return x["maintenance"] == true; }); },
            10s),
        n.daemon->log_text());
    auto off = n.cli("maintenance off");
    CHECK_MESSAGE(off.rc == 0, off.output);
    CHECK(off.output.find("maintenance mode off") != std::string::npos);
    CHECK(n.status()["maintenance"] == false);
    auto bad = n.cli("maintenance maybe");
    CHECK(bad.rc != 0);
    CHECK(bad.output.find("expected on or off") != std::string::npos);
  }

  TEST_CASE("node.initial_role = active makes a brand-new node active at epoch 1") {
    mpf::test::TestDatabase db2;
    db2.init("a");
    const std::string conf2 = "/tmp/" + db2.name() + "_active.conf";
    {
      std::ofstream out(conf2);
      out << "[node]\nname = a\ndatabase = " << db2.conninfo()
          << "\ninitial_role = active\n[peer]\nname = b\naddress = 127.0.0.1\nport = 9\n"
          << "[replication]\nlisten = 127.0.0.1\nport = " << 28000 + ::getpid() % 1000
          << "\n[heartbeat]\ninterval = 200ms\n[control]\nsocket = " << db2.control_socket()
          << "\n[security]\nmode = plain\n";
    }
    Daemon d(MPF_DAEMON_PATH, conf2, conf2 + ".log");
    d.start();
    CHECK_MESSAGE(eventually(
                      [&] {
                        auto r = run(kCli + " --config " + conf2 + " status --json");
                        if (r.rc != 0 && r.rc != 3) return false;
                        auto s = json::parse(r.output);
                        return s["role"] == "active" && s["epoch"] == 1 &&
                               s["writes"] == "unfenced";
                      },
                      10s),
                  d.log_text());
    d.stop();
    std::remove(conf2.c_str());
    std::remove((conf2 + ".log").c_str());
  }

  TEST_CASE("CLI errors: no daemon, bad argument, unknown command, an outsider") {
    OneNode n;
    REQUIRE(eventually([&] { return n.status_says([](const json&) { return true; }); }, 10s));
    auto bad = n.cli("failover --forse");
    CHECK(bad.rc == 2);
    CHECK(bad.output.find("hint: mpfailover failover --help") != std::string::npos);
    auto unknown = n.cli("promote");
    CHECK(unknown.rc == 2);
    auto help = n.cli("switchover --help");
    CHECK(help.rc == 0);
    CHECK(help.output.find("usage: mpfailover") != std::string::npos);

    if (::geteuid() == 0) {
      // The socket is root's (mode 0600, no control.group): another user is refused.
      auto outsider =
          run("runuser -u nobody -- " + outsider_cli() + " --config " + n.conf + " status");
      CHECK(outsider.rc == 1);
      CHECK(outsider.output.find("permission denied") != std::string::npos);
    }

    n.daemon->stop();
    auto down = n.cli("status");
    CHECK(down.rc == 1);
    CHECK(down.output.find("could not reach mpfailoverd on control socket") != std::string::npos);
    CHECK(down.output.find("hint:") != std::string::npos);
  }

  TEST_CASE("control.group admits its members and no one else") {
    if (::geteuid() != 0) return;               // needs another user to try
    OneNode n("[control]\ngroup = nogroup\n");  // nobody's primary group on Debian
    REQUIRE(eventually([&] { return n.status_says([](const json&) { return true; }); }, 10s));
    auto member =
        run("runuser -u nobody -- " + outsider_cli() + " --config " + n.conf + " status --json");
    CHECK_MESSAGE(member.rc == 3, member.output);  // answered; unhealthy (no peer)
    auto other = run("runuser -u daemon -- " + outsider_cli() + " --config " + n.conf + " status");
    CHECK(other.rc == 1);
    CHECK(other.output.find("permission denied") != std::string::npos);
  }

  // Issue #13: SIGHUP ended the daemon at once, silently. Now it reloads: log.level applies at
  // once, a key that needs a restart is named, a config that does not load changes nothing,
  // and the other stray signals are logged.
  TEST_CASE("SIGHUP reloads the config; stray signals are logged, never fatal") {
    OneNode n;
    REQUIRE(eventually([&] { return n.status_says([](const json&) { return true; }); }, 10s));
    auto count = [](const std::string& text, const std::string& what) {
      size_t k = 0;
      for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++k;
      return k;
    };
    // At debug the daemon reports LinkStatus every heartbeat.interval (200 ms), at info on change.
    REQUIRE(eventually([&] { return count(n.daemon->log_text(), "LinkStatus") >= 2; }, 10s));

    // A config that does not load: logged, nothing changes, still running.
    const std::string good = [&] {
      std::ifstream in(n.conf);
      std::stringstream b;
      b << in.rdbuf();
      return b.str();
    }();
    {
      std::ofstream out(n.conf);
      out << good << "[heartbeat]\nbogus = 1\n";
    }
    n.daemon->signal(SIGHUP);
    CHECK_MESSAGE(eventually([&] { return count(n.daemon->log_text(), "ReloadFailed") == 1; }, 5s),
                  n.daemon->log_text());
    CHECK(n.daemon->running());

    // log.level debug -> warn (at run time) and queue.warn_bytes (needs a restart).
    {
      std::ofstream out(n.conf);
      std::string next = good;
      next.replace(next.find("level = debug"), 13, "level = warn");
      out << next << "[queue]\nwarn_bytes = 2GB\n";
    }
    n.daemon->signal(SIGHUP);
    REQUIRE_MESSAGE(
        eventually([&] { return count(n.daemon->log_text(), "ConfigReloaded") == 1; }, 5s),
        n.daemon->log_text());
    const std::string at_reload = n.daemon->log_text();
    CHECK(at_reload.find("ReloadRequested signal=SIGHUP") != std::string::npos);
    CHECK(at_reload.find("applied=log.level") != std::string::npos);
    CHECK(at_reload.find("ReloadNeedsRestart keys=queue.warn_bytes") != std::string::npos);
    // At "warn" the every-200-ms LinkStatus (debug) lines stop.
    std::this_thread::sleep_for(1200ms);
    CHECK(n.daemon->running());
    const std::string later = n.daemon->log_text();
    const std::string after = later.substr(later.find("ReloadNeedsRestart"));
    CHECK_MESSAGE(count(after, "LinkStatus") == 0, after);
    CHECK(n.status()["node"] == "a");  // still answering

    for (int sig : {SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM}) {
      CAPTURE(sig);
      n.daemon->signal(sig);
      std::this_thread::sleep_for(200ms);
      CHECK(n.daemon->running());
    }
    CHECK(eventually(
        [&] {
          const auto t = n.daemon->log_text();
          return t.find("SignalIgnored signal=SIGUSR1") != std::string::npos &&
                 t.find("SignalIgnored signal=SIGUSR2") != std::string::npos &&
                 t.find("SignalIgnored signal=SIGALRM") != std::string::npos;
        },
        5s));
  }

  // Issue #13: the CLI waited forever on a daemon that accepts and never answers.
  TEST_CASE("the CLI gives up on a wedged daemon after --timeout with a clear error") {
    mpf::test::TestDatabase db;
    const auto conf = db.write_config_file();
    // A control socket that accepts (the kernel's backlog) and never reads or answers.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", db.control_socket().c_str());
    std::remove(db.control_socket().c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    const auto started = std::chrono::steady_clock::now();
    auto r = run(kCli + " --config " + conf + " --timeout 500ms status");
    const auto took = std::chrono::steady_clock::now() - started;
    ::close(fd);
    std::remove(db.control_socket().c_str());
    CHECK(r.rc == 1);
    CHECK_MESSAGE(r.output.find("did not answer within 500 ms") != std::string::npos, r.output);
    CHECK(r.output.find("hint:") != std::string::npos);
    CHECK(took < 5s);
    auto bad = run(kCli + " --config " + conf + " --timeout soon status");
    CHECK(bad.rc == 2);
    CHECK(bad.output.find("--timeout") != std::string::npos);
  }

  // Issue #13: failover --force asks first (--yes for scripts) and takes --dry-run.
  TEST_CASE("failover --force needs a confirmation or --yes; --dry-run does nothing") {
    OneNode n;
    REQUIRE(eventually(
        [&] {
          return n.status_says(
              [](const json& s) { return s["role"] == "standby" && s["peer_state"] != "unknown"; });
        },
        10s));
    auto no_tty = n.cli("failover --force </dev/null");
    CHECK(no_tty.rc == 2);
    CHECK(no_tty.output.find("no terminal to ask on") != std::string::npos);
    CHECK(no_tty.output.find("--yes") != std::string::npos);
    CHECK(n.status()["role"] == "standby");

    auto dry = n.cli("failover --force --dry-run </dev/null");
    CHECK_MESSAGE(dry.rc == 0, dry.output);
    CHECK(dry.output.find("dry run: failover --force would promote node \"a\" (now standby") !=
          std::string::npos);
    CHECK(dry.output.find("nothing done") != std::string::npos);
    CHECK(n.status()["role"] == "standby");

    // On a terminal (script(1) gives it one): anything but "yes" leaves everything as it was.
    auto said_no = run("printf 'no\\n' | script -qec '" + kCli + " --config " + n.conf +
                       " failover --force' /dev/null");
    CHECK(said_no.rc == 1);
    CHECK_MESSAGE(said_no.output.find("Type \"yes\" to go on") != std::string::npos,
                  said_no.output);
    CHECK(said_no.output.find("not confirmed; nothing done") != std::string::npos);
    CHECK(n.status()["role"] == "standby");

    auto yes = n.cli("failover --force --yes </dev/null");
    CHECK_MESSAGE(yes.rc == 0, yes.output);
    CHECK(yes.output.find("failover: daemon accepted; promoting node \"a\" to active (forced)") !=
          std::string::npos);
    CHECK(n.status()["role"] == "active");
  }
}
