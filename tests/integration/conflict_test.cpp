// Both nodes write during a partition; after it heals both databases hold the same content and
// every overridden change is recorded, on both nodes (docs/design.md §4). Reader -> applier in both
// directions, no network: the partition is simply not shipping.
#include <chrono>
#include <random>
#include <thread>

#include <doctest/doctest.h>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_applier.hpp>
#include <mpf/replicator/pg_log_reader.hpp>

#include "support/compare.hpp"
#include "support/test_db.hpp"

using mpf::replicator::PgApplier;
using mpf::replicator::PgLogReader;
using mpf::test::scalar;

namespace {

struct Direction {
  std::unique_ptr<PgLogReader> reader;
  std::unique_ptr<PgApplier> applier;

  Direction(const mpf::test::TestDatabase& from, const std::string& from_name,
            const mpf::test::TestDatabase& to) {
    auto r = PgLogReader::open(from.conninfo());
    REQUIRE(r);
    reader = std::move(r.value());
    auto a = PgApplier::open(to.conninfo());
    REQUIRE(a);
    applier = std::move(a.value());
    pqxx::connection conn(from.conninfo());
    auto tables = mpf::replicator::installed_tables(conn);
    REQUIRE(tables);
    auto bound = applier->bind(from_name, *tables);
    REQUIRE_MESSAGE(bound, bound.message());
  }

  void ship() {
    for (int guard = 0; guard < 10'000; ++guard) {
      auto batch = reader->next_batch(300);
      REQUIRE_MESSAGE(batch, batch.status().message());
      if (batch->empty()) return;
      auto pos = applier->apply(batch->chunks);
      REQUIRE_MESSAGE(pos, pos.status().message());
    }
    FAIL("ship did not finish");
  }
};

struct TwoNodes {
  mpf::test::TestDatabase a;
  mpf::test::TestDatabase b;
  std::unique_ptr<Direction> a_to_b;
  std::unique_ptr<Direction> b_to_a;

  TwoNodes() {
    a.init("a");
    b.init("b");
    a_to_b = std::make_unique<Direction>(a, "a", b);
    b_to_a = std::make_unique<Direction>(b, "b", a);
  }

  void heal() {
    // Each direction once, then once more: what one side applies is not captured again, so two
    // rounds settle everything.
    for (int round = 0; round < 2; ++round) {
      a_to_b->ship();
      b_to_a->ship();
    }
  }

  static void exec(const mpf::test::TestDatabase& db, const std::string& sql) {
    pqxx::connection conn(db.conninfo());
    pqxx::work tx(conn);
    tx.exec(sql);
    tx.commit();
  }
};

const std::string kUser = "'00000000-0000-0000-0000-0000000000aa'";

}  // namespace

TEST_SUITE("conflicts") {
  TEST_CASE("concurrent updates of one row: the later wins on both nodes, recorded on both") {
    TwoNodes n;
    TwoNodes::exec(n.a, "INSERT INTO users (user_id, login) VALUES (" + kUser + ", 'ann')");
    n.heal();
    TwoNodes::exec(n.a, "UPDATE users SET first_name = 'from a' WHERE user_id = " + kUser);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    TwoNodes::exec(n.b, "UPDATE users SET first_name = 'from b' WHERE user_id = " + kUser);
    n.heal();
    CHECK(mpf::test::check_same_content(n.a.conninfo(), n.b.conninfo()));
    pqxx::connection a(n.a.conninfo());
    pqxx::connection b(n.b.conninfo());
    CHECK(scalar(a, "SELECT count(*) FROM users WHERE first_name = 'from b'") == 1);
    for (auto* conn : {&a, &b}) {
      CHECK(scalar(*conn,
                   "SELECT count(*) FROM mpfailover.conflict WHERE kind = 'lww' AND "
                   "winner_origin = 'b' AND loser_origin = 'a' AND relation = "
                   "'public.users'") == 1);
    }
  }

  TEST_CASE("an update later than a delete restores the row on both nodes") {
    TwoNodes n;
    TwoNodes::exec(n.a, "INSERT INTO users (user_id, login) VALUES (" + kUser + ", 'bob')");
    n.heal();
    TwoNodes::exec(n.a, "DELETE FROM users WHERE user_id = " + kUser);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    TwoNodes::exec(n.b, "UPDATE users SET first_name = 'kept' WHERE user_id = " + kUser);
    n.heal();
    CHECK(mpf::test::check_same_content(n.a.conninfo(), n.b.conninfo()));
    pqxx::connection a(n.a.conninfo());
    CHECK(scalar(a, "SELECT count(*) FROM users WHERE first_name = 'kept'") == 1);
    pqxx::connection b(n.b.conninfo());
    CHECK(scalar(a, "SELECT count(*) FROM mpfailover.conflict") >= 1);
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.conflict") >= 1);
  }

  TEST_CASE("a late update does not resurrect a row deleted after it") {
    TwoNodes n;
    TwoNodes::exec(n.a, "INSERT INTO users (user_id, login) VALUES (" + kUser + ", 'cy')");
    n.heal();
    TwoNodes::exec(n.a, "UPDATE users SET first_name = 'stale' WHERE user_id = " + kUser);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    TwoNodes::exec(n.b, "DELETE FROM users WHERE user_id = " + kUser);
    SUBCASE("the delete arrives first") {
      n.b_to_a->ship();
      n.a_to_b->ship();
    }
    SUBCASE("the update arrives first") {
      n.a_to_b->ship();
      n.b_to_a->ship();
    }
    n.heal();
    CHECK(mpf::test::check_same_content(n.a.conninfo(), n.b.conninfo()));
    pqxx::connection a(n.a.conninfo());
    pqxx::connection b(n.b.conninfo());
    CHECK(scalar(a, "SELECT count(*) FROM users") == 0);
    CHECK(scalar(b, "SELECT count(*) FROM users") == 0);
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.conflict WHERE loser_origin = 'a'") == 1);
  }

  TEST_CASE("a change made after applying the peer's change wins, even against the peer's clock") {
    TwoNodes n;
    TwoNodes::exec(n.a, "INSERT INTO users (user_id, login) VALUES (" + kUser + ", 'dee')");
    n.heal();
    // Node a's clock runs 300 ms ahead: its change carries a timestamp in b's future.
    TwoNodes::exec(n.a, "UPDATE users SET first_name = 'a' WHERE user_id = " + kUser);
    auto batch = n.a_to_b->reader->next_batch(100);
    REQUIRE(batch);
    REQUIRE(batch->chunks.size() == 1);
    const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (auto& c : batch->chunks[0].changes) c.hlc = now_us + 300'000;
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(n.a_to_b->applier->apply(batch->chunks));
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(290));  // commit wait
    // b edits the row after seeing a's change: b's edit must win on both nodes.
    TwoNodes::exec(n.b, "UPDATE users SET first_name = 'b after a' WHERE user_id = " + kUser);
    n.heal();
    CHECK(mpf::test::check_same_content(n.a.conninfo(), n.b.conninfo()));
    pqxx::connection a(n.a.conninfo());
    CHECK(scalar(a, "SELECT count(*) FROM users WHERE first_name = 'b after a'") == 1);
  }

  // A random partition: both nodes insert, update and delete overlapping rows, with no
  // shipping; then heal. Content must converge and every conflict be recorded on both nodes.
  TEST_CASE("writes on both nodes during a partition converge after healing") {
    TwoNodes n;
    TwoNodes::exec(n.a,
                   "INSERT INTO users (user_id, login) SELECT ('00000000-0000-0000-0000-' || "
                   "lpad(g::text, 12, '0'))::uuid, 'shared' || g FROM generate_series(1, 40) g");
    TwoNodes::exec(n.a,
                   "INSERT INTO groups (group_id, name) SELECT ('10000000-0000-0000-0000-' || "
                   "lpad(g::text, 12, '0'))::uuid, 'g' || g FROM generate_series(1, 20) g");
    n.heal();
    for (uint64_t seed : {11u, 12u, 13u}) {
      CAPTURE(seed);
      std::mt19937_64 rng(seed);
      for (int i = 0; i < 120; ++i) {
        const auto& db = rng() % 2 ? n.a : n.b;
        const std::string who = &db == &n.a ? "a" : "b";
        const std::string u = "'00000000-0000-0000-0000-" + std::string(10, '0') +
                              std::to_string(10 + rng() % 30) + "'";
        const std::string g = "'10000000-0000-0000-0000-" + std::string(10, '0') +
                              std::to_string(10 + rng() % 10) + "'";
        switch (rng() % 6) {
          case 0:
            TwoNodes::exec(db, "DELETE FROM users WHERE user_id = " + u);
            break;
          case 1:
            TwoNodes::exec(db, "INSERT INTO users (user_id, login) VALUES (" + u + ", 'x' || " + u +
                                   ") ON CONFLICT (user_id) DO UPDATE SET phone = '" + who + "'");
            break;
          case 2:
            TwoNodes::exec(db, "DELETE FROM groups WHERE group_id = " + g);
            break;
          case 3:
            TwoNodes::exec(db, "INSERT INTO groups (group_id, name) VALUES (" + g + ", 'n' || " +
                                   g + ") ON CONFLICT (group_id) DO UPDATE SET description = '" +
                                   who + std::to_string(i) + "'");
            break;
          default:
            TwoNodes::exec(db, "UPDATE users SET first_name = '" + who + std::to_string(i) +
                                   "' WHERE user_id = " + u);
        }
      }
      n.heal();
      CHECK(mpf::test::check_same_content(n.a.conninfo(), n.b.conninfo(), {"users", "groups"}));
    }
    pqxx::connection a(n.a.conninfo());
    pqxx::connection b(n.b.conninfo());
    const auto ca = scalar(a, "SELECT count(*) FROM mpfailover.conflict");
    const auto cb = scalar(b, "SELECT count(*) FROM mpfailover.conflict");
    CHECK(ca > 0);
    CHECK(cb > 0);
  }
}
