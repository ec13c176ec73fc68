// Ported from PostgreSQL's src/test/subscription/t/003_constraints.pl (constraints and
// triggers on the subscriber): a foreign key with an out-of-line (TOAST) value, and a trigger
// enabled as REPLICA that filters applied inserts and updates.
//
// Changed for a mirror: the same definitions on both nodes (upstream orders tab_fk_ref's
// columns differently on the subscriber: schema drift here). Added: parent and child deleted in
// one transaction (children first), and an ordinary BEFORE trigger present on both nodes that
// must not fire again for an applied change (issue #12, "Semantics").
//
// Left out, and why: "FK is not enforced on subscriber" after `DROP TABLE tab_fk CASCADE` on
// the publisher only: DDL is not replicated, and a table dropped on one node is schema drift.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub003";
    o.base_port = 53000;
    o.port_span = 500;
    o.setup_sql = R"sql(
      CREATE TABLE tab_fk (bid int PRIMARY KEY);
      CREATE TABLE tab_fk_ref (id int PRIMARY KEY, junk text, bid int REFERENCES tab_fk (bid));
      CREATE TABLE tab_trig (id int PRIMARY KEY, bid int);
      CREATE TABLE tab_stamp (id int PRIMARY KEY, v text, writes int NOT NULL DEFAULT 0);
      CREATE FUNCTION count_writes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.writes := coalesce(NEW.writes, 0) + 1; RETURN NEW; END $$;
      CREATE TRIGGER count_writes BEFORE INSERT OR UPDATE ON tab_stamp
        FOR EACH ROW EXECUTE FUNCTION count_writes();
    )sql";
    o.tables = {"tab_fk", "tab_fk_ref", "tab_trig", "tab_stamp"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_003_constraints") {
  TEST_CASE("a parent and a child with a TOAST value arrive under the foreign key") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab_fk (bid) VALUES (1)");
    exec_sql(p.conn_a(),
             "INSERT INTO tab_fk_ref (id, bid, junk) VALUES (1, 1, repeat(pi()::text, 20000))");
    p.require_query("b", "SELECT count(*), min(bid), max(bid) FROM tab_fk", "1|1|1");
    p.require_query("b", "SELECT count(*), min(bid), max(bid) FROM tab_fk_ref", "1|1|1");
    p.require_same({"tab_fk", "tab_fk_ref"});
  }

  TEST_CASE("parents and children written and removed in single transactions") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "BEGIN; INSERT INTO tab_fk VALUES (2), (3); "
             "INSERT INTO tab_fk_ref (id, bid) VALUES (2, 2), (3, 3); COMMIT");
    p.require_query("b", "SELECT count(*) FROM tab_fk_ref", "3");
    exec_sql(p.conn_a(),
             "BEGIN; DELETE FROM tab_fk_ref WHERE bid = 3; DELETE FROM tab_fk WHERE bid = 3; "
             "UPDATE tab_fk_ref SET bid = 2 WHERE id = 1; COMMIT");
    p.require_query("b", "SELECT string_agg(id || ':' || bid, ',' ORDER BY id) FROM tab_fk_ref",
                    "1:2,2:2");
    p.require_same({"tab_fk", "tab_fk_ref"});
  }

  TEST_CASE("a REPLICA trigger on the target filters applied inserts and updates" *
            doctest::skip()) {
    // Skipped: issue #12, "Seen on the landed code", third item (applied changes must fire
    // ENABLE REPLICA and ALWAYS triggers and not ordinary ones), being fixed separately.
    auto& p = pair();
    exec_sql(p.conn_b(), R"sql(
      CREATE FUNCTION filter_basic_dml_fn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (TG_OP = 'INSERT') THEN
          IF (NEW.id < 10) THEN RETURN NEW; ELSE RETURN NULL; END IF;
        ELSIF (TG_OP = 'UPDATE') THEN RETURN NULL;
        ELSE RAISE WARNING 'Unknown action'; RETURN NULL;
        END IF;
      END $$;
      CREATE TRIGGER filter_basic_dml_trg BEFORE INSERT OR UPDATE OF bid ON tab_trig
        FOR EACH ROW EXECUTE PROCEDURE filter_basic_dml_fn();
      ALTER TABLE tab_trig ENABLE REPLICA TRIGGER filter_basic_dml_trg;
    )sql");
    exec_sql(p.conn_a(), "INSERT INTO tab_trig VALUES (1, 1), (2, 2)");
    p.require_query("b", "SELECT count(*), min(bid), max(bid) FROM tab_trig", "2|1|2");
    // The trigger skips the insert on b ...
    exec_sql(p.conn_a(), "INSERT INTO tab_trig VALUES (10, 10)");
    // ... and the updates, also of another column (a whole row is applied).
    exec_sql(p.conn_a(), "UPDATE tab_trig SET bid = 2 WHERE bid = 1");
    exec_sql(p.conn_a(), "UPDATE tab_trig SET id = 6 WHERE id = 1");
    // A marker the trigger lets through: everything before it has been applied.
    exec_sql(p.conn_a(), "INSERT INTO tab_trig VALUES (3, 3)");
    p.require_query("b", "SELECT count(*) FROM tab_trig WHERE id = 3", "1");
    CHECK(query_text(p.conn_b(),
                     "SELECT string_agg(id || ':' || bid, ',' ORDER BY id) "
                     "FROM tab_trig") == "1:1,2:2,3:3");
    exec_sql(p.conn_b(), "DROP TRIGGER filter_basic_dml_trg ON tab_trig");
  }

  TEST_CASE("an ordinary BEFORE trigger on both nodes does not fire again on apply" *
            doctest::skip()) {
    // Skipped: issue #12, "Seen on the landed code", third item, being fixed separately.
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab_stamp (id, v) VALUES (1, 'x')");
    exec_sql(p.conn_a(), "UPDATE tab_stamp SET v = 'y' WHERE id = 1");
    p.require_query("b", "SELECT v, writes FROM tab_stamp", "y|2");
    p.require_same({"tab_stamp"});
  }
}
