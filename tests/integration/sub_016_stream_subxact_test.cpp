// Ported from PostgreSQL's src/test/subscription/t/016_stream_subxact.pl (a large transaction
// with many subtransactions): inserts, updates and deletes spread over savepoints, all
// committed, arrive as one transaction.
//
// Changed for a mirror: upstream's subscriber has extra columns with local defaults (schema
// drift here). Left out: `streaming = parallel` (no apply workers to choose).
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub016";
    o.base_port = 59500;
    o.port_span = 250;
    o.setup_sql =
        "CREATE TABLE test_tab (a int PRIMARY KEY, b varchar);"
        "INSERT INTO test_tab VALUES (1, 'foo'), (2, 'bar')";
    o.tables = {"test_tab"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_016_stream_subxact") {
  TEST_CASE("a large transaction across savepoints arrives whole") {
    auto& p = pair();
    exec_sql(p.conn_a(), R"sql(
      BEGIN;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(3, 500) s(i);
      UPDATE test_tab SET b = md5(b) WHERE mod(a, 2) = 0;
      DELETE FROM test_tab WHERE mod(a, 3) = 0;
      SAVEPOINT s1;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(501, 1000) s(i);
      UPDATE test_tab SET b = md5(b) WHERE mod(a, 2) = 0;
      DELETE FROM test_tab WHERE mod(a, 3) = 0;
      SAVEPOINT s2;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(1001, 1500) s(i);
      UPDATE test_tab SET b = md5(b) WHERE mod(a, 2) = 0;
      DELETE FROM test_tab WHERE mod(a, 3) = 0;
      SAVEPOINT s3;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(1501, 2000) s(i);
      UPDATE test_tab SET b = md5(b) WHERE mod(a, 2) = 0;
      DELETE FROM test_tab WHERE mod(a, 3) = 0;
      SAVEPOINT s4;
      INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(2001, 2500) s(i);
      UPDATE test_tab SET b = md5(b) WHERE mod(a, 2) = 0;
      DELETE FROM test_tab WHERE mod(a, 3) = 0;
      COMMIT;
    )sql");
    // Upstream's count: 1667 rows.
    p.require_query("b", "SELECT count(*) FROM test_tab", "1667");
    p.require_same({"test_tab"});
  }
}
