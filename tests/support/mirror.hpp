// A two-node mirror of the test's own tables (the ported PostgreSQL subscription tests and the
// edge-value suite): one LoopbackPair per test file, made on first use and kept for the file's
// cases (seconds per case, not a pair per case), both daemons started (shared_mirror).
//
// Comparison is exact: every row's text form read through client_encoding UTF8 and TimeZone
// UTC on both nodes, ordered by the primary key, compared row by row, and the md5 of each row's
// UTF8 bytes (convert_to, so a database in another encoding is compared by the characters it
// stores, not by its own bytes).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include "support/daemon.hpp"
#include "support/loopback_pair.hpp"

namespace mpf::test {

// A connection that reads and writes UTF8 whatever the database's encoding, in UTC.
inline std::unique_ptr<pqxx::connection> utf8_connection(const std::string& conninfo) {
  auto c = std::make_unique<pqxx::connection>(conninfo);
  c->set_client_encoding("UTF8");
  pqxx::nontransaction tx(*c);
  tx.exec("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3");
  return c;
}

// Runs one or more statements (autocommit, or one transaction when they say BEGIN/COMMIT).
inline void exec_sql(const std::string& conninfo, const std::string& sql) {
  auto c = utf8_connection(conninfo);
  pqxx::nontransaction tx(*c);
  tx.exec(sql);
}

// The first column of every row, as text ("" for NULL), joined with '\n' (psql's -At form).
inline std::string query_text(const std::string& conninfo, const std::string& sql) {
  auto c = utf8_connection(conninfo);
  pqxx::nontransaction tx(*c);
  std::string out;
  for (const auto& row : tx.exec(sql)) {
    std::string line;
    for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
      line += (i ? "|" : "") + std::string(row[i].is_null() ? "" : row[i].c_str());
    }
    out += (out.empty() ? "" : "\n") + line;
  }
  return out;
}

// "ORDER BY" list of the table's primary key columns (quoted).
inline std::string key_order(pqxx::connection& c, const std::string& table) {
  pqxx::nontransaction tx(c);
  auto r = tx.exec(
      "SELECT string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY k.n) "
      "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indrelid = " +
      tx.quote(table) + "::regclass AND i.indisprimary AND k.n <= i.indnkeyatts");
  REQUIRE_MESSAGE(!r[0][0].is_null(), table << " has no primary key");
  return r[0][0].c_str();
}

struct TableImage {
  std::vector<std::string> rows;  // row text, in key order
  std::string digest;             // count:md5 over the rows' UTF8 md5s, in key order
  bool operator==(const TableImage&) const = default;
};

inline TableImage table_image(const std::string& conninfo, const std::string& table) {
  auto c = utf8_connection(conninfo);
  const std::string order = key_order(*c, table);
  pqxx::nontransaction tx(*c);
  TableImage img;
  for (const auto& row : tx.exec("SELECT t::text FROM " + table + " t ORDER BY " + order)) {
    img.rows.emplace_back(row[0].c_str());
  }
  img.digest = tx.exec(
                     "SELECT count(*) || ':' || coalesce(md5(string_agg(md5(convert_to(t::text, "
                     "'UTF8')), '' ORDER BY " +
                     order + ")), '-') FROM " + table + " t")[0][0]
                   .c_str();
  return img;
}

struct MirrorPair : LoopbackPair {
  explicit MirrorPair(const LoopbackPairOptions& o) : LoopbackPair(o), tables_(o.tables) {
    a->start();
    b->start();
  }

  const std::string& conn_a() const { return db_a.conninfo(); }
  const std::string& conn_b() const { return db_b.conninfo(); }

  // True once every listed table reads the same on both nodes (see the header).
  bool same(const std::vector<std::string>& tables) const {
    for (const auto& t : tables) {
      if (!(table_image(conn_a(), t) == table_image(conn_b(), t))) return false;
    }
    return true;
  }

  // Waits (30 s at most) until the tables match, then CHECKs them row by row and by digest;
  // on a timeout prints both daemons' logs.
  void require_same(const std::vector<std::string>& tables,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    const bool ok = eventually([&] { return same(tables); }, timeout);
    if (!ok) MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    for (const auto& t : tables) {
      CAPTURE(t);
      const auto ia = table_image(conn_a(), t);
      const auto ib = table_image(conn_b(), t);
      CHECK(ia.digest == ib.digest);
      REQUIRE(ia.rows.size() == ib.rows.size());
      for (size_t i = 0; i < ia.rows.size(); ++i) CHECK(ia.rows[i] == ib.rows[i]);
    }
    REQUIRE(ok);
  }

  // Waits until `sql` gives `want` on node b (or a).
  void require_query(const std::string& node, const std::string& sql, const std::string& want,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    const std::string& conn = node == "a" ? conn_a() : conn_b();
    std::string got;
    const bool ok = eventually(
        [&] {
          got = query_text(conn, sql);
          return got == want;
        },
        timeout);
    if (!ok) MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    CHECK(got == want);
  }

  const std::vector<std::string>& tables() const { return tables_; }

 private:
  std::vector<std::string> tables_;
};

// The pair of the test file running now: made on its first case, kept for the file's other
// cases (doctest runs a file's cases one after the other), and stopped and removed when a case
// of another file asks for its own, so a run of the whole binary has one pair alive at a time.
// The last pair is stopped at the end of the run by support/mirror_listener.cpp, before static
// destruction (pqxx's and libpq's own statics may be gone by then).
inline std::unique_ptr<MirrorPair>& mirror_slot() {
  static std::unique_ptr<MirrorPair> current;
  return current;
}

inline MirrorPair& shared_mirror(const LoopbackPairOptions& o) {
  auto& current = mirror_slot();
  static std::string name;
  if (!current || name != o.name) {
    current.reset();
    name = o.name;
    current = std::make_unique<MirrorPair>(o);
  }
  return *current;
}

}  // namespace mpf::test
