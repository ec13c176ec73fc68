// A 200,000-row transaction (a bulk user import) is read in bounded memory: in parts of at most
// max_changes, never held whole by the reader.
#include <fstream>

#include <doctest/doctest.h>

#include <mpf/replicator/pg_log_reader.hpp>

#include "support/test_db.hpp"

namespace {

// Resident set size of this process, in KiB, from /proc.
long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long v = 0;
      in >> v;
      return v;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return -1;
}

}  // namespace

TEST_SUITE("reader_large_tx") {
  TEST_CASE("a 200,000-row transaction is read in parts within a 32 MiB memory bound") {
    constexpr int64_t kRows = 200'000;
    constexpr size_t kMaxChanges = 1000;
    // Held whole, 200,000 decoded rows of ~12 columns take well over 100 MiB; in parts of 1000
    // the reader needs a few MiB. The bound sits between the two.
    constexpr long kBoundKib = 32 * 1024;

    mpf::test::TestDatabase db;
    db.init();
    pqxx::connection conn(db.conninfo());
    {
      pqxx::work tx(conn);
      tx.exec(
          "INSERT INTO users (login, first_name, last_name, email, phone, pin_hash) "
          "SELECT 'user' || g, 'First' || g, 'Last' || g, 'user' || g || '@example.com', "
          "'+1555' || lpad(g::text, 7, '0'), md5(g::text) FROM generate_series(1, " +
          std::to_string(kRows) + ") g");
      tx.exec("INSERT INTO groups (name) VALUES ('after-import')");
      tx.commit();
    }
    {
      pqxx::work tx(conn);
      tx.exec("INSERT INTO groups (name) VALUES ('next-transaction')");
      tx.commit();
    }

    auto opened = mpf::replicator::PgLogReader::open(db.conninfo());
    REQUIRE(opened);
    auto& reader = *opened.value();
    const long baseline = rss_kib();
    REQUIRE(baseline > 0);
    long peak_growth = 0;
    int64_t rows = 0;
    int32_t expected_part = 0;
    int transactions_completed = 0;
    mpf::Position import_position;
    for (int guard = 0; guard < 10'000; ++guard) {
      auto batch = reader.next_batch(kMaxChanges);
      REQUIRE_MESSAGE(batch, batch.status().message());
      if (batch->empty()) break;
      CHECK(batch->change_count() <= kMaxChanges);
      for (const auto& c : batch->chunks) {
        if (transactions_completed == 0) {
          // The import: consecutive parts of one position.
          if (c.part == 0) import_position = c.position;
          CHECK(c.position == import_position);
          CHECK(c.part == expected_part);
          CHECK(c.total_changes == kRows + 1);
          ++expected_part;
          rows += static_cast<int64_t>(c.changes.size());
        }
        if (c.last) ++transactions_completed;
      }
      peak_growth = std::max(peak_growth, rss_kib() - baseline);
    }
    CHECK(rows == kRows + 1);
    CHECK(expected_part == static_cast<int32_t>((kRows + 1 + kMaxChanges - 1) / kMaxChanges));
    CHECK(transactions_completed == 2);
    MESSAGE("reader RSS growth while reading 200,001 rows: " << peak_growth << " KiB");
    CHECK(peak_growth < kBoundKib);
  }
}
