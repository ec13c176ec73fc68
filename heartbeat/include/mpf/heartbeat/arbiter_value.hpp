// The etcd arbiter's leadership key, as values: pure encoding shared by the etcd client
// (server/src/etcd_arbiter.cpp), the simulation's arbiter (tests/sim) and the unit tests.
//
// The key is <arbiter.prefix><pair>/leader where <pair> is the two node names sorted and joined
// by '+', so both nodes of a pair name the same key whatever their own name. Its value is the
// holder's epoch, zero-padded to 20 digits, a space and the holder's node name ("...0007 a"):
// fixed width, so it also sorts by epoch byte-wise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <mpf/core/position.hpp>

namespace mpf::heartbeat {

struct LeaderValue {
  std::string node;
  Epoch epoch = 0;
  bool operator==(const LeaderValue&) const = default;
};

inline std::string leader_key(std::string_view prefix, std::string_view node,
                              std::string_view peer) {
  std::string key(prefix);
  if (key.empty() || key.back() != '/') key += '/';
  const bool mine_first = node < peer;
  key += std::string(mine_first ? node : peer) + "+" + std::string(mine_first ? peer : node);
  return key + "/leader";
}

inline std::string encode_leader(const LeaderValue& v) {
  std::string e = std::to_string(v.epoch);
  return std::string(20 - std::min<size_t>(20, e.size()), '0') + e + " " + v.node;
}

inline std::optional<LeaderValue> decode_leader(std::string_view s) {
  if (s.size() < 22 || s[20] != ' ') return std::nullopt;
  Epoch epoch = 0;
  for (size_t i = 0; i < 20; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    epoch = epoch * 10 + (s[i] - '0');
  }
  return LeaderValue{std::string(s.substr(21)), epoch};
}

// Standard base64 (RFC 4648, padded): etcd's JSON gateway carries keys and values so.
inline std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(n >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = uint8_t(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

inline std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace mpf::heartbeat
