// `mpfailover queue` and `mpfailover conflicts` as an operator runs them, without the daemon:
// the numbers are checked against the database's truth (what was written, what the log holds,
// what the peer acknowledged).
#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>

#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/queue_watch.hpp>

#include "support/command.hpp"
#include "support/daemon.hpp"
#include "support/reader_util.hpp"
#include "support/test_db.hpp"

using mpf::Position;
using mpf::replicator::PgLogReader;
using nlohmann::json;

namespace {

using Run = mpf::test::RunSplit;
Run run(const std::string& command) { return mpf::test::run_split(command); }

const std::string kCli = MPF_CLI_PATH;

json queue_json(const std::string& conf) {
  auto r = run(kCli + " --config " + conf + " queue --json");
  REQUIRE_MESSAGE(r.rc == 0, (r.out + r.err));
  return json::parse(r.out);
}

void exec(pqxx::connection& conn, const std::string& sql) {
  pqxx::work tx(conn);
  tx.exec(sql);
  tx.commit();
}

// Known mix: 6 transactions, 13 rows (users 7, meetings 2, meeting_participants 4).
constexpr int kTransactions = 6;
constexpr int kRows = 13;

void write_known_mix(pqxx::connection& conn) {
  for (int i = 0; i < 3; ++i) {
    exec(conn, "INSERT INTO users (login) VALUES ('solo" + std::to_string(i) + "')");
  }
  for (int i = 0; i < 2; ++i) {
    const std::string n = std::to_string(i);
    exec(conn, "WITH u AS (INSERT INTO users (login) VALUES ('owner" + n +
                   "') RETURNING user_id), "
                   "m AS (INSERT INTO meetings (meeting_number, owner_id, starts_at) "
                   "  SELECT 'm" +
                   n +
                   "', user_id, now() FROM u RETURNING meeting_id) "
                   "INSERT INTO meeting_participants (meeting_id, display_name) "
                   "SELECT meeting_id, 'guest ' || g FROM m, generate_series(1, 2) g");
  }
  exec(conn, "UPDATE users SET phone = '+1555' WHERE login IN ('solo0', 'solo1')");
}

std::unique_ptr<PgLogReader> open_reader(const mpf::test::TestDatabase& db) {
  auto r = PgLogReader::open(db.conninfo());
  REQUIRE_MESSAGE(r, r.status().message());
  return std::move(r.value());
}

// A node config for a daemon on loopback (plain security), as replication_test.cpp's pair.
std::string write_daemon_config(const std::string& node, const std::string& peer,
                                const std::string& conninfo, int listen, int peer_port) {
  const std::string path = "/tmp/mpft_queue_" + std::to_string(::getpid()) + "_" + node + ".conf";
  std::ofstream out(path);
  out << "[node]\nname = " << node << "\ndatabase = " << conninfo << "\n[peer]\nname = " << peer
      << "\naddress = 127.0.0.1\nport = " << peer_port
      << "\n[replication]\nlisten = 127.0.0.1\nport = " << listen
      << "\n[heartbeat]\ninterval = 1s\n[security]\nmode = plain\n[control]\nsocket = " << path
      << ".sock\n";
  std::remove((path + ".log").c_str());
  return path;
}

std::string write_unreachable_config() {
  const std::string conf = "/tmp/mpft_cli_queue_nodb.conf";
  std::ofstream out(conf);
  out << "[node]\nname = a\ndatabase = host=/nonexistent-dir port=1 dbname=x "
         "connect_timeout=2\n[peer]\nname = b\naddress = h\n[security]\nmode = plain\n";
  return conf;
}

}  // namespace

TEST_SUITE("cli_queue") {
  TEST_CASE("queue on a log above the sampling size: estimated from a sample, flagged") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    // ~45 MB of log in 4,000 transactions of 20 rows.
    // (COMMIT inside DO needs a session outside a transaction block.)
    pqxx::nontransaction(conn).exec(
        "DO $$ BEGIN FOR t IN 1..4000 LOOP "
        "INSERT INTO users (login, first_name) SELECT 's' || t || '.' || i, repeat('x', 450) "
        "FROM generate_series(1, 20) i; COMMIT; END LOOP; END $$");
    REQUIRE(mpf::test::scalar(conn, "SELECT pg_relation_size('mpfailover.change_log')") >
            mpf::server::BacklogReader::kSampleAboveBytes);
    auto q = queue_json(conf);
    CHECK(q["estimated"] == true);
    // A block sample of ~8 MiB of the log: rows within 25 % of the truth.
    CHECK(q["rows"].get<int64_t>() > 60000);
    CHECK(q["rows"].get<int64_t>() < 100000);
    CHECK(q["transactions"].get<int64_t>() > 3000);
    // A transaction over two pages is counted when either is sampled: biased upward.
    CHECK(q["transactions"].get<int64_t>() < 12000);
    CHECK(q["by_table"]["public.users"] == q["rows"]);
  }

  TEST_CASE("queue.warn_bytes: a log above the sampling size is measured from a sample") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    exec(conn,
         "INSERT INTO users (login, first_name) SELECT 'w' || i, repeat('x', 200) "
         "FROM generate_series(1, 20000) i");
    const auto exact =
        mpf::test::scalar(conn, "SELECT sum(pg_column_size(l.*)) FROM mpfailover.change_log l");
    REQUIRE(exact > 1000000);
    // Exact below the sampling size; above it a sample of ~1 MB of a ~6 MB log: the estimate
    // must still put the backlog above a limit well under it and below one well over it.
    for (const uint64_t sample : {uint64_t{1} << 40, uint64_t{1} << 20}) {
      CAPTURE(sample);
      mpf::server::QueueWatch low(db.conninfo(), static_cast<uint64_t>(exact) / 3, sample);
      low.check();
      CHECK(low.warned());
      mpf::server::QueueWatch high(db.conninfo(), static_cast<uint64_t>(exact) * 3, sample);
      high.check();
      CHECK_FALSE(high.warned());
    }
  }

  TEST_CASE("queue --json counts every transaction written while the peer acknowledges none") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());

    auto empty = queue_json(conf);
    CHECK(empty["transactions"] == 0);
    CHECK(empty["rows"] == 0);
    CHECK(empty["bytes"] == 0);
    CHECK(empty["by_table"].empty());
    CHECK(empty["oldest_age_s"].is_null());
    CHECK(empty["acked_position"].is_null());
    CHECK(empty["eta_s"] == 0);

    write_known_mix(conn);
    exec(conn, "SELECT pg_sleep(0.2)");  // the oldest change is measurably old
    REQUIRE(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == kRows);

    auto q = queue_json(conf);
    CHECK(q["transactions"] == kTransactions);
    CHECK(q["rows"] == kRows);
    CHECK(q["by_table"] ==
          json{{"public.users", 7}, {"public.meetings", 2}, {"public.meeting_participants", 4}});
    CHECK(q["bytes"].get<int64_t>() ==
          mpf::test::scalar(conn, "SELECT sum(pg_column_size(l.*)) FROM mpfailover.change_log l"));
    CHECK(q["bytes"].get<int64_t>() > 0);
    CHECK(q["oldest_age_s"].get<double>() >= 0.2);
    CHECK(q["oldest_age_s"].get<double>() < 60);
    CHECK(q["oldest"]["table"] == "public.users");
    CHECK(q["acked_position"].is_null());
    CHECK(q["drain_rate_tps"].is_null());
    CHECK(q["eta_s"].is_null());
    CHECK(q["blocked"].is_null());
    REQUIRE(q["by_table_detail"].size() == 3);
    CHECK(q["by_table_detail"][0]["table"] == "public.users");  // most rows first
    CHECK(q["by_table_detail"][0]["bytes"].get<int64_t>() > 0);

    auto human = run(kCli + " --config " + conf + " queue");
    CHECK_MESSAGE(human.rc == 0, human.err);
    CHECK(human.out.find("waiting:   6 transactions, 13 rows") != std::string::npos);
    CHECK(human.out.find("public.meeting_participants") != std::string::npos);
    CHECK(human.out.find("has never acknowledged") != std::string::npos);
  }

  TEST_CASE("an acknowledgement takes exactly the transactions it covers out of the backlog") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    write_known_mix(conn);
    auto reader = open_reader(db);
    REQUIRE(reader->seek(Position{}));
    auto chunks = mpf::test::drain(*reader);  // ticks: all 6 in window 1
    REQUIRE(chunks.size() == kTransactions);

    SUBCASE("within a window: the first three") {
      // The first three are the single-user inserts (3 rows); still in the log, not trimmed.
      REQUIRE(reader->store_peer_ack("b", chunks[2].position, 3));
      auto q = queue_json(conf);
      CHECK(q["transactions"] == kTransactions - 3);
      CHECK(q["rows"] == kRows - 3);
      CHECK(q["by_table"]["public.users"] == 4);
      CHECK(q["acked_position"] == chunks[2].position.to_string());
      CHECK(q["acked_transactions_total"] == 3);
      CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == kRows);

      // Trimming what is acknowledged changes the log, not the backlog.
      REQUIRE(reader->trim(chunks[2].position));
      CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == kRows - 3);
      auto after_trim = queue_json(conf);
      CHECK(after_trim["transactions"] == kTransactions - 3);
      CHECK(after_trim["rows"] == kRows - 3);
    }

    SUBCASE("a whole window, then new changes in the next one and not yet ticked") {
      REQUIRE(reader->store_peer_ack("b", chunks.back().position, kTransactions));
      exec(conn, "INSERT INTO users (login) VALUES ('later1')");
      auto more = mpf::test::drain(*reader);  // window 2 holds 'later1'
      REQUIRE(more.size() == 1);
      exec(conn, "INSERT INTO groups (name) VALUES ('g-unticked')");  // no tick after it
      auto q = queue_json(conf);
      CHECK(q["transactions"] == 2);
      CHECK(q["rows"] == 2);
      CHECK(q["by_table"] == json{{"public.users", 1}, {"public.groups", 1}});
      REQUIRE(reader->store_peer_ack("b", more[0].position, 1));
      auto q2 = queue_json(conf);
      CHECK(q2["transactions"] == 1);
      CHECK(q2["by_table"] == json{{"public.groups", 1}});
      CHECK(q2["acked_transactions_total"] == kTransactions + 1);
    }

    SUBCASE("with retention: acknowledged rows kept in the log are not counted") {
      REQUIRE(reader->store_peer_ack("b", chunks.back().position, kTransactions));
      REQUIRE(reader->trim(chunks.back().position, std::chrono::hours(1)));
      CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == kRows);
      auto q = queue_json(conf);
      CHECK(q["transactions"] == 0);
      CHECK(q["rows"] == 0);
      CHECK(q["eta_s"] == 0);
    }
  }

  TEST_CASE("a transaction held open while a later one commits is counted by window, not seq") {
    // docs/design.md §1: "held" takes its change number first and commits last, so it is read in
    // the window after "later" with a smaller last change number. An acknowledgement of "held"
    // covers "later" too (an earlier window) although later's change number is larger.
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    pqxx::connection holder(db.conninfo());
    auto reader = open_reader(db);
    REQUIRE(reader->seek(Position{}));
    pqxx::work held(holder);
    held.exec("INSERT INTO users (login) VALUES ('held')");
    exec(conn, "INSERT INTO users (login) VALUES ('later')");
    auto first = mpf::test::drain(*reader);  // window 1: "later" only
    REQUIRE(first.size() == 1);
    held.commit();
    auto second = mpf::test::drain(*reader);  // window 2: "held"
    REQUIRE(second.size() == 1);
    REQUIRE(second[0].position.seq < first[0].position.seq);

    CHECK(queue_json(conf)["transactions"] == 2);
    REQUIRE(reader->store_peer_ack("b", first[0].position, 1));
    auto q = queue_json(conf);
    CHECK(q["transactions"] == 1);
    CHECK(q["oldest"]["seq"] == second[0].position.seq);
    REQUIRE(reader->store_peer_ack("b", second[0].position, 1));
    CHECK(queue_json(conf)["transactions"] == 0);
    CHECK(queue_json(conf)["rows"] == 0);
  }

  TEST_CASE("the drain rate comes from the acknowledgement history, sampled once a second") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    write_known_mix(conn);
    auto reader = open_reader(db);
    REQUIRE(reader->seek(Position{}));
    auto chunks = mpf::test::drain(*reader);
    REQUIRE(chunks.size() == kTransactions);
    REQUIRE(reader->store_peer_ack("b", chunks[0].position, 1));
    REQUIRE(reader->store_peer_ack("b", chunks[1].position, 1));  // within the same second
    CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.ack_history") == 1);
    CHECK(mpf::test::scalar(conn, "SELECT acked_transactions FROM mpfailover.peer_ack") == 2);

    // Under a second of history: no rate yet.
    auto young = queue_json(conf);
    CHECK(young["drain_rate_tps"].is_null());

    // The running total is 142; an hour ago it was 0, 20 s ago 102. With the hour-old sample
    // the base is the newest sample at least a minute old; without it, the oldest there is.
    exec(conn,
         "UPDATE mpfailover.peer_ack SET acked_transactions = 142;"
         "INSERT INTO mpfailover.ack_history VALUES "
         "('b', now() - interval '1 hour', 0, 0, 0),"
         "('b', now() - interval '20 seconds', 1, 1, 102)");
    auto q = queue_json(conf);
    REQUIRE(q["drain_rate_tps"].is_number());
    CHECK(q["drain_window_s"].get<double>() > 3500);
    CHECK(q["drain_rate_tps"].get<double>() == doctest::Approx(142 / 3600.0).epsilon(0.05));
    exec(conn, "DELETE FROM mpfailover.ack_history WHERE sampled_at < now() - interval '30 min'");
    q = queue_json(conf);
    REQUIRE(q["drain_rate_tps"].is_number());
    CHECK(q["drain_window_s"].get<double>() == doctest::Approx(20).epsilon(0.1));
    CHECK(q["drain_rate_tps"].get<double>() == doctest::Approx(2.0).epsilon(0.1));
    CHECK(q["transactions"] == kTransactions - 2);
    CHECK(q["eta_s"].get<double>() == doctest::Approx((kTransactions - 2) / 2.0).epsilon(0.1));
    auto human = run(kCli + " --config " + conf + " queue");
    CHECK(human.out.find("transactions/s over the last") != std::string::npos);
    CHECK(human.out.find("empty in about") != std::string::npos);

    // Samples older than 15 minutes are pruned when the next one is taken.
    exec(conn, "UPDATE mpfailover.ack_history SET sampled_at = sampled_at - interval '1 hour'");
    REQUIRE(reader->store_peer_ack("b", chunks[2].position, 1));
    CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.ack_history") == 1);
  }

  TEST_CASE("queue names the transaction the peer's apply stopped on, until an ack passes it") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    write_known_mix(conn);
    auto reader = open_reader(db);
    REQUIRE(reader->seek(Position{}));
    auto chunks = mpf::test::drain(*reader);
    REQUIRE(reader->store_peer_ack("b", chunks[1].position, 2));
    const std::string error =
        "could not apply transaction 1/9 from \"a\": insert or update on table "
        "\"meeting_participants\" violates foreign key constraint";
    REQUIRE(reader->store_apply_error("b", chunks[2].position, error));

    auto q = queue_json(conf);
    REQUIRE(q["blocked"].is_object());
    CHECK(q["blocked"]["position"] == chunks[2].position.to_string());
    CHECK(q["blocked"]["error"] == error);
    auto human = run(kCli + " --config " + conf + " queue");
    CHECK(human.out.find("BLOCKED:   apply on \"b\" stopped at transaction " +
                         chunks[2].position.to_string()) != std::string::npos);
    CHECK(human.out.find("mpfailover skip " + chunks[2].position.to_string()) != std::string::npos);

    // Reported again (the shipper retries): since stays the first report.
    const auto since = q["blocked"]["since"].get<std::string>();
    REQUIRE(reader->store_apply_error("b", chunks[2].position, error));
    CHECK(queue_json(conf)["blocked"]["since"] == since);

    // Skipped or fixed on the peer: its acknowledgement passes the position.
    REQUIRE(reader->store_peer_ack("b", chunks[2].position, 1));
    CHECK(queue_json(conf)["blocked"].is_null());
  }

  TEST_CASE("with real daemons: the backlog queues, drains to 0, and a stopped apply is named") {
    mpf::test::TestDatabase db_a;
    mpf::test::TestDatabase db_b;
    db_a.init("a");
    db_b.init("b");
    const int port_a = 10000 + (::getpid() % 1000) * 2;
    const auto conf_a = write_daemon_config("a", "b", db_a.conninfo(), port_a, port_a + 1);
    const auto conf_b = write_daemon_config("b", "a", db_b.conninfo(), port_a + 1, port_a);
    mpf::test::Daemon a(MPF_DAEMON_PATH, conf_a, conf_a + ".log");
    mpf::test::Daemon b(MPF_DAEMON_PATH, conf_b, conf_b + ".log");
    pqxx::connection conn_a(db_a.conninfo());
    a.start();
    write_known_mix(conn_a);  // b is not running: nothing is acknowledged
    auto queued = queue_json(conf_a);
    CHECK(queued["transactions"] == kTransactions);
    CHECK(queued["rows"] == kRows);

    b.start();
    const bool drained = mpf::test::eventually(
        [&] { return queue_json(conf_a)["transactions"] == 0; }, std::chrono::seconds(30));
    if (!drained) MESSAGE("daemon a log:\n" << a.log_text());
    REQUIRE(drained);
    auto q = queue_json(conf_a);
    CHECK(q["rows"] == 0);
    CHECK(q["acked_transactions_total"] == kTransactions);
    CHECK(q["acked_position"].is_string());

    // b refuses one row: apply stops there, and a's queue names it.
    {
      pqxx::connection conn_b(db_b.conninfo());
      exec(conn_b, "ALTER TABLE users ADD CONSTRAINT no_poison CHECK (login <> 'poison')");
    }
    exec(conn_a, "INSERT INTO users (login) VALUES ('poison')");
    exec(conn_a, "INSERT INTO users (login) VALUES ('after-poison')");
    json stuck;
    const bool named = mpf::test::eventually(
        [&] {
          stuck = queue_json(conf_a);
          return stuck["blocked"].is_object();
        },
        std::chrono::seconds(30));
    if (!named) MESSAGE("daemon a log:\n" << a.log_text());
    REQUIRE(named);
    CHECK(stuck["blocked"]["error"].get<std::string>().find("no_poison") != std::string::npos);
    CHECK(stuck["transactions"] == 2);
    for (const auto& f : {conf_a, conf_b}) {
      std::remove(f.c_str());
      std::remove((f + ".log").c_str());
    }
  }

  TEST_CASE("queue --watch prints successive reports when piped and stops cleanly on Ctrl-C") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    auto r = run("timeout --preserve-status -s INT 1.5 " + kCli + " --config " + conf +
                 " queue --watch --json --interval 200ms");
    CHECK_MESSAGE(r.rc == 0, r.err);
    int lines = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      CHECK(json::parse(line)["transactions"] == 0);
      ++lines;
    }
    CHECK(lines >= 3);
    CHECK(r.out.find("\x1b[") == std::string::npos);  // no terminal control when piped
  }

  TEST_CASE("conflicts lists overridden changes, filtered by table and time") {
    mpf::test::TestDatabase db;
    db.init();
    const auto conf = db.write_config_file();
    pqxx::connection conn(db.conninfo());
    // As pg_applier.cpp records them: lww (remote lost, local lost) and skip.
    exec(conn,
         "INSERT INTO mpfailover.conflict (detected_at, relation, key, kind, winner_origin, "
         "winner_hlc, loser_origin, loser_hlc, loser_op, loser_image, loser_row, reason) VALUES "
         "(now() - interval '3 hours', 'public.users', '{11111111-1111-1111-1111-111111111111}', "
         " 'lww', 'a', 1700000000000000, 'b', 1699999999000000, 'U', '{x,y}', NULL, "
         " 'row written here is later than the change from \"b\"'),"
         "(now() - interval '10 minutes', 'public.group_members', "
         " '{22222222-2222-2222-2222-222222222222,33333333-3333-3333-3333-333333333333}', "
         " 'lww', 'b', 1700000001000000, 'a', 1700000000500000, 'U', NULL, "
         " '{\"member_role\": \"owner\"}', 'change from \"b\" is later than the row written here'),"
         "(now(), 'public.meetings', '{44444444-4444-4444-4444-444444444444}', 'skip', NULL, "
         " NULL, 'b', 1700000002000000, 'I', '{m}', NULL, "
         " 'skipped transaction 7/42 from \"b\": orphaned child row')");

    auto all = run(kCli + " --config " + conf + " conflicts --json");
    REQUIRE_MESSAGE(all.rc == 0, all.err);
    auto j = json::parse(all.out);
    REQUIRE(j["conflicts"].size() == 3);
    CHECK(j["more"] == false);
    CHECK(j["conflicts"][0]["table"] == "public.meetings");  // newest first
    CHECK(j["conflicts"][0]["kind"] == "skip");
    CHECK(j["conflicts"][0]["winner_origin"].is_null());
    const auto& gm = j["conflicts"][1];
    CHECK(gm["key"] == json{{"group_id", "22222222-2222-2222-2222-222222222222"},
                            {"user_id", "33333333-3333-3333-3333-333333333333"}});
    CHECK(gm["winner_origin"] == "b");
    CHECK(gm["loser_origin"] == "a");
    CHECK(gm["loser_row"]["member_role"] == "owner");
    CHECK(j["conflicts"][2]["reason"] == "row written here is later than the change from \"b\"");

    auto by_table =
        json::parse(run(kCli + " --config " + conf + " conflicts --json --table users").out);
    REQUIRE(by_table["conflicts"].size() == 1);
    CHECK(by_table["conflicts"][0]["table"] == "public.users");
    auto qualified = json::parse(
        run(kCli + " --config " + conf + " conflicts --json --table public.group_members").out);
    CHECK(qualified["conflicts"].size() == 1);
    auto none = json::parse(run(kCli + " --config " + conf + " conflicts --json --table nope").out);
    CHECK(none["conflicts"].empty());

    auto hour = json::parse(run(kCli + " --config " + conf + " conflicts --json --since 1h").out);
    CHECK(hour["conflicts"].size() == 2);
    auto minutes =
        json::parse(run(kCli + " --config " + conf + " conflicts --json --since 5min").out);
    CHECK(minutes["conflicts"].size() == 1);
    pqxx::nontransaction q(conn);
    const std::string two_hours_ago =
        q.exec("SELECT (now() - interval '2 hours')::timestamp::text")[0][0].c_str();
    auto at = json::parse(run(kCli + " --config " + conf + " conflicts --json --since '" +
                              two_hours_ago + "' --table users")
                              .out);
    CHECK(at["conflicts"].empty());
    auto limited = json::parse(run(kCli + " --config " + conf + " conflicts --json --limit 1").out);
    CHECK(limited["conflicts"].size() == 1);
    CHECK(limited["more"] == true);

    auto human = run(kCli + " --config " + conf + " conflicts --table group_members");
    CHECK_MESSAGE(human.rc == 0, human.err);
    CHECK(human.out.find("public.group_members (group_id=22222222-2222-2222-2222-222222222222, "
                         "user_id=33333333-3333-3333-3333-333333333333)  lww") !=
          std::string::npos);
    CHECK(human.out.find("won:  \"b\"") != std::string::npos);
    CHECK(human.out.find("lost: update from \"a\"") != std::string::npos);
    CHECK(human.out.find("1 conflict\n") != std::string::npos);

    auto bad_since = run(kCli + " --config " + conf + " conflicts --since yesterdayish");
    CHECK(bad_since.rc == 2);
    CHECK(bad_since.err.find("invalid --since \"yesterdayish\"") != std::string::npos);
  }

  TEST_CASE("a database that cannot be reached is one line saying what to do, and exit 1") {
    const auto conf = write_unreachable_config();
    for (const std::string cmd : {"queue", "queue --json", "conflicts"}) {
      CAPTURE(cmd);
      auto r = run(kCli + " --config " + conf + " " + cmd);
      CHECK(r.rc == 1);
      CHECK(r.out.empty());
      CHECK(r.err.find("could not connect to the node's database") != std::string::npos);
      CHECK(r.err.find("check that PostgreSQL runs") != std::string::npos);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    std::remove(conf.c_str());

    mpf::test::TestDatabase bare;  // reachable, but no catalog
    const auto bare_conf = bare.write_config_file();
    auto r = run(kCli + " --config " + bare_conf + " queue");
    CHECK(r.rc == 1);
    CHECK(r.err.find("no mpfailover catalog (run mpfailover init-db)") != std::string::npos);
  }

  TEST_CASE("queue and conflicts usage errors exit 2; --help exits 0 and states the cost") {
    // A config that loads (its database is unreachable: exit 1), so only the usage check can
    // give 2.
    const auto conf = write_unreachable_config();
    for (const std::string args :
         {"queue --bogus", "queue --interval 1s", "queue --watch --interval 10ms",
          "queue --watch --interval 5", "conflicts --limit 0", "conflicts --limit x"}) {
      CAPTURE(args);
      auto r = run(kCli + " --config " + conf + " " + args);
      CHECK(r.rc == 2);
      CHECK(r.out.empty());
    }
    CHECK(run(kCli + " --config " + conf + " queue").rc == 1);
    std::remove(conf.c_str());
    auto help = run(kCli + " queue --help");
    CHECK(help.rc == 0);
    CHECK(help.out.find("one sequential scan of mpfailover.change_log") != std::string::npos);
    CHECK(help.out.find("drain_rate_tps") != std::string::npos);
    auto chelp = run(kCli + " conflicts --help");
    CHECK(chelp.rc == 0);
    CHECK(chelp.out.find("--since") != std::string::npos);
    auto top = run(kCli + " --help");
    CHECK(top.out.find("queue") != std::string::npos);
    CHECK(top.out.find("conflicts") != std::string::npos);
  }
}
