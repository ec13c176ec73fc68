// The reader returns whole source transactions in commit-consistent order, each exactly once,
// resumable from a position (docs/design.md §1, the "commit order is not sequence order" trap).
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include <mpf/replicator/pg_log_reader.hpp>

#include "support/reader_util.hpp"
#include "support/test_db.hpp"

using mpf::Position;
using mpf::replicator::PgLogReader;
using mpf::replicator::TxChunk;
using mpf::test::drain;

namespace {

std::unique_ptr<PgLogReader> open_reader(const mpf::test::TestDatabase& db) {
  auto r = PgLogReader::open(db.conninfo());
  REQUIRE_MESSAGE(r, r.status().message());
  return std::move(r.value());
}

std::string login_of(const TxChunk& c) {
  REQUIRE(!c.changes.empty());
  REQUIRE(c.changes[0].image.size() > 1);
  return c.changes[0].image[1].value_or("NULL");  // users: user_id, login, ...
}

void check_strictly_increasing(const std::vector<TxChunk>& chunks) {
  for (size_t i = 1; i < chunks.size(); ++i) {
    CAPTURE(i);
    CHECK(chunks[i - 1].position < chunks[i].position);
  }
}

}  // namespace

TEST_SUITE("reader_order") {
  TEST_CASE("a transaction held open while later ones commit is delivered once, after them") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection holder_conn(db.conninfo());
    pqxx::connection writer_conn(db.conninfo());
    auto reader = open_reader(db);

    pqxx::work held(holder_conn);
    held.exec("INSERT INTO users (login) VALUES ('held')");  // takes the lowest change number
    for (int i = 0; i < 5; ++i) {
      pqxx::work w(writer_conn);
      w.exec("INSERT INTO users (login) VALUES ('later-" + std::to_string(i) + "')");
      w.commit();
    }
    auto first = drain(*reader);
    REQUIRE(first.size() == 5);
    for (int i = 0; i < 5; ++i) CHECK(login_of(first[i]) == "later-" + std::to_string(i));

    held.commit();
    auto second = drain(*reader);
    REQUIRE(second.size() == 1);
    CHECK(login_of(second[0]) == "held");
    CHECK(first.back().position < second[0].position);
    CHECK(drain(*reader).empty());

    SUBCASE("and a reader resuming from any delivered position gets exactly the rest") {
      std::vector<TxChunk> all = first;
      all.push_back(second[0]);
      for (size_t k = 0; k < all.size(); ++k) {
        CAPTURE(k);
        auto again = open_reader(db);
        REQUIRE(again->seek(all[k].position));
        auto rest = drain(*again);
        REQUIRE(rest.size() == all.size() - k - 1);
        for (size_t j = 0; j < rest.size(); ++j) CHECK(rest[j].position == all[k + 1 + j].position);
      }
    }
  }

  TEST_CASE("a multi-table transaction is one unit") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO users (login) VALUES ('o1')");
      tx.exec("INSERT INTO groups (name) VALUES ('g1')");
      tx.exec("INSERT INTO users (login) VALUES ('o2')");
      tx.commit();
    }
    auto reader = open_reader(db);
    auto chunks = drain(*reader);
    REQUIRE(chunks.size() == 1);
    CHECK(chunks[0].last);
    CHECK(chunks[0].total_changes == 3);
    REQUIRE(chunks[0].changes.size() == 3);
    CHECK(chunks[0].changes[0].table_id != chunks[0].changes[1].table_id);
    CHECK(chunks[0].origin == "a");
  }

  // At the head of the log a reader closes a window and reads it in one statement. A second
  // ticker on the same database (two daemons on one database: a misconfiguration, but it must
  // not lose or reorder anything) makes ticks under the first reader's feet; each reader must
  // still deliver every transaction once, in one and the same order.
  TEST_CASE("two readers ticking the same log both deliver every transaction once, in order") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection writer(db.conninfo());
    auto first = open_reader(db);
    auto second = open_reader(db);
    std::vector<TxChunk> got_first, got_second;
    for (int i = 0; i < 12; ++i) {
      {
        pqxx::work tx(writer);
        tx.exec("INSERT INTO users (login) VALUES ('two-" + std::to_string(i) + "')");
        tx.commit();
      }
      // Alternate which reader closes the window, and let one lag behind now and then.
      auto& leader = i % 2 == 0 ? *first : *second;
      auto& follower = i % 2 == 0 ? got_second : got_first;
      auto& leader_got = i % 2 == 0 ? got_first : got_second;
      for (auto& c : drain(leader)) leader_got.push_back(std::move(c));
      if (i % 3 != 2) {
        for (auto& c : drain(i % 2 == 0 ? *second : *first)) follower.push_back(std::move(c));
      }
    }
    for (auto& c : drain(*first)) got_first.push_back(std::move(c));
    for (auto& c : drain(*second)) got_second.push_back(std::move(c));
    REQUIRE(got_first.size() == 12);
    REQUIRE(got_second.size() == 12);
    for (size_t i = 0; i < 12; ++i) {
      CAPTURE(i);
      CHECK(login_of(got_first[i]) == "two-" + std::to_string(i));
      CHECK(login_of(got_second[i]) == "two-" + std::to_string(i));
      CHECK(got_first[i].position == got_second[i].position);
    }
  }

  // Many writers, many rounds: increments of shared counters (row locks force per-row order),
  // random sleeps before commit (so commit order differs from change-number order), random
  // rollbacks, and a reader running all along. Every committed transaction must arrive exactly
  // once, no rolled-back one at all, and each counter's values must arrive as 1, 2, 3, ...
  TEST_CASE("concurrent writers: exactly once, no rollbacks, per-row order, many rounds") {
    mpf::test::TestDatabase db;
    {
      pqxx::connection conn(db.conninfo());
      pqxx::work tx(conn);
      tx.exec(
          "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL);"
          "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 6) g;"
          "CREATE TABLE events (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
          "  writer int NOT NULL, i int NOT NULL)");
      tx.commit();
    }
    db.init_with(db.config("a", {"counters", "events"}));

    constexpr int kWriters = 4;
    constexpr int kTxPerWriter = 150;
    std::mutex mu;
    std::set<uint64_t> committed;
    std::set<uint64_t> rolled_back;
    std::vector<std::string> writer_errors;
    std::atomic<int> writers_done{0};

    auto writer = [&](int w) {
      try {
        std::mt19937_64 rng(1000 + w);
        pqxx::connection conn(db.conninfo());
        for (int i = 0; i < kTxPerWriter; ++i) {
          pqxx::work tx(conn);
          const auto txid = tx.exec("SELECT pg_current_xact_id()::text")[0][0].as<uint64_t>();
          // A pause between taking the transaction id and the first row lock lets later
          // transaction ids lock (and commit) first: id order and commit order then differ.
          if (rng() % 2) tx.exec("SELECT pg_sleep(" + std::to_string(rng() % 3) + " / 1000.0)");
          std::set<int> ids;
          const int n = 1 + static_cast<int>(rng() % 3);
          while (static_cast<int>(ids.size()) < n) ids.insert(1 + static_cast<int>(rng() % 6));
          for (int id : ids) {  // ascending order: no deadlocks
            tx.exec("UPDATE counters SET n = n + 1 WHERE id = " + std::to_string(id));
          }
          tx.exec("INSERT INTO events (writer, i) VALUES (" + std::to_string(w) + ", " +
                  std::to_string(i) + ")");
          if (rng() % 10 < 3)
            tx.exec("SELECT pg_sleep(" + std::to_string(rng() % 4) + " / 1000.0)");
          if (rng() % 100 < 15) {
            tx.abort();
            std::lock_guard lock(mu);
            rolled_back.insert(txid);
          } else {
            tx.commit();
            std::lock_guard lock(mu);
            committed.insert(txid);
          }
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mu);
        writer_errors.push_back(e.what());
      }
      ++writers_done;
    };

    std::vector<TxChunk> delivered;
    std::string reader_error;
    std::thread reader_thread([&] {
      auto opened = PgLogReader::open(db.conninfo());
      if (!opened) {
        reader_error = opened.status().message();
        return;
      }
      auto& reader = *opened.value();
      // Bounded: the writers finish in seconds; stop after they do and the log is drained.
      for (int round = 0; round < 200'000; ++round) {
        const bool finished = writers_done.load() == kWriters;
        auto batch = reader.next_batch(37);
        if (!batch) {
          reader_error = batch.status().message();
          return;
        }
        for (auto& c : batch->chunks) delivered.push_back(std::move(c));
        if (batch->empty()) {
          if (finished) return;
          // Idle pauses let windows fill with several interleaved transactions.
          std::this_thread::sleep_for(std::chrono::milliseconds(15));
        }
      }
      reader_error = "reader loop bound reached";
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) writers.emplace_back(writer, w);
    for (auto& t : writers) t.join();
    reader_thread.join();

    REQUIRE_MESSAGE(writer_errors.empty(), (writer_errors.empty() ? "" : writer_errors[0]));
    REQUIRE_MESSAGE(reader_error.empty(), reader_error);
    REQUIRE(committed.size() > kWriters * kTxPerWriter / 2);
    REQUIRE(!rolled_back.empty());

    std::multiset<uint64_t> seen;
    for (const auto& c : delivered) {
      CHECK(c.last);  // all small: whole transactions
      seen.insert(c.txid);
    }
    CHECK(seen.size() == committed.size());
    CHECK(std::set<uint64_t>(seen.begin(), seen.end()) == committed);  // none lost, none extra
    for (uint64_t t : committed) CHECK(seen.count(t) == 1);            // none duplicated
    for (uint64_t t : rolled_back) CHECK(seen.count(t) == 0);
    check_strictly_increasing(delivered);

    // Per-row order: counter id -> the values delivered for it, in delivery order.
    pqxx::connection conn(db.conninfo());
    pqxx::nontransaction q(conn);
    const auto counters_id =
        q.exec(
             "SELECT table_id FROM mpfailover.replicated_table WHERE relation = "
             "'public.counters'")[0][0]
            .as<int32_t>();
    std::map<int, std::vector<int64_t>> values;
    for (const auto& c : delivered) {
      for (const auto& ch : c.changes) {
        if (ch.table_id != counters_id) continue;
        values[std::stoi(*ch.key[0])].push_back(std::stoll(*ch.image[1]));
      }
    }
    for (const auto& row : q.exec("SELECT id, n FROM counters ORDER BY id")) {
      const int id = row[0].as<int>();
      const int64_t final_n = row[1].as<int64_t>();
      CAPTURE(id);
      std::vector<int64_t> expected(static_cast<size_t>(final_n));
      for (int64_t k = 0; k < final_n; ++k) expected[static_cast<size_t>(k)] = k + 1;
      CHECK(values[id] == expected);
    }
  }

  TEST_CASE("trim removes acknowledged windows and reading goes on from the acked position") {
    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    auto reader = open_reader(db);
    std::vector<TxChunk> all;
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 4; ++i) {
        pqxx::work tx(conn);
        tx.exec("INSERT INTO users (login) VALUES ('r" + std::to_string(round) + "-" +
                std::to_string(i) + "')");
        tx.commit();
      }
      auto got = drain(*reader);  // one window per round
      REQUIRE(got.size() == 4);
      all.insert(all.end(), got.begin(), got.end());
    }
    // Acknowledged up to the second transaction of the last window: the two earlier windows and
    // those two transactions go, the last two stay (the log holds exactly the backlog).
    REQUIRE(all.size() == 12);
    const Position acked = all[9].position;
    CHECK(acked.tick == all[11].position.tick);
    // With a retention, acknowledged but young windows stay.
    auto kept = reader->trim(acked, std::chrono::hours(1));
    REQUIRE(kept);
    CHECK(*kept == 0);
    CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 12);
    auto trimmed = reader->trim(acked);
    REQUIRE_MESSAGE(trimmed, trimmed.status().message());
    CHECK(*trimmed == 10);
    CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 2);
    {
      auto resumed = open_reader(db);
      REQUIRE(resumed->seek(acked));
      auto rest = drain(*resumed);
      REQUIRE(rest.size() == 2);
      CHECK(rest[0].position == all[10].position);
      CHECK(rest[1].position == all[11].position);
    }
    auto fully = reader->trim(all.back().position);
    REQUIRE(fully);
    CHECK(*fully == 2);
    CHECK(mpf::test::scalar(conn, "SELECT count(*) FROM mpfailover.change_log") == 0);

    auto again = open_reader(db);
    REQUIRE(again->seek(all.back().position));
    CHECK(drain(*again).empty());
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO users (login) VALUES ('after-trim')");
      tx.commit();
    }
    auto more = drain(*again);
    REQUIRE(more.size() == 1);
    CHECK(login_of(more[0]) == "after-trim");

    SUBCASE("a position before the trimmed windows is refused, not silently skipped") {
      auto old = open_reader(db);
      REQUIRE(old->seek(all.front().position));
      auto batch = old->next_batch(10);
      REQUIRE_FALSE(batch);
      CHECK(batch.status().message().find("no longer in the change log") != std::string::npos);
    }
  }
}
