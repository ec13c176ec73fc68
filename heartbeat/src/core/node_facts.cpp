#include <charconv>
#include <cstdio>

#include <mpf/heartbeat/node_facts.hpp>

namespace mpf::heartbeat {
namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

template <typename T>
std::optional<T> parse(std::string_view v) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return out;
}

std::optional<bool> parse_bool(std::string_view v) {
  if (v == "1") return true;
  if (v == "0") return false;
  return std::nullopt;
}

// Only words made of [a-z_] travel: a value can never break the key=value format.
bool plain_word(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

}  // namespace

std::string encode_facts(const NodeFacts& f) {
  std::string out(kFactsPrefix);
  auto put = [&](std::string_view k, const std::string& v) {
    out += ' ';
    out += k;
    out += '=';
    out += v;
  };
  put("writes", plain_word(f.writes) ? f.writes : "unknown");
  if (f.lag_s) put("lag_s", number(*f.lag_s));
  if (f.backlog_transactions) put("backlog_tx", std::to_string(*f.backlog_transactions));
  if (f.backlog_bytes) put("backlog_bytes", std::to_string(*f.backlog_bytes));
  if (f.outbound_up) put("out", *f.outbound_up ? "1" : "0");
  if (f.inbound_up) put("in", *f.inbound_up ? "1" : "0");
  put("standalone", f.standalone ? "1" : "0");
  put("auto", f.automatic_failover ? "1" : "0");
  return out;
}

std::optional<NodeFacts> decode_facts(std::string_view note) {
  if (note.substr(0, kFactsPrefix.size()) != kFactsPrefix) return std::nullopt;
  std::string_view rest = note.substr(kFactsPrefix.size());
  if (!rest.empty() && rest.front() != ' ') return std::nullopt;
  NodeFacts f;
  f.writes = "unknown";
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find(' ');
    const std::string_view pair = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    const auto k = pair.substr(0, eq);
    const auto v = pair.substr(eq + 1);
    if (k == "writes" && plain_word(v)) f.writes = std::string(v);
    if (k == "lag_s") f.lag_s = parse<double>(v);
    if (k == "backlog_tx") f.backlog_transactions = parse<int64_t>(v);
    if (k == "backlog_bytes") f.backlog_bytes = parse<int64_t>(v);
    if (k == "out") f.outbound_up = parse_bool(v);
    if (k == "in") f.inbound_up = parse_bool(v);
    if (k == "standalone") f.standalone = parse_bool(v).value_or(false);
    if (k == "auto") f.automatic_failover = parse_bool(v).value_or(false);
  }
  return f;
}

}  // namespace mpf::heartbeat
