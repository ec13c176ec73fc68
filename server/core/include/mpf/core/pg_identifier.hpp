// Table names as PostgreSQL spells them: `users`, `app.users`, `"My Table"`, `sch."Mixed"`.
//
// PostgreSQL's identifier rules (SQL syntax, "Identifiers and Key Words"): an unquoted name
// starts with a letter or '_', continues with letters, digits, '_' or '$', and is folded to lower
// case; a quoted name is taken as written, '""' standing for one '"'. A name is at most 63 bytes
// (NAMEDATALEN - 1); a longer one would be truncated silently by the server, so it is refused.
// Pure: used by the config parser and by capture to resolve names without a round trip through
// the server's own parser (to_regclass would also read the login's search_path).
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpf::pgident {

struct QualifiedName {
  std::string schema;  // "public" when not written
  std::string name;
  bool qualified = false;  // the schema was written
};

// One parsed identifier list item, or the reason it is not one.
struct ParsedName {
  std::optional<QualifiedName> value;
  std::string error;  // set when value is empty
};

// Quotes `part` only when PostgreSQL needs it (not a plain lower-case identifier).
inline std::string quote_if_needed(const std::string& part) {
  bool plain =
      !part.empty() && (std::islower(static_cast<unsigned char>(part[0])) || part[0] == '_');
  for (unsigned char c : part) {
    if (!(std::islower(c) || std::isdigit(c) || c == '_')) plain = false;
  }
  if (plain) return part;
  std::string out = "\"";
  for (char c : part) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Parses `text` (surrounding blanks ignored) as [schema.]name.
inline ParsedName parse_qualified_name(std::string_view text) {
  std::vector<std::string> parts;
  size_t i = 0;
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (i < text.size() && blank(text[i])) ++i;
  while (true) {
    std::string part;
    if (i < text.size() && text[i] == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            part += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        part += text[i++];
      }
      if (!closed) return {std::nullopt, "unterminated quoted identifier"};
      if (part.empty()) return {std::nullopt, "zero-length quoted identifier"};
    } else {
      const size_t start = i;
      while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        const bool first = i == start;
        const bool ok =
            std::isalpha(c) || c == '_' || c >= 0x80 || (!first && (std::isdigit(c) || c == '$'));
        if (!ok) break;
        part += static_cast<char>(std::tolower(c));
        ++i;
      }
      if (part.empty()) {
        return {std::nullopt, i < text.size() ? "unexpected character '" + std::string(1, text[i]) +
                                                    "' (quote the name: \"...\")"
                                              : std::string("empty name")};
      }
    }
    if (part.size() > 63) {
      return {std::nullopt, "identifier longer than 63 bytes (PostgreSQL would truncate it)"};
    }
    parts.push_back(std::move(part));
    if (i < text.size() && text[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  while (i < text.size() && blank(text[i])) ++i;
  if (i != text.size()) {
    return {std::nullopt,
            "unexpected character '" + std::string(1, text[i]) + "' (quote the name: \"...\")"};
  }
  if (parts.size() > 2) return {std::nullopt, "expected [schema.]table, got more than two parts"};
  if (parts.size() == 1) return {QualifiedName{"public", parts[0], false}, ""};
  return {QualifiedName{parts[0], parts[1], true}, ""};
}

// Splits a comma-separated list of names, commas inside quotes being part of a name.
inline std::vector<std::string> split_name_list(std::string_view text) {
  std::vector<std::string> out;
  std::string item;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') quoted = !quoted;  // '""' toggles twice: stays inside
    if (c == ',' && !quoted) {
      out.push_back(item);
      item.clear();
      continue;
    }
    item += c;
  }
  out.push_back(item);
  return out;
}

}  // namespace mpf::pgident
