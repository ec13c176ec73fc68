// Parsing of operator-written durations: "60s", "100ms", "2min", "1.5s", "2h", "7d".
#pragma once

#include <cctype>
#include <chrono>
#include <cmath>
#include <string>
#include <string_view>

#include <mpf/core/clock.hpp>
#include <mpf/core/status.hpp>

namespace mpf {

// Accepts a non-negative number followed by one of: ms, s, min, h, d (spaces allowed between);
// the same units as `mpfailover conflicts --since`.
// A bare number is refused: a unit-less "60" is the classic ms-vs-s outage.
inline Result<Duration> parse_duration(std::string_view text) {
  const std::string original(text);
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  const std::string number(text.substr(0, i));
  const std::string unit(trim(text.substr(i)));
  if (number.empty() || number.front() == '.' || number.back() == '.' ||
      number.find('.') != number.rfind('.')) {
    return invalid_argument("invalid duration \"" + original +
                            "\": expected a number with a unit (ms, s, min, h, d), e.g. \"60s\"");
  }
  double scale_ms;
  if (unit == "ms") {
    scale_ms = 1;
  } else if (unit == "s") {
    scale_ms = 1000;
  } else if (unit == "min") {
    scale_ms = 60'000;
  } else if (unit == "h") {
    scale_ms = 3'600'000;
  } else if (unit == "d") {
    scale_ms = 86'400'000;
  } else if (unit.empty()) {
    return invalid_argument("invalid duration \"" + original +
                            "\": missing unit (ms, s, min, h, d), e.g. \"60s\"");
  } else {
    return invalid_argument("invalid duration \"" + original + "\": unknown unit \"" + unit +
                            "\" (expected ms, s, min, h or d)");
  }
  const double ms = std::stod(number) * scale_ms;
  if (!std::isfinite(ms) || ms > 1e12) {
    return invalid_argument("invalid duration \"" + original + "\": too large");
  }
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
}

}  // namespace mpf
