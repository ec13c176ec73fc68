// Conversions between PostgreSQL array text and C++ vectors (libpqxx 6.4 has a parser only).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

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

// Parses PostgreSQL's text output of a one-dimensional array. Written here because libpqxx
// 6.4's array_parser splits unquoted elements at ';' ("FREQ=WEEKLY;COUNT=4" became two values).
// Output rules (array_out): elements are quoted when they contain delimiters, quotes, braces,
// backslashes or spaces, or spell NULL; inside quotes '\' escapes the next character; an
// unquoted NULL is SQL NULL. Throws std::runtime_error on anything else (a bug, not input).
inline std::vector<std::optional<std::string>> parse_array_text(std::string_view text) {
  std::vector<std::optional<std::string>> out;
  size_t i = 0;
  auto fail = [&](const char* what) {
    throw std::runtime_error(std::string("malformed array text (") + what + ") at offset " +
                             std::to_string(i));
  };
  if (text.empty() || text[0] != '{') fail("expected '{'");
  ++i;
  if (i < text.size() && text[i] == '}') return out;
  while (true) {
    if (i >= text.size()) fail("unterminated");
    if (text[i] == '"') {
      std::string v;
      ++i;
      while (true) {
        if (i >= text.size()) fail("unterminated quote");
        const char c = text[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= text.size()) fail("dangling escape");
          v += text[i++];
        } else {
          v += c;
        }
      }
      out.emplace_back(std::move(v));
    } else {
      if (text[i] == '{') fail("nested arrays are not supported");
      const size_t start = i;
      while (i < text.size() && text[i] != ',' && text[i] != '}') ++i;
      std::string v(text.substr(start, i - start));
      if (v == "NULL" || v == "null" || v == "Null") {
        out.emplace_back(std::nullopt);
      } else {
        out.emplace_back(std::move(v));
      }
    }
    if (i >= text.size()) fail("unterminated");
    if (text[i] == ',') {
      ++i;
      continue;
    }
    if (text[i] == '}') {
      if (i + 1 != text.size()) fail("trailing characters");
      return out;
    }
    fail("expected ',' or '}'");
  }
}

// One-dimensional text[] field to values; NULL elements become nullopt; a NULL field is empty.
inline std::vector<std::optional<std::string>> parse_array(const pqxx::field& f) {
  if (f.is_null()) return {};
  return parse_array_text(std::string_view(f.c_str(), f.size()));
}

// SQL quoting for names and literals that go into generated statements.
inline std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

inline std::string quote_literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// "schema.table" (as the catalog records relations) to "schema"."table".
inline std::string quote_relation(const std::string& relation) {
  const auto dot = relation.find('.');
  return quote_ident(relation.substr(0, dot)) + "." + quote_ident(relation.substr(dot + 1));
}

}  // namespace mpf::replicator::pg
