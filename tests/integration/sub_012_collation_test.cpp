// Ported from PostgreSQL's src/test/subscription/t/012_collation.pl (nondeterministic
// collations): a primary key with a nondeterministic ICU collation; the target's row is equal
// to the source's by the collation but not byte for byte ('äbc' precomposed on a, 'a' +
// combining diaeresis + 'bc' on b). An update of another column on a must find and update b's
// row through the collation, not add a second one.
//
// Changed for a mirror: the collation and table exist on both nodes (upstream's publisher has
// no collation on the column). Left out: tab2 (REPLICA IDENTITY FULL without a primary key),
// refused by init-db like every table without one.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub012";
    o.base_port = 55000;
    o.port_span = 500;
    o.setup_sql = R"sql(
      CREATE COLLATION ctest_nondet (provider = icu, locale = 'und', deterministic = false);
      CREATE TABLE tab1 (a text COLLATE ctest_nondet PRIMARY KEY, b text);
    )sql";
    o.tables = {"tab1"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_012_collation") {
  TEST_CASE("an update finds the target's row through a nondeterministic key collation") {
    auto& p = pair();
    // Pre-existing rows on each node, written behind the replicator's back (not captured).
    exec_sql(p.conn_a(),
             "BEGIN; SET LOCAL mpfailover.applying = on; "
             "INSERT INTO tab1 VALUES (U&'\\00E4bc', 'foo'); COMMIT");
    exec_sql(p.conn_b(),
             "BEGIN; SET LOCAL mpfailover.applying = on; "
             "INSERT INTO tab1 VALUES (U&'\\0061\\0308bc', 'foo'); COMMIT");
    exec_sql(p.conn_a(), "UPDATE tab1 SET b = 'bar' WHERE b = 'foo'");
    p.require_query("b", "SELECT b FROM tab1", "bar");
    CHECK(query_text(p.conn_b(), "SELECT count(*) FROM tab1") == "1");
    // Deleted through the collation as well.
    exec_sql(p.conn_a(), "DELETE FROM tab1");
    p.require_query("b", "SELECT count(*) FROM tab1", "0");
  }
}
