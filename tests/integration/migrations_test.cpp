#include <doctest/doctest.h>

#include <mpf/schema/migrations.hpp>

#include "support/test_db.hpp"

using mpf::test::scalar;

TEST_SUITE("migrations") {
  TEST_CASE("a fresh install creates the catalog at the latest version") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    auto v = mpf::schema::installed_version(conn, "catalog");
    REQUIRE(v);
    CHECK(*v == mpf::schema::latest_version("catalog"));
    CHECK(*v >= 1);
    for (const char* t : {"change_log", "tick", "applied_position", "peer_ack", "conflict", "node",
                          "replicated_table"}) {
      CAPTURE(t);
      CHECK(scalar(conn, std::string("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                     "'mpfailover' AND tablename = '") +
                             t + "'") == 1);
    }
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.replicated_table WHERE active") == 5);
    CHECK(scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'mpfailover_capture'") == 5);
  }

  TEST_CASE("running init-db again changes nothing and keeps table ids") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    pqxx::connection conn2(db.conninfo());
    pqxx::nontransaction q(conn2);
    const auto ids_before =
        q.exec(
             "SELECT string_agg(relation || '=' || table_id, ',' ORDER BY table_id) "
             "FROM mpfailover.replicated_table")[0][0]
            .as<std::string>();
    const auto migrations_before =
        scalar(conn, "SELECT count(*) FROM mpfailover.schema_migrations");

    mpf::server::InitDbOptions options;
    options.app_schema = true;
    auto again = mpf::server::init_db(db.config(), options);
    REQUIRE_MESSAGE(again, again.status().message());
    CHECK(again->migrations_applied.empty());
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.schema_migrations") == migrations_before);
    CHECK(q.exec("SELECT string_agg(relation || '=' || table_id, ',' ORDER BY table_id) "
                 "FROM mpfailover.replicated_table")[0][0]
              .as<std::string>() == ids_before);
    CHECK(scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'mpfailover_capture'") == 5);
  }

  TEST_CASE("a catalog newer than this build is refused by init-db and by the daemon check") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec(
          "INSERT INTO mpfailover.schema_migrations (stream, version, name) "
          "VALUES ('catalog', 999, '0999_future')");
      tx.commit();
    }
    auto migrated = mpf::schema::migrate(conn, "catalog");
    REQUIRE_FALSE(migrated);
    CHECK(migrated.status().code() == mpf::Code::kFailedPrecondition);
    CHECK(migrated.status().message().find("version 999, newer than this mpfailover knows") !=
          std::string::npos);
    auto checked = mpf::server::check_database(db.config());
    REQUIRE_FALSE(checked);
    CHECK(checked.message().find("newer than this mpfailover knows") != std::string::npos);
  }

  TEST_CASE("dropping a table from the config removes its capture") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    auto cfg = db.config("a", {"users", "groups"});
    auto report = mpf::server::init_db(cfg, {});
    REQUIRE_MESSAGE(report, report.status().message());
    CHECK(scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'mpfailover_capture'") == 2);
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.replicated_table WHERE active") == 2);
    {
      pqxx::work tx(conn);
      tx.exec(
          "INSERT INTO meetings (meeting_number, owner_id, starts_at) "
          "SELECT '1', gen_random_uuid(), now() WHERE false");
      tx.exec("INSERT INTO users (login) VALUES ('still-captured')");
      tx.commit();
    }
    CHECK(scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 1);
  }

  TEST_CASE("a database initialised for another node is refused") {
    mpf::test::TestDatabase db;
    db.init("a");
    auto other = mpf::server::init_db(db.config("b"), {});
    REQUIRE_FALSE(other);
    CHECK(other.status().message().find("database belongs to node \"a\"") != std::string::npos);
    auto checked = mpf::server::check_database(db.config("b"));
    REQUIRE_FALSE(checked);
    CHECK(checked.message().find("belongs to node \"a\"") != std::string::npos);
  }
}
