// Table-content comparison between two databases: the proof that nothing was lost, duplicated
// or changed (not row counts).
#pragma once

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

namespace mpf::test {

// md5 over every row's text form, in row-text order, plus the row count.
inline std::string table_digest(const std::string& conninfo, const std::string& table) {
  pqxx::connection conn(conninfo);
  pqxx::nontransaction q(conn);
  auto r = q.exec(
      "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY "
      "t::text)), '-') FROM " +
      table + " t");
  return r[0][0].as<std::string>();
}

inline const std::vector<std::string>& meetingplace_tables() {
  static const std::vector<std::string> kTables = {"users", "groups", "group_members", "meetings",
                                                   "meeting_participants"};
  return kTables;
}

// CHECKs every table equal; returns true when all are.
inline bool check_same_content(const std::string& a, const std::string& b,
                               const std::vector<std::string>& tables = meetingplace_tables()) {
  bool all = true;
  for (const auto& t : tables) {
    CAPTURE(t);
    const auto da = table_digest(a, t);
    const auto db = table_digest(b, t);
    CHECK(da == db);
    all = all && da == db;
  }
  return all;
}

}  // namespace mpf::test
