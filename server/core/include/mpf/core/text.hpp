// Text helpers for log lines: one event per line (docs/design.md §13), whatever a library put in
// its message (libpq ends its errors with a newline and adds hint lines).
#pragma once

#include <string>
#include <string_view>

namespace mpf {

// Newlines become "; ", trailing whitespace goes, quotes become single quotes so that a
// key="value" field stays parseable.
inline std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else if (c == '\r' || c == '\t') {
      out += ' ';
    } else if (c == '"') {
      out += '\'';
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

}  // namespace mpf
