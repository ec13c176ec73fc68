// Ported from PostgreSQL's src/test/subscription/t/001_rep_changes.pl (basic logical
// replication): inserts, deletes and key updates on a table with a primary key, a covering
// (INCLUDE) primary key, full-row updates with NULLs, out-of-line (TOAST) values left unchanged
// by an update, several statements in one transaction, and two tables in one transaction.
//
// Left out, and why (docs/compatibility.md):
// - tab_notrep, tab_ins, tab_full, tab_full2, tab_no_replidentity_index: no primary key.
//   mpfailover replicates tables with a primary key only; init-db refuses the others (the last
//   case here proves it for tab_full).
// - tab_mixed (a different column order and an extra column on the subscriber): a mirror has
//   the same definition on both nodes; a different one is schema drift, which check reports.
// - publications with `publish = insert`, ALTER/REFRESH PUBLICATION, ALTER SUBSCRIPTION,
//   renames and slot clean-up: mpfailover has no publications or subscriptions; every change of
//   every configured table is replicated, and the table set is replication.tables + init-db.
// - temporary and unlogged tables ignored by FOR ALL TABLES: mpfailover has no "all tables";
//   only the listed tables are captured.
#include <doctest/doctest.h>

#include <mpf/server/init_db.hpp>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub001";
    o.base_port = 50000;
    o.port_span = 500;
    o.setup_sql = R"sql(
      CREATE TABLE tab_rep (a int PRIMARY KEY);
      CREATE TABLE tab_full_pk (a int PRIMARY KEY, b text);
      ALTER TABLE tab_full_pk REPLICA IDENTITY FULL;
      CREATE TABLE tab_toast (a int PRIMARY KEY, b text, c int);
      CREATE TABLE tab_multi (a int PRIMARY KEY, b text);
      CREATE TABLE tab_include (a int, b text, CONSTRAINT covering PRIMARY KEY (a) INCLUDE (b));
    )sql";
    o.tables = {"tab_rep", "tab_full_pk", "tab_toast", "tab_multi", "tab_include"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_001_rep_changes") {
  TEST_CASE("inserts, deletes and a key update of every row arrive (tab_rep)") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab_rep SELECT generate_series(1, 50)");
    exec_sql(p.conn_a(), "DELETE FROM tab_rep WHERE a > 20");
    exec_sql(p.conn_a(), "UPDATE tab_rep SET a = -a");
    p.require_query("b", "SELECT count(*), min(a), max(a) FROM tab_rep", "20|-20|-1");
    p.require_same({"tab_rep"});
    // ... and DELETE of everything.
    exec_sql(p.conn_a(), "DELETE FROM tab_rep");
    p.require_query("b", "SELECT count(*) FROM tab_rep", "0");
  }

  TEST_CASE("updates and deletes with REPLICA IDENTITY FULL and a primary key (tab_full_pk)") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab_full_pk VALUES (1, 'foo'), (2, 'baz')");
    p.require_same({"tab_full_pk"});
    exec_sql(p.conn_a(),
             "UPDATE tab_full_pk SET b = 'bar' WHERE a = 1; "
             "UPDATE tab_full_pk SET b = NULL WHERE a = 2");
    p.require_query("b", "SELECT a, b FROM tab_full_pk ORDER BY a", "1|bar\n2|");
    exec_sql(p.conn_a(), "DELETE FROM tab_full_pk WHERE a = 2");
    p.require_query("b", "SELECT a, b FROM tab_full_pk ORDER BY a", "1|bar");
    p.require_same({"tab_full_pk"});
  }

  TEST_CASE("an update that leaves an out-of-line (TOAST) value unchanged keeps it") {
    auto& p = pair();
    // Big enough to be stored out of line (and compressed) on both nodes.
    exec_sql(p.conn_a(),
             "INSERT INTO tab_toast SELECT i, repeat(md5(i::text), 4000), 0 "
             "FROM generate_series(1, 3) i");
    p.require_same({"tab_toast"});
    exec_sql(p.conn_a(), "UPDATE tab_toast SET c = c + 1");
    p.require_query("b", "SELECT count(*) FROM tab_toast WHERE c = 1 AND length(b) = 128000", "3");
    p.require_same({"tab_toast"});
    exec_sql(p.conn_a(), "DELETE FROM tab_toast WHERE a = 2");
    p.require_query("b", "SELECT string_agg(a::text, ',' ORDER BY a) FROM tab_toast", "1,3");
  }

  TEST_CASE("many statements on the same keys in one transaction arrive as their net effect") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "BEGIN; "
             "INSERT INTO tab_multi SELECT i, 'v' || i FROM generate_series(1, 100) i; "
             "UPDATE tab_multi SET b = b || '-u1' WHERE a % 2 = 0; "
             "DELETE FROM tab_multi WHERE a % 3 = 0; "
             "UPDATE tab_multi SET a = a + 1000 WHERE a % 5 = 0; "
             "INSERT INTO tab_multi VALUES (3, 'back'); "
             "INSERT INTO tab_rep VALUES (7); "
             "COMMIT");
    p.require_query("b", "SELECT count(*) FROM tab_multi", "68");
    p.require_same({"tab_multi", "tab_rep"});
  }

  TEST_CASE("a covering primary key (INCLUDE) keys on its key columns only (tab_include)" *
            doctest::skip()) {
    // Skipped: issue #12, "Seen on the landed code", first item (INCLUDE columns taken as key
    // columns); being fixed separately. tab_include is
    // already replicated above; only this case writes to it.
    auto& p = pair();
    exec_sql(p.conn_a(),
             "INSERT INTO tab_include SELECT a, 'x' || a FROM generate_series(1, 10) a");
    exec_sql(p.conn_a(),
             "UPDATE tab_include SET b = 'y' WHERE a <= 5; DELETE FROM tab_include "
             "WHERE a > 8");
    p.require_query("b", "SELECT count(*), count(*) FILTER (WHERE b = 'y') FROM tab_include",
                    "8|5");
    p.require_same({"tab_include"});
  }

  TEST_CASE("a table without a primary key (tab_full) is refused by init-db, naming it") {
    mpf::test::TestDatabase db;
    exec_sql(db.conninfo(), "CREATE TABLE tab_full AS SELECT generate_series(1, 10) AS a");
    mpf::server::InitDbOptions options;
    auto report = mpf::server::init_db(db.config("a", {"tab_full"}), options);
    REQUIRE_FALSE(report);
    CHECK(report.status().message().find("tab_full") != std::string::npos);
    CHECK(report.status().message().find("primary key") != std::string::npos);
  }
}
