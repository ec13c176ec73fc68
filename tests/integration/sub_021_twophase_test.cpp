// Ported from PostgreSQL's src/test/subscription/t/021_twophase.pl (two-phase commit): a
// prepared transaction arrives when, and only when, it is committed with COMMIT PREPARED; one
// finished with ROLLBACK PREPARED never arrives; a prepared transaction held while the source's
// daemon restarts, and while later transactions commit, arrives after its commit, in commit
// order.
//
// mpfailover does not replicate the PREPARE itself (upstream's `two_phase = on` decodes it and
// prepares on the subscriber): the target sees a prepared transaction only once it is
// committed, as any other. Left out: the subscriber-side prepared state (pg_prepared_xacts on
// the subscriber), `two_phase` options, and aborts of prepared transactions containing DDL.
#include <doctest/doctest.h>

#include "support/mirror.hpp"

using mpf::test::exec_sql;
using mpf::test::query_text;
using namespace std::chrono_literals;

namespace {

mpf::test::MirrorPair& pair() {
  return mpf::test::shared_mirror([] {
    mpf::test::LoopbackPairOptions o;
    o.name = "sub021";
    o.base_port = 60500;
    o.port_span = 250;
    o.setup_sql = "CREATE TABLE tab_full (a int PRIMARY KEY, b text)";
    o.tables = {"tab_full"};
    return o;
  }());
}

}  // namespace

TEST_SUITE("sub_021_twophase") {
  TEST_CASE("COMMIT PREPARED arrives; ROLLBACK PREPARED does not") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "BEGIN; INSERT INTO tab_full VALUES (11, 'prepared'); "
             "PREPARE TRANSACTION 'test_prepared_tab_full'");
    std::this_thread::sleep_for(300ms);
    CHECK(query_text(p.conn_b(), "SELECT count(*) FROM tab_full WHERE a = 11") == "0");
    exec_sql(p.conn_a(), "COMMIT PREPARED 'test_prepared_tab_full'");
    p.require_query("b", "SELECT count(*) FROM tab_full WHERE a = 11", "1");

    exec_sql(p.conn_a(),
             "BEGIN; INSERT INTO tab_full VALUES (12, 'rolled back'); "
             "UPDATE tab_full SET b = 'no' WHERE a = 11; "
             "PREPARE TRANSACTION 'test_prepared_tab_full'");
    exec_sql(p.conn_a(), "ROLLBACK PREPARED 'test_prepared_tab_full'");
    exec_sql(p.conn_a(), "INSERT INTO tab_full VALUES (13, 'marker')");
    p.require_query("b", "SELECT string_agg(a || ':' || b, ',' ORDER BY a) FROM tab_full",
                    "11:prepared,13:marker");
    p.require_same({"tab_full"});
  }

  TEST_CASE("a prepared transaction held across a daemon restart and later commits") {
    auto& p = pair();
    exec_sql(p.conn_a(),
             "BEGIN; UPDATE tab_full SET b = 'first' WHERE a = 13; "
             "INSERT INTO tab_full VALUES (14, 'held'); "
             "PREPARE TRANSACTION 'held'");
    // Later transactions, on other rows, commit and arrive meanwhile.
    exec_sql(p.conn_a(), "INSERT INTO tab_full VALUES (15, 'later')");
    p.require_query("b", "SELECT count(*) FROM tab_full WHERE a = 15", "1");
    p.a->kill9();
    p.a->start();
    exec_sql(p.conn_a(), "COMMIT PREPARED 'held'");
    // Then a transaction that depends on it (it updates the held one's row).
    exec_sql(p.conn_a(), "UPDATE tab_full SET b = b || '+after' WHERE a = 14");
    p.require_query("b", "SELECT a || ':' || b FROM tab_full WHERE a IN (13, 14) ORDER BY a",
                    "13:first\n14:held+after");
    p.require_same({"tab_full"});
  }
}
