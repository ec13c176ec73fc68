// Compact forms of column values in PostgreSQL text form (docs/protocol.md §4.4, version 2): UUIDs,
// integers and ISO timestamps. Private to the codec.
//
// A value is sent in a compact form only when its text is exactly what the form renders back:
// parse() accepts nothing else, so every text round-trips byte for byte, whatever the column's
// type. "6F9619FF-8B86-D011-B42D-00C04FC964FF" (upper case), "007" or "2026-01-02 03:04:05.50+00"
// (a trailing zero PostgreSQL would not print) stay text. The forms are the ones PostgreSQL
// prints: uuid_out, int8out, and timestamp(tz)_out with DateStyle ISO (the capture trigger pins
// it), years 1 to 9999 AD only.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mpf::replicator::wire::codec {

// ---- UUID: 8-4-4-4-12 lower-case hex digits -----------------------------------------------------

using UuidBytes = std::array<uint8_t, 16>;

inline int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not the canonical form
}

inline bool parse_uuid(std::string_view s, UuidBytes* out) {
  if (s.size() != 36) return false;
  size_t k = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
      ++i;
      continue;
    }
    const int hi = hex_digit(s[i]);
    const int lo = hex_digit(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[k++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return true;
}

inline std::string render_uuid(const UuidBytes& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

// ---- integer: -?(0|[1-9][0-9]*) within int64, "-0" excluded -------------------------------------

inline bool parse_int(std::string_view s, int64_t* out) {
  const bool neg = !s.empty() && s[0] == '-';
  const std::string_view d = s.substr(neg ? 1 : 0);
  if (d.empty() || d.size() > 19 || (d[0] == '0' && (d.size() > 1 || neg))) return false;
  uint64_t v = 0;
  for (char c : d) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow 64 bits
  }
  const uint64_t limit = neg ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (v > limit) return false;
  *out = neg ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

// ---- timestamps ---------------------------------------------------------------------------------
// timestamptz: "YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]]" (the fraction without trailing zeros,
// the offset's minutes and seconds only when not zero); timestamp: the same without the offset.

struct Timestamp {
  int64_t utc_us = 0;    // microseconds since 1970-01-01 00:00:00 UTC (local time when !zoned)
  int32_t offset_s = 0;  // local time minus UTC, seconds; 0 when !zoned
  bool zoned = false;

  bool operator==(const Timestamp&) const = default;
};

inline constexpr int64_t kUsPerSecond = 1'000'000;
inline constexpr int64_t kUsPerMinute = 60 * kUsPerSecond;
inline constexpr int64_t kUsPerDay = 86'400 * kUsPerSecond;
inline constexpr int32_t kMaxOffsetSeconds = 16 * 3600 - 1;  // PostgreSQL's limit: 15:59:59
// Local times from 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999.
inline constexpr int64_t kMinLocalUs = -62'135'596'800 * kUsPerSecond;
inline constexpr int64_t kMaxLocalUs = 253'402'300'800 * kUsPerSecond - 1;

inline int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
inline int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = floor_div(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

inline void civil_from_days(int64_t z, int64_t* y, int* m, int* d) {
  z += 719468;
  const int64_t era = floor_div(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

// False when the local time is outside years 1 to 9999 or the offset outside ±15:59:59.
inline bool render_timestamp(const Timestamp& t, std::string* out) {
  if (t.offset_s < -kMaxOffsetSeconds || t.offset_s > kMaxOffsetSeconds) return false;
  if (!t.zoned && t.offset_s != 0) return false;
  if (t.utc_us < kMinLocalUs - kMaxOffsetSeconds * kUsPerSecond ||
      t.utc_us > kMaxLocalUs + kMaxOffsetSeconds * kUsPerSecond) {
    return false;  // also keeps the addition below from overflowing
  }
  const int64_t local = t.utc_us + int64_t{t.offset_s} * kUsPerSecond;
  if (local < kMinLocalUs || local > kMaxLocalUs) return false;
  const int64_t days = floor_div(local, kUsPerDay);
  const int64_t in_day = local - days * kUsPerDay;
  int64_t y;
  int mo, d;
  civil_from_days(days, &y, &mo, &d);
  const int64_t secs = in_day / kUsPerSecond;
  int frac = static_cast<int>(in_day % kUsPerSecond);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", static_cast<int>(y), mo,
                        d, static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60),
                        static_cast<int>(secs % 60));
  if (frac != 0) {
    int digits = 6;
    while (frac % 10 == 0) {
      frac /= 10;
      --digits;
    }
    n += std::snprintf(buf + n, sizeof buf - n, ".%0*d", digits, frac);
  }
  if (t.zoned) {
    const int32_t a = t.offset_s < 0 ? -t.offset_s : t.offset_s;
    n += std::snprintf(buf + n, sizeof buf - n, "%c%02d", t.offset_s < 0 ? '-' : '+', a / 3600);
    if (a % 60 != 0) {
      n += std::snprintf(buf + n, sizeof buf - n, ":%02d:%02d", a / 60 % 60, a % 60);
    } else if (a / 60 % 60 != 0) {
      n += std::snprintf(buf + n, sizeof buf - n, ":%02d", a / 60 % 60);
    }
  }
  out->assign(buf, static_cast<size_t>(n));
  return true;
}

// Accepts exactly the texts render_timestamp produces.
inline bool parse_timestamp(std::string_view s, Timestamp* out) {
  auto num = [&](size_t pos, size_t len, int* v) {
    if (pos + len > s.size()) return false;
    int x = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 19 || !num(0, 4, &y) || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || s[10] != ' ' || !num(11, 2, &h) || s[13] != ':' || !num(14, 2, &mi) ||
      s[16] != ':' || !num(17, 2, &se)) {
    return false;
  }
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return false;
  size_t p = 19;
  int64_t frac = 0;
  if (p < s.size() && s[p] == '.') {
    size_t digits = 0;
    for (++p; p < s.size() && s[p] >= '0' && s[p] <= '9' && digits < 6; ++p, ++digits) {
      frac = frac * 10 + (s[p] - '0');
    }
    if (digits == 0) return false;
    for (; digits < 6; ++digits) frac *= 10;
  }
  Timestamp t;
  if (p < s.size()) {
    if (s[p] != '+' && s[p] != '-') return false;
    const int sign = s[p] == '-' ? -1 : 1;
    int oh = 0, om = 0, os = 0;
    if (!num(p + 1, 2, &oh)) return false;
    size_t q = p + 3;
    if (q < s.size() && (s[q] != ':' || !num(q + 1, 2, &om))) return false;
    if (q < s.size()) q += 3;
    if (q < s.size() && (s[q] != ':' || !num(q + 1, 2, &os))) return false;
    if (q < s.size()) q += 3;
    if (q != s.size() || om > 59 || os > 59) return false;
    t.zoned = true;
    t.offset_s = sign * (oh * 3600 + om * 60 + os);
  }
  const int64_t local =
      (days_from_civil(y, mo, d) * 86'400 + h * 3600 + mi * 60 + se) * kUsPerSecond + frac;
  t.utc_us = local - int64_t{t.offset_s} * kUsPerSecond;
  // Whatever the loose parse above let through (day 31 of a 30-day month, a trailing zero, an
  // offset "+05:00" PostgreSQL prints as "+05"), only the exact rendering counts.
  std::string back;
  if (!render_timestamp(t, &back) || back != s) return false;
  *out = t;
  return true;
}

}  // namespace mpf::replicator::wire::codec
