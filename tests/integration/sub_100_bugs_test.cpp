// Ported from PostgreSQL's src/test/subscription/t/100_bugs.pl (past bugs), the cases that fit a
// mirror of tables with primary keys:
// - bug #15114: an index whose predicate calls an immutable SQL function on both nodes;
// - a column dropped on both nodes (dropped before init-db, so capture and apply both see the
//   table as it is): updates and deletes apply;
// - attributes missing from old rows (ALTER TABLE ADD COLUMN ... DEFAULT, stored as
//   attmissingval, never written into those rows): an update of such a row ships the default,
//   not NULL.
//
// Left out, and why: temporary and unlogged tables under FOR ALL TABLES (no "all tables"
// here: only replication.tables is captured); bug #16643 (initial table sync: resync's job);
// cascaded replication (a pair has two nodes); REPLICA IDENTITY USING INDEX changes (the key
// is always the primary key); schema rename inside a transaction (DDL is not replicated; a
// renamed table is schema drift, named by the daemon).
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub100";
    o.base_port = 57000;
    o.port_span = 500;
    o.setup_sql = R"sql(
      CREATE TABLE tab1 (a int PRIMARY KEY, b int);
      CREATE FUNCTION double(x int) RETURNS int IMMUTABLE LANGUAGE SQL AS 'select x * 2';
      CREATE INDEX ON tab1 (b) WHERE a > double(1);
      CREATE TABLE dropped_cols (id int PRIMARY KEY, a int, b_drop int, c int);
      INSERT INTO dropped_cols VALUES (1, 1, 1, 1);
      ALTER TABLE dropped_cols DROP COLUMN b_drop;
      CREATE TABLE tab_default (a int PRIMARY KEY);
      INSERT INTO tab_default VALUES (1), (2), (3);
      ALTER TABLE tab_default ADD COLUMN b bool NOT NULL DEFAULT false;
      ALTER TABLE tab_default ADD COLUMN c text DEFAULT 'old';
    )sql";
    o.tables = {"tab1", "dropped_cols", "tab_default"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_100_bugs") {
  TEST_CASE("bug #15114: an index predicate calling a function does not upset apply") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab1 VALUES (1, 2), (3, 4)");
    exec_sql(p.conn_a(), "UPDATE tab1 SET b = b + 1");
    p.require_query("b", "SELECT a, b FROM tab1 ORDER BY a", "1|3\n3|5");
    p.require_same({"tab1"});
  }

  TEST_CASE("a table with a dropped column: updates and deletes apply") {
    auto& p = pair();
    exec_sql(p.conn_a(), "UPDATE dropped_cols SET a = 100");
    p.require_query("b", "SELECT count(*) FROM dropped_cols WHERE a = 100", "1");
    exec_sql(p.conn_a(), "INSERT INTO dropped_cols VALUES (2, 2, 2)");
    exec_sql(p.conn_a(), "DELETE FROM dropped_cols WHERE id = 1");
    p.require_query("b", "SELECT id, a, c FROM dropped_cols", "2|2|2");
    p.require_same({"dropped_cols"});
  }

  TEST_CASE("rows older than an added column ship its default, not NULL") {
    auto& p = pair();
    exec_sql(p.conn_a(), "UPDATE tab_default SET a = a WHERE a = 1");
    exec_sql(p.conn_a(), "UPDATE tab_default SET b = true WHERE a = 2");
    exec_sql(p.conn_a(), "DELETE FROM tab_default WHERE a = 3");
    p.require_query("b", "SELECT a, b, c FROM tab_default ORDER BY a", "1|f|old\n2|t|old");
    p.require_same({"tab_default"});
  }
}
