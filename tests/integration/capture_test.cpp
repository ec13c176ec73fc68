// Capture: every change of a replicated table lands in mpfailover.change_log in the same
// transaction, and nothing else does.
#include <doctest/doctest.h>

#include <mpf/replicator/capture.hpp>

#include "support/test_db.hpp"

using mpf::test::scalar;

namespace {

struct LogRow {
  std::string op;
  std::string relation;
  std::string key;
  std::string image;  // text form of the text[] or "NULL"
  std::string txid;
};

std::vector<LogRow> log_rows(pqxx::connection& conn) {
  pqxx::nontransaction q(conn);
  auto r = q.exec(
      "SELECT l.op::text, t.relation, l.key::text, coalesce(l.image::text, 'NULL'), l.txid::text "
      "FROM mpfailover.change_log l JOIN mpfailover.replicated_table t USING (table_id) "
      "ORDER BY l.seq");
  std::vector<LogRow> out;
  for (const auto& row : r) {
    out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                   row[3].as<std::string>(), row[4].as<std::string>()});
  }
  return out;
}

void exec(pqxx::connection& conn, const std::string& sql) {
  pqxx::work tx(conn);
  tx.exec(sql);
  tx.commit();
}

}  // namespace

TEST_SUITE("capture") {
  TEST_CASE("insert, update and delete are captured with key and row image") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn,
         "INSERT INTO users (user_id, login, first_name) VALUES "
         "('00000000-0000-0000-0000-000000000001', 'ann', 'Ann')");
    exec(conn, "UPDATE users SET first_name = 'Anne' WHERE login = 'ann'");
    exec(conn, "DELETE FROM users WHERE login = 'ann'");
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].op == "I");
    CHECK(rows[0].relation == "public.users");
    CHECK(rows[0].key == "{00000000-0000-0000-0000-000000000001}");
    CHECK(rows[0].image.find("ann,Ann") != std::string::npos);
    CHECK(rows[1].op == "U");
    CHECK(rows[1].image.find("ann,Anne") != std::string::npos);
    CHECK(rows[2].op == "D");
    CHECK(rows[2].image == "NULL");
    CHECK(rows[2].key == rows[0].key);
    CHECK(rows[0].txid != rows[1].txid);
  }

  TEST_CASE("a multi-table transaction is captured under one transaction id") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn,
         "WITH u AS (INSERT INTO users (login) VALUES ('owner') RETURNING user_id), "
         "g AS (INSERT INTO groups (name) VALUES ('sales') RETURNING group_id) "
         "INSERT INTO group_members (group_id, user_id) SELECT g.group_id, u.user_id FROM g, u");
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].txid == rows[1].txid);
    CHECK(rows[1].txid == rows[2].txid);
  }

  TEST_CASE("rolled-back work leaves nothing in the log") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO users (login) VALUES ('ghost')");
      tx.abort();
    }
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO users (login) VALUES ('kept')");
      tx.exec("SAVEPOINT s");
      tx.exec("INSERT INTO users (login) VALUES ('undone')");
      tx.exec("ROLLBACK TO SAVEPOINT s");
      tx.commit();
    }
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].image.find("kept") != std::string::npos);
  }

  TEST_CASE("changes made by the applier's session are not captured again") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec(std::string("SET LOCAL ") + mpf::replicator::kApplyingSetting + " = 'on'");
      tx.exec("INSERT INTO users (login) VALUES ('from-peer')");
      tx.exec("UPDATE users SET first_name = 'P' WHERE login = 'from-peer'");
      tx.commit();
    }
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 0);
    // The setting was LOCAL: the same connection's next transaction is captured again.
    exec(conn, "DELETE FROM users WHERE login = 'from-peer'");
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 1);
  }

  TEST_CASE("an update that changes the primary key is captured as delete then insert") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn,
         "INSERT INTO groups (group_id, name) VALUES "
         "('00000000-0000-0000-0000-00000000000a', 'g')");
    exec(conn, "UPDATE groups SET group_id = '00000000-0000-0000-0000-00000000000b'");
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 3);
    CHECK(rows[1].op == "D");
    CHECK(rows[1].key == "{00000000-0000-0000-0000-00000000000a}");
    CHECK(rows[2].op == "I");
    CHECK(rows[2].key == "{00000000-0000-0000-0000-00000000000b}");
    CHECK(rows[1].txid == rows[2].txid);
  }

  TEST_CASE("row images do not depend on the writer's DateStyle") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec("SET LOCAL DateStyle = 'SQL, DMY'");
      tx.exec("SET LOCAL TimeZone = 'UTC'");
      tx.exec("INSERT INTO users (login, updated_at) VALUES ('tz', '2030-01-02 03:04:05+00')");
      tx.commit();
    }
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].image.find("2030-01-02 03:04:05") != std::string::npos);
  }

  TEST_CASE("a column dropped without re-running init-db stops writes with a named error") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn, "ALTER TABLE users DROP COLUMN phone");
    {
      pqxx::work tx(conn);
      CHECK_THROWS_WITH_AS(tx.exec("INSERT INTO users (login) VALUES ('x')"),
                           doctest::Contains("replicated table \"users\" has no column \"phone\""),
                           pqxx::sql_error);
    }
    // init-db regenerates capture for the new definition and writes flow again.
    db.init();
    exec(conn, "INSERT INTO users (login) VALUES ('y')");
    auto rows = log_rows(conn);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].image.find("y") != std::string::npos);
  }

  TEST_CASE("capture keeps the log's txid index complete (catalog 0006)") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    CHECK(scalar(
              conn,
              "SELECT count(*) FROM pg_index WHERE indrelid = 'mpfailover.change_log'::regclass") ==
          1);
    exec(conn,
         "INSERT INTO users (login) SELECT 'idx' || i FROM generate_series(1, 300) i;"
         "UPDATE users SET first_name = 'F' WHERE login LIKE 'idx1%'");
    exec(conn, "DELETE FROM users WHERE login = 'idx7'");
    exec(conn, "CREATE EXTENSION IF NOT EXISTS amcheck");
    // heapallindexed: every log row must be in the index (a row the trigger did not index fails).
    exec(conn, "SELECT bt_index_check('mpfailover.change_log_txid', true)");
    // And the reader's range condition finds them through it.
    exec(conn, "SET enable_seqscan = off");
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.change_log WHERE txid >= '0'::xid8") ==
          scalar(conn, "SELECT count(*) FROM (SELECT * FROM mpfailover.change_log OFFSET 0) x"));
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 300 + 111 + 1);
  }

  TEST_CASE("an index capture cannot maintain is refused by name, not silently left incomplete") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn, "CREATE INDEX change_log_expr ON mpfailover.change_log ((seq + 1))");
    pqxx::work tx(conn);
    CHECK_THROWS_WITH_AS(tx.exec("INSERT INTO users (login) VALUES ('x')"),
                         doctest::Contains("index \"change_log_expr\" cannot be maintained"),
                         pqxx::sql_error);
  }

  TEST_CASE("TRUNCATE of a replicated table is refused, not silently skipped") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    pqxx::work tx(conn);
    CHECK_THROWS_WITH_AS(tx.exec("TRUNCATE meeting_participants"),
                         doctest::Contains("is not replicated"), pqxx::sql_error);
  }

  TEST_CASE("any table with a primary key can be replicated; others are refused by name") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn,
         "CREATE SCHEMA site; CREATE TABLE site.rooms (room text PRIMARY KEY, seats int);"
         "CREATE TABLE audit_log (at timestamptz, what text)");
    SUBCASE("schema-qualified table with a text key") {
      auto report = mpf::server::init_db(db.config("a", {"users", "site.rooms"}), {});
      REQUIRE_MESSAGE(report, report.status().message());
      exec(conn, "INSERT INTO site.rooms VALUES ('blue', 12)");
      auto rows = log_rows(conn);
      REQUIRE(rows.size() == 1);
      CHECK(rows[0].relation == "site.rooms");
      CHECK(rows[0].key == "{blue}");
    }
    SUBCASE("table without a primary key") {
      auto report = mpf::server::init_db(db.config("a", {"users", "audit_log"}), {});
      REQUIRE_FALSE(report);
      CHECK(report.status().message().rfind("replicated table \"audit_log\" has no primary key",
                                            0) == 0);
    }
    SUBCASE("table that does not exist") {
      auto report = mpf::server::init_db(db.config("a", {"users", "rooms"}), {});
      REQUIRE_FALSE(report);
      CHECK(report.status().message().rfind(
                "replicated table \"rooms\" does not exist in the node's database", 0) == 0);
      auto checked = mpf::server::check_database(db.config("a", {"users", "rooms"}));
      REQUIRE_FALSE(checked);
      CHECK(checked.message().find("\"rooms\" does not exist") != std::string::npos);
    }
    SUBCASE("configured table whose capture was never installed") {
      auto checked = mpf::server::check_database(db.config("a", {"users", "site.rooms"}));
      REQUIRE_FALSE(checked);
      CHECK(checked.message().find("\"site.rooms\" has no capture installed") != std::string::npos);
    }
  }
}
