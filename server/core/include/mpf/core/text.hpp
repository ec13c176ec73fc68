// Text helpers for log lines: one event per line (docs/design.md §13), whatever a library put in
// its message (libpq ends its errors with a newline and adds hint lines).
#pragma once

#include <chrono>
#include <cstdio>
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

// A duration for people: "5 s", "1.5 s", "250 ms". Whole seconds are never truncated: a 500 ms
// limit once read "within 0 s".
template <typename Rep, typename Period>
std::string duration_text(std::chrono::duration<Rep, Period> d) {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  char buf[48];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  } else if (static_cast<long long>(ms) % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%.0f s", ms / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  }
  return buf;
}

}  // namespace mpf
