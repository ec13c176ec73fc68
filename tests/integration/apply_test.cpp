// Apply: every captured transaction of one node reaches the other exactly once, set-based, with
// the origin position in the same transaction (docs/design.md §2, §3, §9). Reader -> applier
// directly, no network: the transport has its own tests.
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_applier.hpp>
#include <mpf/replicator/pg_log_reader.hpp>

#include "support/compare.hpp"
#include "support/reader_util.hpp"
#include "support/test_db.hpp"
#include "support/workload.hpp"

using mpf::Position;
using mpf::replicator::PgApplier;
using mpf::replicator::PgLogReader;
using mpf::test::scalar;

namespace {

struct Pair {
  mpf::test::TestDatabase a;
  mpf::test::TestDatabase b;
  std::unique_ptr<PgLogReader> reader;
  std::unique_ptr<PgApplier> applier;

  Pair() {
    a.init("a");
    b.init("b");
    auto r = PgLogReader::open(a.conninfo());
    REQUIRE(r);
    reader = std::move(r.value());
    bind();
  }

  void bind() {
    auto ap = PgApplier::open(b.conninfo());
    REQUIRE(ap);
    applier = std::move(ap.value());
    pqxx::connection conn(a.conninfo());
    auto tables = mpf::replicator::installed_tables(conn);
    REQUIRE(tables);
    auto bound = applier->bind("a", *tables);
    REQUIRE_MESSAGE(bound, bound.message());
  }

  // Ships everything committed on a to b; returns the number of chunks applied.
  size_t ship(size_t max_changes = 500) {
    size_t n = 0;
    for (int guard = 0; guard < 100'000; ++guard) {
      auto batch = reader->next_batch(max_changes);
      REQUIRE_MESSAGE(batch, batch.status().message());
      if (batch->empty()) return n;
      auto pos = applier->apply(batch->chunks);
      REQUIRE_MESSAGE(pos, pos.status().message());
      n += batch->chunks.size();
    }
    FAIL("ship did not finish");
    return n;
  }
};

}  // namespace

TEST_SUITE("apply") {
  TEST_CASE("a steady stream of the MeetingPlace mix leaves both databases identical") {
    Pair p;
    mpf::test::Workload w(p.a.conninfo(), 42);
    for (int round = 0; round < 5; ++round) {
      w.run(80);
      p.ship(round % 2 ? 7 : 500);  // small and large groups
    }
    CHECK(mpf::test::check_same_content(p.a.conninfo(), p.b.conninfo()));
    // Applied changes are not captured again on b (no echo).
    pqxx::connection b(p.b.conninfo());
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.change_log") == 0);
    auto applied = p.applier->applied_position();
    REQUIRE(applied);
    CHECK(applied->tick > 0);
  }

  TEST_CASE("a resent group is applied once: apply is keyed by origin position") {
    Pair p;
    mpf::test::Workload w(p.a.conninfo(), 7);
    w.run(60);
    auto batch = p.reader->next_batch(10'000);
    REQUIRE(batch);
    REQUIRE(!batch->empty());
    auto first = p.applier->apply(batch->chunks);
    REQUIRE(first);
    // The ack was lost: the same group arrives again, and again after a restart of the target.
    auto again = p.applier->apply(batch->chunks);
    REQUIRE(again);
    CHECK(*again == *first);
    p.bind();
    auto after_restart = p.applier->apply(batch->chunks);
    REQUIRE(after_restart);
    CHECK(*after_restart == *first);
    CHECK(mpf::test::check_same_content(p.a.conninfo(), p.b.conninfo()));
  }

  TEST_CASE("a crash before commit loses nothing: resuming from the stored position completes") {
    Pair p;
    mpf::test::Workload w(p.a.conninfo(), 99);
    w.run(100);
    // Apply part of the stream, then "crash" the target with a split transaction open.
    {
      pqxx::connection a(p.a.conninfo());
      pqxx::work tx(a);
      tx.exec("INSERT INTO users (login) SELECT 'bulk' || g FROM generate_series(1, 3000) g");
      tx.commit();
    }
    w.run(20);
    int applied_batches = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      auto batch = p.reader->next_batch(250);
      REQUIRE(batch);
      if (batch->empty()) break;
      REQUIRE(p.applier->apply(batch->chunks));
      if (++applied_batches == 3 || (!batch->chunks.back().last && applied_batches > 3)) break;
    }
    p.applier.reset();  // kill: the open transaction is rolled back by the server
    p.bind();
    auto resume = p.applier->applied_position();
    REQUIRE(resume);
    REQUIRE(p.reader->seek(*resume));
    p.ship(250);
    CHECK(mpf::test::check_same_content(p.a.conninfo(), p.b.conninfo()));
  }

  TEST_CASE("a transaction split into parts is committed only with its last part") {
    Pair p;
    {
      pqxx::connection a(p.a.conninfo());
      pqxx::work tx(a);
      tx.exec("INSERT INTO users (login) SELECT 'imp' || g FROM generate_series(1, 5000) g");
      tx.commit();
    }
    pqxx::connection b(p.b.conninfo());
    int parts = 0;
    for (int guard = 0; guard < 100; ++guard) {
      auto batch = p.reader->next_batch(1000);
      REQUIRE(batch);
      if (batch->empty()) break;
      auto pos = p.applier->apply(batch->chunks);
      REQUIRE(pos);
      ++parts;
      const bool done = batch->chunks.back().last;
      CHECK(scalar(b, "SELECT count(*) FROM users") == (done ? 5000 : 0));
      CHECK((pos->tick > 0) == done);
    }
    CHECK(parts == 5);
  }

  TEST_CASE("a constraint failing at commit rolls the group back; the same group applies later") {
    // Foreign keys are deferred, so an orphan fails at COMMIT, not at its statement: the
    // applier ends its transactions by hand, and after such a COMMIT its session must be back
    // outside any transaction, with nothing applied and the position unchanged.
    Pair p;
    pqxx::connection a(p.a.conninfo());
    {
      // An owner that only a has (written as if applied: not captured).
      pqxx::work tx(a);
      tx.exec("SET LOCAL mpfailover.applying = 'on'");
      tx.exec(
          "INSERT INTO users (user_id, login, updated_at) VALUES "
          "('00000000-0000-0000-0000-0000000000aa', 'only_on_a', '2026-01-01 00:00:00+00')");
      tx.commit();
    }
    {
      pqxx::work tx(a);
      tx.exec("INSERT INTO users (login) VALUES ('fine')");
      tx.exec(
          "INSERT INTO meetings (meeting_number, owner_id, starts_at) VALUES "
          "('4711', '00000000-0000-0000-0000-0000000000aa', now())");
      tx.commit();
    }
    auto batch = p.reader->next_batch(100);
    REQUIRE(batch);
    REQUIRE(batch->chunks.size() == 1);
    auto failed = p.applier->apply(batch->chunks);
    REQUIRE_FALSE(failed);
    CAPTURE(failed.status().message());
    CHECK(failed.status().message().find("meetings_owner_id_fkey") != std::string::npos);
    // An orphan is the transaction's fault, not the database's: apply stops naming it (a
    // database-unavailable error would be retried for ever instead).
    CHECK(failed.status().code() == mpf::Code::kFailedPrecondition);
    CHECK(failed.status().message().find("could not apply transaction " +
                                         batch->chunks[0].position.to_string()) !=
          std::string::npos);
    CHECK(failed.status().message().find(
              "mpfailover skip " + batch->chunks[0].position.to_string()) != std::string::npos);
    CHECK_FALSE(p.applier->in_split_transaction());
    pqxx::connection b(p.b.conninfo());
    CHECK(scalar(b, "SELECT count(*) FROM users WHERE login = 'fine'") == 0);
    auto pos = p.applier->applied_position();  // the session is usable again
    REQUIRE(pos);
    CHECK(pos->is_zero());
    {
      pqxx::work tx(b);
      tx.exec("SET LOCAL mpfailover.applying = 'on'");
      tx.exec(
          "INSERT INTO users (user_id, login, updated_at) VALUES "
          "('00000000-0000-0000-0000-0000000000aa', 'only_on_a', '2026-01-01 00:00:00+00')");
      tx.commit();
    }
    auto applied = p.applier->apply(batch->chunks);
    REQUIRE_MESSAGE(applied, applied.status().message());
    CHECK(*applied == batch->chunks.back().position);
    CHECK(mpf::test::check_same_content(p.a.conninfo(), p.b.conninfo()));
  }

  TEST_CASE("unique values moved between rows inside one group still apply") {
    Pair p;
    pqxx::connection a(p.a.conninfo());
    auto exec = [&](const std::string& sql) {
      pqxx::work tx(a);
      tx.exec(sql);
      tx.commit();
    };
    exec(
        "INSERT INTO users (user_id, login) VALUES "
        "('00000000-0000-0000-0000-000000000001', 'x'), "
        "('00000000-0000-0000-0000-000000000002', 'y')");
    p.ship();
    exec("UPDATE users SET login = 'tmp' WHERE login = 'x'");
    exec("UPDATE users SET login = 'x' WHERE login = 'y'");
    exec("UPDATE users SET login = 'y' WHERE login = 'tmp'");
    exec("DELETE FROM users WHERE login = 'y'");
    exec("INSERT INTO users (login) VALUES ('y')");
    p.ship();
    CHECK(mpf::test::check_same_content(p.a.conninfo(), p.b.conninfo()));
  }

  TEST_CASE("a change the target cannot apply stops apply, names the transaction, skips nothing") {
    Pair p;
    {
      // A row only b has, holding a login a is about to use (b's own write: not via a).
      pqxx::connection b(p.b.conninfo());
      pqxx::work tx(b);
      tx.exec("SET LOCAL mpfailover.applying = 'on'");
      tx.exec("INSERT INTO users (login) VALUES ('taken')");
      tx.commit();
    }
    pqxx::connection a(p.a.conninfo());
    {
      pqxx::work tx(a);
      tx.exec("INSERT INTO users (login) VALUES ('fine')");
      tx.commit();
    }
    {
      pqxx::work tx(a);
      tx.exec("INSERT INTO users (login) VALUES ('taken')");
      tx.commit();
    }
    auto batch = p.reader->next_batch(100);
    REQUIRE(batch);
    REQUIRE(batch->chunks.size() == 2);
    auto result = p.applier->apply(batch->chunks);
    REQUIRE_FALSE(result);
    CHECK(result.status().code() == mpf::Code::kFailedPrecondition);
    const std::string msg = result.status().message();
    CAPTURE(msg);
    CHECK(msg.find("could not apply transaction " + batch->chunks[1].position.to_string()) == 0);
    CHECK(msg.find("on \"public.users\"") != std::string::npos);
    CHECK(msg.find("duplicate key") != std::string::npos);
    // The whole group was rolled back: not even the first transaction is half-applied.
    pqxx::connection b(p.b.conninfo());
    CHECK(scalar(b, "SELECT count(*) FROM users WHERE login = 'fine'") == 0);
    auto pos = p.applier->applied_position();
    REQUIRE(pos);
    CHECK(pos->is_zero());
    CHECK(msg.find("hint: fix the cause on this node, or skip the transaction with: mpfailover "
                   "skip " +
                   batch->chunks[1].position.to_string()) != std::string::npos);

    SUBCASE("the operator skips it: apply resumes and the skipped change is recorded") {
      const std::string conf = p.b.write_config_file();
      {
        // The CLI reads the peer's name from the config: b's peer is a.
        std::ifstream in(conf);
        std::stringstream text;
        text << in.rdbuf();
        std::string c = text.str();
        c.replace(c.find("name = a"), 8, "name = b");
        c.replace(c.find("[peer]\nname = b"), 15, "[peer]\nname = a");
        std::ofstream(conf) << c;
      }
      const std::string cmd = std::string(MPF_CLI_PATH) + " --config " + conf + " skip " +
                              batch->chunks[1].position.to_string() +
                              " --reason 'login taken on b' > /dev/null";
      REQUIRE(std::system(cmd.c_str()) == 0);
      p.bind();
      auto resumed = p.applier->apply(batch->chunks);
      REQUIRE_MESSAGE(resumed, resumed.status().message());
      CHECK(*resumed == batch->chunks[1].position);
      CHECK(scalar(b, "SELECT count(*) FROM users WHERE login = 'fine'") == 1);
      CHECK(scalar(b, "SELECT count(*) FROM users WHERE login = 'taken'") == 1);  // b's own
      CHECK(scalar(b,
                   "SELECT count(*) FROM mpfailover.conflict WHERE kind = 'skip' AND "
                   "reason LIKE '%login taken on b' AND loser_origin = 'a'") == 1);
      CHECK(scalar(b, "SELECT count(*) FROM mpfailover.skip_request WHERE done_at IS NOT NULL") ==
            1);
    }
  }

  TEST_CASE("a target whose table differs is refused at bind, naming the table and columns") {
    mpf::test::TestDatabase a;
    mpf::test::TestDatabase b;
    a.init("a");
    b.init("b");
    {
      pqxx::connection conn(b.conninfo());
      pqxx::work tx(conn);
      tx.exec("ALTER TABLE meetings ADD COLUMN room text");
      tx.commit();
    }
    b.init("b");  // b's own capture follows (else bind names b's drift from its init-db first)
    pqxx::connection conn(a.conninfo());
    auto tables = mpf::replicator::installed_tables(conn);
    REQUIRE(tables);
    auto ap = PgApplier::open(b.conninfo());
    REQUIRE(ap);
    auto bound = (*ap)->bind("a", *tables);
    REQUIRE_FALSE(bound);
    CHECK(bound.message() ==
          "table \"public.meetings\" differs from \"a\": columns only here (room), only there ()");
  }
}
