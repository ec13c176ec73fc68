// From PostgreSQL's src/test/subscription/t/010_truncate.pl (TRUNCATE replicated, also with
// foreign keys and across several tables). mpfailover captures row changes with row triggers,
// which TRUNCATE does not fire, so it refuses TRUNCATE of a replicated table instead of letting
// the nodes diverge: the statement fails naming the table, with a DELETE hint, nothing is
// removed on either node, and replication goes on. What upstream tests (the truncate arriving)
// is therefore left out by design; these cases prove the refusal.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub010";
    o.base_port = 59000;
    o.port_span = 250;
    o.setup_sql = R"sql(
      CREATE TABLE tab1 (a int PRIMARY KEY);
      CREATE TABLE tab2 (a int PRIMARY KEY, b int REFERENCES tab1 (a));
      CREATE TABLE tab_local (a int PRIMARY KEY);
    )sql";
    o.tables = {"tab1", "tab2"};
    return o;
  }());
}

std::string truncate_error(const std::string& conninfo, const std::string& sql) {
  try {
    exec_sql(conninfo, sql);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("sub_010_truncate") {
  TEST_CASE("TRUNCATE of a replicated table is refused, naming it; nothing is lost") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab1 VALUES (1), (2), (3); INSERT INTO tab2 VALUES (1, 1)");
    p.require_same({"tab1", "tab2"});
    const auto e = truncate_error(p.conn_a(), "TRUNCATE tab2");
    CHECK(e.find("TRUNCATE of replicated table \"public.tab2\" is not replicated") !=
          std::string::npos);
    // Several tables at once (upstream's "truncate multiple tables"), also with CASCADE.
    CHECK(truncate_error(p.conn_a(), "TRUNCATE tab1, tab2").find("is not replicated") !=
          std::string::npos);
    CHECK(truncate_error(p.conn_b(), "TRUNCATE tab1 CASCADE").find("is not replicated") !=
          std::string::npos);
    CHECK(query_text(p.conn_a(), "SELECT count(*) FROM tab1") == "3");
    // Replication goes on; DELETE (the hint) is replicated.
    exec_sql(p.conn_a(), "DELETE FROM tab2; DELETE FROM tab1");
    p.require_query("b", "SELECT count(*) FROM tab1", "0");
    p.require_same({"tab1", "tab2"});
  }

  TEST_CASE("TRUNCATE of a table that is not replicated is the application's business") {
    auto& p = pair();
    exec_sql(p.conn_a(), "INSERT INTO tab_local VALUES (1); TRUNCATE tab_local");
    CHECK(query_text(p.conn_a(), "SELECT count(*) FROM tab_local") == "0");
  }
}
