// mpfailover resync against two real daemons on loopback, each with its own database, while the
// active keeps writing: a wiped standby is rebuilt from a snapshot and catches up from the log;
// refusals on the active, with the peer down and with unshipped changes; --force discards them
// (recorded) and unblocks a pair whose apply had stopped. Afterwards verify is clean, the tables
// are equal row for row, and replication goes on in both directions.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "support/command.hpp"
#include "support/compare.hpp"
#include "support/daemon.hpp"
#include "support/loopback_pair.hpp"
#include "support/test_db.hpp"
#include "support/workload.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::Daemon;
using mpf::test::eventually;
using mpf::test::scalar;

namespace {

// a starts active, b standby, heartbeats every 500 ms, CURVE.
struct Pair : mpf::test::LoopbackPair {
  Pair()
      : LoopbackPair([&] {
          mpf::test::LoopbackPairOptions o;
          o.name = "resync";
          o.base_port = 34000;
          o.port_span = 3000;
          o.heartbeat = "500ms";
          o.initial_roles = true;
          return o;
        }()) {}

  void wait_converged() const {
    const bool ok = eventually([&] { return converged(); }, 40s);
    if (!ok) MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    REQUIRE(ok);
  }

  std::string log_tail(const Daemon& d) const {
    const std::string t = d.log_text();
    return t.size() > 6000 ? t.substr(t.size() - 6000) : t;
  }
};

// The application writing on the active, in its own thread, until stopped (bounded: 60 s).
class Writer {
 public:
  explicit Writer(const std::string& conninfo)
      : thread_([this, conninfo] {
          try {
            mpf::test::Workload w(conninfo, 77, "live");
            const auto deadline = std::chrono::steady_clock::now() + 60s;
            while (!stop_ && std::chrono::steady_clock::now() < deadline) {
              w.run(1);
              ++done_;
              std::this_thread::sleep_for(4ms);
            }
          } catch (const std::exception& e) {
            error_ = e.what();
          }
        }) {}
  ~Writer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int done() const { return done_; }
  const std::string& error() const { return error_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> done_{0};
  std::string error_;
  std::thread thread_;
};

std::string user_id_of(const std::string& conninfo, const std::string& login) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction q(c);
  auto r = q.exec("SELECT user_id::text FROM users WHERE login = " + q.quote(login));
  return r.empty() ? std::string("none") : std::string(r[0][0].c_str());
}

void insert_user(const std::string& conninfo, const std::string& login) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  tx.exec("INSERT INTO users (login, first_name) VALUES (" + tx.quote(login) + ", 'resync')");
  tx.commit();
}

std::string tombstones(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction q(c);
  return q
      .exec(
          "SELECT count(*) || ':' || coalesce(md5(string_agg(relation || key::text, ',' ORDER BY "
          "relation, key::text)), '-') FROM mpfailover.tombstone")[0][0]
      .c_str();
}

}  // namespace

TEST_SUITE("resync") {
  TEST_CASE("a wiped standby is rebuilt under writes, catches up, verifies clean and ships again") {
    Pair p;
    p.a->start();
    p.b->start();
    p.roles_settled();
    {
      mpf::test::Workload w(p.db_a.conninfo(), 5, "seed");
      w.run(300);
    }
    // b ships something of its own first, so the active's applied position for b is not 0/0:
    // after the wipe, b's fresh log must resume after it, or the active would skip b's changes.
    insert_user(p.db_b.conninfo(), "from-b-before-wipe");
    p.wait_converged();

    // Wipe b: a new, empty database under the same name, catalog and tables re-created.
    p.b->stop();
    {
      pqxx::connection admin(mpf::test::base_conninfo());
      pqxx::nontransaction q(admin);
      q.exec("DROP DATABASE " + p.db_b.name() + " WITH (FORCE)");
      q.exec("CREATE DATABASE " + p.db_b.name());
    }
    p.db_b.init("b");
    Writer writer(p.db_a.conninfo());
    p.b->start();
    p.roles_settled();
    REQUIRE(eventually([&] { return writer.done() > 50; }, 20s));

    auto r = p.cli("b", "resync --json --catch-up-timeout 60s");
    REQUIRE_MESSAGE(r.rc == 0, r.out << r.err << "\nb:\n" << p.log_tail(*p.b));
    auto j = json::parse(r.out);
    CHECK(j["state"] == "done");
    CHECK(j["caught_up"] == true);
    CHECK(j["discarded_changes"] == 0);
    CHECK(j["tables"].size() == 6);  // five tables and the tombstones
    CHECK(j["tables"][0]["table"] == "public.users");
    CHECK(j["tables"][0]["rows"].get<int>() > 0);
    CHECK(j["rows_copied"].get<int>() > 300);
    const int during_copy = writer.done();

    // Writes go on after the copy, then stop; the pair drains and must be equal.
    REQUIRE(eventually([&] { return writer.done() > during_copy + 100; }, 30s));
    writer.stop();
    CHECK(writer.error().empty());
    p.wait_converged();
    CHECK(mpf::test::check_same_content(p.db_a.conninfo(), p.db_b.conninfo()));
    auto v = p.cli("b", "verify");
    CHECK_MESSAGE(v.rc == 0, v.out << v.err);
    // The active's memory of deletes came along (later deletes were applied as usual).
    CHECK(tombstones(p.db_a.conninfo()) == tombstones(p.db_b.conninfo()));
    pqxx::connection b(p.db_b.conninfo());
    pqxx::connection a(p.db_a.conninfo());
    // Nothing of the copy was captured on b (no echo back to the active).
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.change_log") == 0);
    CHECK(scalar(a, "SELECT count(*) FROM mpfailover.conflict") == 0);
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.conflict") == 0);
    // b's own changes reach the active again after its log was renumbered.
    insert_user(p.db_b.conninfo(), "from-b-after-resync");
    CHECK(eventually([&] { return user_id_of(p.db_a.conninfo(), "from-b-after-resync") != "none"; },
                     15s));
    CHECK(user_id_of(p.db_a.conninfo(), "from-b-after-resync") ==
          user_id_of(p.db_b.conninfo(), "from-b-after-resync"));
    auto v2 = p.cli("b", "verify");
    CHECK_MESSAGE(v2.rc == 0, v2.out << v2.err);
  }

  TEST_CASE("resync refuses on the active, with the peer down, with unshipped changes; --force") {
    Pair p;
    p.a->start();
    p.b->start();
    p.roles_settled();
    {
      mpf::test::Workload w(p.db_a.conninfo(), 9, "seed");
      w.run(100);
    }
    p.wait_converged();

    auto on_active = p.cli("a", "resync");
    CHECK(on_active.rc == 1);
    CHECK(on_active.err.find("node \"a\" is active") != std::string::npos);
    CHECK(on_active.err.find("hint: run it on the standby") != std::string::npos);

    // The same login created on both sides while the active's daemon is down: when it comes
    // back, each side's apply stops on the other's row (a unique violation), so b's change stays
    // unshipped: a case for resync --force.
    p.a->stop();
    REQUIRE(eventually(
        [&] {
          auto s = p.cli("b", "status --json");
          return s.rc == 3 && json::parse(s.out)["peer_state"] != "up";  // 3: unhealthy
        },
        20s));
    insert_user(p.db_b.conninfo(), "resync-dup");
    insert_user(p.db_a.conninfo(), "resync-dup");
    const std::string b_row = user_id_of(p.db_b.conninfo(), "resync-dup");
    const std::string a_row = user_id_of(p.db_a.conninfo(), "resync-dup");
    REQUIRE(a_row != b_row);
    auto down = p.cli("b", "resync");
    CHECK(down.rc == 1);
    CHECK(down.err.find("peer \"a\" is") != std::string::npos);
    CHECK(down.err.find("not up and active") != std::string::npos);

    p.a->start();
    p.roles_settled();
    REQUIRE(eventually(
        [&] {
          auto q = p.cli("b", "queue --json");
          return q.rc == 0 && !json::parse(q.out)["blocked"].is_null();
        },
        20s));
    auto unshipped = p.cli("b", "resync");
    CHECK(unshipped.rc == 1);
    CHECK(unshipped.err.find("not yet acknowledged by peer \"a\"") != std::string::npos);
    CHECK(unshipped.err.find("--force") != std::string::npos);
    CHECK(user_id_of(p.db_b.conninfo(), "resync-dup") == b_row);  // nothing touched

    // The rails (#13): --force without a terminal or --yes is refused before anything is done;
    // --dry-run says what would be discarded and does nothing.
    auto unconfirmed = p.cli("b", "resync --force </dev/null");
    CHECK(unconfirmed.rc == 2);
    CHECK(unconfirmed.err.find("--yes") != std::string::npos);
    auto dry = p.cli("b", "resync --force --dry-run --json");
    REQUIRE_MESSAGE(dry.rc == 0, dry.out << dry.err);
    CHECK(json::parse(dry.out)["dry_run"] == true);
    CHECK(json::parse(dry.out)["unacknowledged_transactions"] == 1);
    CHECK(user_id_of(p.db_b.conninfo(), "resync-dup") == b_row);  // nothing touched

    Writer writer(p.db_a.conninfo());
    auto forced = p.cli("b", "resync --force --yes --json --catch-up-timeout 60s");
    REQUIRE_MESSAGE(forced.rc == 0, forced.out << forced.err << "\nb:\n" << p.log_tail(*p.b));
    auto j = json::parse(forced.out);
    CHECK(j["discarded_changes"] == 1);
    CHECK(j["caught_up"] == true);
    writer.stop();
    p.wait_converged();
    CHECK(mpf::test::check_same_content(p.db_a.conninfo(), p.db_b.conninfo()));
    CHECK(user_id_of(p.db_b.conninfo(), "resync-dup") == a_row);
    pqxx::connection b(p.db_b.conninfo());
    CHECK(scalar(b,
                 "SELECT count(*) FROM mpfailover.conflict WHERE kind = 'resync' AND "
                 "relation = 'public.users' AND loser_op = 'I' AND key = ARRAY['" +
                     b_row + "'] AND winner_origin = 'a'") == 1);
    auto v = p.cli("b", "verify");
    CHECK_MESSAGE(v.rc == 0, v.out << v.err);
    // Both directions flow again: the active's stopped apply was unblocked too.
    insert_user(p.db_b.conninfo(), "from-b-after-force");
    const bool shipped = eventually(
        [&] { return user_id_of(p.db_a.conninfo(), "from-b-after-force") != "none"; }, 15s);
    if (!shipped) MESSAGE("a:\n" << p.log_tail(*p.a) << "\nb:\n" << p.log_tail(*p.b));
    CHECK(shipped);
    auto q = p.cli("b", "queue --json");
    REQUIRE(q.rc == 0);
    CHECK(eventually(
        [&] {
          auto qq = p.cli("b", "queue --json");
          return qq.rc == 0 && json::parse(qq.out)["transactions"] == 0;
        },
        15s));
  }
}
