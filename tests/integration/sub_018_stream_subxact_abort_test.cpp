// Ported from PostgreSQL's src/test/subscription/t/018_stream_subxact_abort.pl (large
// transactions with aborted subtransactions): the changes of a subtransaction rolled back to
// its savepoint never arrive; those before and after it do; a transaction rolled back as a
// whole sends nothing.
//
// Changed for a mirror: no extra subscriber columns. Left out: `streaming = parallel`.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub018";
    o.base_port = 60000;
    o.port_span = 250;
    o.setup_sql =
        "CREATE TABLE test_tab (a int PRIMARY KEY, b varchar);"
        "INSERT INTO test_tab VALUES (1, 'foo'), (2, 'bar')";
    o.tables = {"test_tab"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_018_stream_subxact_abort") {
  TEST_CASE("rolled-back subtransactions leave out exactly their changes") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      BEGIN;
      INSERT INTO test_tab VALUES (3, md5(3::text));
      SAVEPOINT s1;
      INSERT INTO test_tab VALUES (4, md5(4::text));
      SAVEPOINT s2;
      INSERT INTO test_tab VALUES (5, md5(5::text));
      SAVEPOINT s3;
      INSERT INTO test_tab VALUES (6, md5(6::text));
      ROLLBACK TO s2;
      INSERT INTO test_tab VALUES (7, md5(7::text));
      ROLLBACK TO s1;
      INSERT INTO test_tab VALUES (8, md5(8::text));
      SAVEPOINT s4;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(9, 2000) s(i);
      UPDATE test_tab SET b = 'rolled back' WHERE a = 1;
      ROLLBACK TO s4;
      UPDATE test_tab SET b = 'kept' WHERE a = 2;
      COMMIT;
    )sql");
    p.require_query("b", "SELECT string_agg(a || ':' || left(b, 4), ',' ORDER BY a) FROM test_tab",
                    "1:foo,2:kept,3:eccb,8:c9f0");
    p.require_same({"test_tab"});
  }

  TEST_CASE("a large transaction rolled back as a whole sends nothing") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "BEGIN; INSERT INTO test_tab SELECT i, 'x' FROM "
             "generate_series(3000, 6000) i; DELETE FROM test_tab WHERE a = 1; "
             "ROLLBACK");
    exec_sql(p.conn_a(), "INSERT INTO test_tab VALUES (9999, 'marker')");
    p.require_query("b", "SELECT count(*) FROM test_tab WHERE a = 9999", "1");
    CHECK(query_text(p.conn_b(), "SELECT count(*) FROM test_tab") == "5");
    p.require_same({"test_tab"});
  }
}
