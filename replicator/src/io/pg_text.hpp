// Conversions between PostgreSQL array text and C++ vectors (libpqxx 6.4 has a parser only).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/field>

namespace mpf::replicator::pg {

// {"a","b",NULL}: every element quoted, so any text round-trips.
template <typename Container>
std::string array_literal(const Container& items) {
  std::string out = "{";
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    first = false;
    const std::optional<std::string> v = item;
    if (!v) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// One-dimensional text[] to values; NULL elements become nullopt.
inline std::vector<std::optional<std::string>> parse_array(const pqxx::field& f) {
  std::vector<std::optional<std::string>> out;
  if (f.is_null()) return out;
  auto parser = f.as_array();
  for (auto item = parser.get_next(); item.first != pqxx::array_parser::done;
       item = parser.get_next()) {
    if (item.first == pqxx::array_parser::string_value) {
      out.emplace_back(std::move(item.second));
    } else if (item.first == pqxx::array_parser::null_value) {
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

}  // namespace mpf::replicator::pg
