// The INI syntax is read here (read_ini): Boost.Program_options' own reader cuts a line at any
// '#', which silently truncated a libpq password or a path containing one. Its entries then go
// through Program_options as "section.key" options (unknown and repeated keys are its errors).
// Its exceptions name the option but not the line, so on error we look the key up in the text
// ourselves: an operator at 3 a.m. wants "line 12".
#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>

#include <mpf/core/duration.hpp>
#include <mpf/core/pg_identifier.hpp>
#include <mpf/heartbeat/fence_timing.hpp>
#include <mpf/replicator/wire.hpp>
#include <mpf/server/config.hpp>

namespace mpf::server {
namespace po = boost::program_options;

namespace {

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// The line without its comment. '#' starts a comment at the start of the line or after
// whitespace, outside quotes (single or double, a backslash escaping the next character): a
// libpq "password=se#cret" or a quoted "a #b" is a value.
std::string strip_comment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(line[i - 1])))) {
      return line.substr(0, i);
    }
  }
  return line;
}

// A value written in quotes loses them: "..." with \" and \\ as escapes, '...' with \' and
// \\ (any other backslash stays as written, for libpq's own escapes). Anything after the closing
// quote is an error, as is a missing closing quote.
Result<std::string> unquote(const std::string& value) {
  if (value.empty() || (value.front() != '"' && value.front() != '\'')) return value;
  const char quote = value.front();
  std::string out;
  for (size_t i = 1; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '\\' && i + 1 < value.size() && (value[i + 1] == quote || value[i + 1] == '\\')) {
      out += value[++i];
    } else if (c == quote) {
      if (i + 1 != value.size()) {
        return invalid_argument("text after the closing quote (quote the whole value)");
      }
      return out;
    } else {
      out += c;
    }
  }
  return invalid_argument(std::string("no closing ") + quote + " quote");
}

struct IniEntry {
  std::string key;  // "section.key"
  std::string value;
};

// The file as "section.key = value" entries in order, comments removed and values unquoted.
// Errors name the line.
Result<std::vector<IniEntry>> read_ini(const std::string& text, const std::string& path) {
  std::vector<IniEntry> out;
  std::istringstream in(text);
  std::string line;
  std::string section;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto where = [&] {
      return "config file \"" + path + "\": line " + std::to_string(n) + ": ";
    };
    line = trim(strip_comment(line));
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos || trim(line.substr(0, eq)).empty()) {
      return invalid_argument(where() +
                              "malformed line, expected \"key = value\" or \"[section]\"");
    }
    const std::string key = trim(line.substr(0, eq));
    const std::string dotted = section.empty() ? key : section + "." + key;
    // replication.tables is a list of PostgreSQL identifiers: its double quotes belong to the
    // names ("My Table", sch."Mixed"), so the value is kept as written (docs/tables.md).
    auto value = dotted == "replication.tables" ? Result<std::string>(trim(line.substr(eq + 1)))
                                                : unquote(trim(line.substr(eq + 1)));
    if (!value) {
      return invalid_argument(where() + "value of \"" + key + "\": " + value.status().message());
    }
    out.push_back({dotted, *value});
  }
  return out;
}

// Line number (1-based) where "section.key" is set, or 0 if not found.
int find_line(const std::string& text, const std::string& dotted_key) {
  const auto dot = dotted_key.find('.');
  const std::string section = dot == std::string::npos ? "" : dotted_key.substr(0, dot);
  const std::string key = dot == std::string::npos ? dotted_key : dotted_key.substr(dot + 1);
  std::istringstream in(text);
  std::string line;
  std::string current;
  for (int n = 1; std::getline(in, line); ++n) {
    line = trim(strip_comment(line));
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      current = trim(line.substr(1, line.size() - 2));
      continue;
    }
    const auto eq = line.find('=');
    if (eq != std::string::npos && current == section && trim(line.substr(0, eq)) == key) {
      return n;
    }
  }
  return 0;
}

class ErrorAt {
 public:
  ErrorAt(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  Status key(const std::string& dotted_key, const std::string& what) const {
    const int line = find_line(text_, dotted_key);
    std::string where = "config file \"" + path_ + "\"";
    if (line > 0) where += " line " + std::to_string(line);
    return invalid_argument(where + ": " + what);
  }
  Status file(const std::string& what) const {
    return invalid_argument("config file \"" + path_ + "\": " + what);
  }

 private:
  const std::string& path_;
  const std::string& text_;
};

bool valid_node_name(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '-' || c == '_';
  });
}

std::vector<std::string> split_list(const std::string& value) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(value);
  while (std::getline(in, item, ',')) out.push_back(trim(item));
  return out;
}

// Table names as PostgreSQL identifiers: optionally schema-qualified, no quoting needed.
bool valid_table_name(const std::string& name) {
  if (name.empty() || name.size() > 127) return false;
  int dots = 0;
  bool part_start = true;
  for (unsigned char c : name) {
    if (c == '.') {
      if (part_start) return false;
      ++dots;
      part_start = true;
      continue;
    }
    const bool ok = std::islower(c) || c == '_' || (!part_start && std::isdigit(c));
    if (!ok) return false;
    part_start = false;
  }
  return !part_start && dots <= 1;
}

// "1073741824", "512kB", "256MB", "1GB" (powers of 1024, as PostgreSQL's memory units).
Result<uint64_t> parse_bytes(const std::string& text) {
  const std::string t = trim(text);
  size_t i = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
  const std::string unit = trim(t.substr(i));
  if (i == 0 || i > 15) {
    return invalid_argument("invalid size \"" + text +
                            "\": expected a number of bytes, "
                            "optionally with kB, MB or GB");
  }
  uint64_t scale = 1;
  if (unit == "kB") {
    scale = 1ull << 10;
  } else if (unit == "MB") {
    scale = 1ull << 20;
  } else if (unit == "GB") {
    scale = 1ull << 30;
  } else if (!unit.empty() && unit != "B") {
    return invalid_argument("invalid size \"" + text + "\": unknown unit \"" + unit +
                            "\" (expected kB, MB or GB)");
  }
  return std::stoull(t.substr(0, i)) * scale;
}

// "127.0.0.1:9108" or "[::1]:9108": an IP address literal (no host name, so what the daemon
// binds is what the file says) and a port 1-65535.
Result<std::pair<std::string, uint16_t>> parse_listen(const std::string& text) {
  const std::string t = trim(text);
  const auto colon = t.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return invalid_argument("expected ADDRESS:PORT, e.g. 127.0.0.1:9108 or [::1]:9108");
  }
  std::string address = t.substr(0, colon);
  const std::string port_text = t.substr(colon + 1);
  if (address.front() == '[') {
    if (address.size() < 3 || address.back() != ']') {
      return invalid_argument("expected ADDRESS:PORT, e.g. 127.0.0.1:9108 or [::1]:9108");
    }
    address = address.substr(1, address.size() - 2);
  }
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(address, ec);
  if (ec || (ip.is_v6() && t.front() != '[')) {
    return invalid_argument("\"" + address +
                            "\" is not an IP address (IPv6 goes in brackets: [::1]:9108)");
  }
  const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                      std::all_of(port_text.begin(), port_text.end(),
                                  [](unsigned char c) { return std::isdigit(c); });
  const long port = digits ? std::stol(port_text) : 0;
  if (port < 1 || port > 65535) {
    return invalid_argument("port \"" + port_text + "\" is not 1-65535");
  }
  return std::pair{address, static_cast<uint16_t>(port)};
}

// "192.0.2.10/24" or "2001:db8::10/64": an IP address literal (what `ip addr add` is given)
// and a prefix length that fits it.
Status check_cidr(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) return invalid_argument("no prefix length");
  const std::string address = text.substr(0, slash);
  const std::string prefix = text.substr(slash + 1);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(address, ec);
  if (ec) return invalid_argument("\"" + address + "\" is not an IP address");
  const int max = ip.is_v4() ? 32 : 128;
  const bool digits =
      !prefix.empty() && prefix.size() <= 3 &&
      std::all_of(prefix.begin(), prefix.end(), [](unsigned char c) { return std::isdigit(c); });
  const int n = digits ? std::stoi(prefix) : -1;
  if (n < 1 || n > max) {
    return invalid_argument("prefix length \"" + prefix + "\" is not 1-" + std::to_string(max));
  }
  return Status::ok();
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& path) {
  const ErrorAt err(path, text);
  Config cfg;
  cfg.path = path;

  std::string port_text, peer_port_text, tables_text, interval_text, warn_bytes_text;
  std::string retention_text, tombstone_retention_text, max_protocol_text;
  std::string hb_timeout_text, ping_timeout_text, max_skew_text, witness_text;
  std::string automatic_text, missed_text, switchover_timeout_text, hook_timeout_text,
      conflict_retention_text;
  std::string fence_after_text, arbiter_endpoints_text;
  po::options_description desc;
  // Every key is a string here; typed parsing below gives messages that name the key.
  // clang-format off
  desc.add_options()
      ("node.name", po::value(&cfg.node.name))
      ("node.database", po::value(&cfg.node.database))
      ("peer.name", po::value(&cfg.peer.name))
      ("peer.address", po::value(&cfg.peer.address))
      ("peer.port", po::value(&peer_port_text))
      ("replication.listen", po::value(&cfg.replication.listen))
      ("replication.port", po::value(&port_text))
      ("replication.tables", po::value(&tables_text))
      ("replication.retention", po::value(&retention_text))
      ("replication.tombstone_retention", po::value(&tombstone_retention_text))
      ("replication.max_protocol_version", po::value(&max_protocol_text))
      ("node.initial_role", po::value(&cfg.node.initial_role))
      ("node.app_role", po::value(&cfg.node.app_role))
      ("heartbeat.interval", po::value(&interval_text))
      ("heartbeat.timeout", po::value(&hb_timeout_text))
      ("heartbeat.ping_timeout", po::value(&ping_timeout_text))
      ("heartbeat.max_skew", po::value(&max_skew_text))
      ("heartbeat.witness", po::value(&witness_text))
      ("failover.automatic", po::value(&automatic_text))
      ("failover.missed_heartbeats", po::value(&missed_text))
      ("failover.switchover_timeout", po::value(&switchover_timeout_text))
      ("failover.fence_after", po::value(&fence_after_text))
      ("heartbeat.arbiter", po::value(&cfg.heartbeat.arbiter))
      ("arbiter.endpoints", po::value(&arbiter_endpoints_text))
      ("arbiter.prefix", po::value(&cfg.arbiter.prefix))
      ("arbiter.ca_file", po::value(&cfg.arbiter.ca_file))
      ("arbiter.cert_file", po::value(&cfg.arbiter.cert_file))
      ("arbiter.key_file", po::value(&cfg.arbiter.key_file))
      ("shared.address", po::value(&cfg.shared.address))
      ("shared.interface", po::value(&cfg.shared.interface))
      ("shared.hostname", po::value(&cfg.shared.hostname))
      ("hooks.on_promote", po::value(&cfg.hooks.on_promote))
      ("hooks.on_demote", po::value(&cfg.hooks.on_demote))
      ("hooks.on_role_change", po::value(&cfg.hooks.on_role_change))
      ("conflicts.retention", po::value(&conflict_retention_text))
      ("hooks.timeout", po::value(&hook_timeout_text))
      ("control.socket", po::value(&cfg.control.socket))
      ("control.group", po::value(&cfg.control.group))
      ("log.level", po::value(&cfg.log.level))
      ("metrics.listen", po::value(&cfg.metrics.listen))
      ("queue.warn_bytes", po::value(&warn_bytes_text))
      ("security.mode", po::value(&cfg.security.mode))
      ("security.secret_key_file", po::value(&cfg.security.secret_key_file))
      ("security.public_key_file", po::value(&cfg.security.public_key_file))
      ("security.peer_public_key_file", po::value(&cfg.security.peer_public_key_file));
  // clang-format on

  auto entries = read_ini(text, path);
  if (!entries) return entries.status();
  po::variables_map vm;
  try {
    po::parsed_options parsed(&desc);
    for (const auto& e : *entries) {
      parsed.options.emplace_back(e.key, std::vector<std::string>{e.value});
      parsed.options.back().original_tokens = {e.key};
    }
    po::store(parsed, vm);
    po::notify(vm);
  } catch (const po::unknown_option& e) {
    return err.key(e.get_option_name(), "unknown key \"" + e.get_option_name() + "\"");
  } catch (const po::multiple_occurrences& e) {
    return err.key(e.get_option_name(), "key \"" + e.get_option_name() + "\" is set twice");
  } catch (const po::error& e) {
    return err.file(e.what());
  }

  for (const char* key : {"node.name", "node.database", "peer.name", "peer.address"}) {
    if (!vm.count(key) || trim(vm[key].as<std::string>()).empty()) {
      return err.file(std::string("missing required key \"") + key + "\"");
    }
  }
  if (!valid_node_name(cfg.node.name)) {
    return err.key("node.name", "invalid node name \"" + cfg.node.name +
                                    "\": use 1-32 lower-case letters, digits, '-' or '_'");
  }
  if (!valid_node_name(cfg.peer.name)) {
    return err.key("peer.name", "invalid node name \"" + cfg.peer.name +
                                    "\": use 1-32 lower-case letters, digits, '-' or '_'");
  }
  if (cfg.node.name == cfg.peer.name) {
    return err.key("peer.name", "peer.name \"" + cfg.peer.name + "\" equals node.name");
  }

  auto parse_port = [&](const std::string& key, const std::string& text) -> Result<uint16_t> {
    const std::string p = trim(text);
    const bool digits =
        !p.empty() && p.size() <= 5 &&
        std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); });
    const long value = digits ? std::stol(p) : 0;
    if (value < 1 || value > 65535) {
      return err.key(key, "invalid " + key + " \"" + text + "\": expected 1-65535");
    }
    return static_cast<uint16_t>(value);
  };
  if (vm.count("replication.port")) {
    auto port = parse_port("replication.port", port_text);
    if (!port) return port.status();
    cfg.replication.port = *port;
  }
  if (vm.count("peer.port")) {
    auto port = parse_port("peer.port", peer_port_text);
    if (!port) return port.status();
    cfg.peer.port = *port;
  }

  if (vm.count("replication.tables")) {
    // PostgreSQL identifier rules: users, app.users, "My Table", sch."Mixed". Kept in a canonical
    // spelling (folded, quoted only where needed), so that a name listed twice is seen.
    std::set<std::pair<std::string, std::string>> seen;
    cfg.replication.tables.clear();  // the list replaces the default one
    auto items = pgident::split_name_list(tables_text);
    if (trim(items.back()).empty()) items.pop_back();  // "a, b," as before; "a,,b" is refused
    for (const auto& raw : items) {
      const std::string t = trim(raw);
      const auto parsed = pgident::parse_qualified_name(t);
      if (!parsed.value) {
        return err.key("replication.tables",
                       "invalid table name \"" + t + "\" in replication.tables: " + parsed.error +
                           "\nhint: PostgreSQL identifier syntax, optionally schema-qualified: "
                           "users, app.users, \"My Table\", sch.\"Mixed\"");
      }
      const auto& q = *parsed.value;
      const std::string canonical =
          q.qualified ? pgident::quote_if_needed(q.schema) + "." + pgident::quote_if_needed(q.name)
                      : pgident::quote_if_needed(q.name);
      if (!seen.insert({q.schema, q.name}).second) {
        return err.key("replication.tables", "table \"" + canonical + "\" is listed twice");
      }
      cfg.replication.tables.push_back(canonical);
    }
  }

  if (vm.count("replication.max_protocol_version")) {
    // A pin for rolling upgrades (docs/operations.md "Rolling upgrade"): this node offers and
    // accepts only versions up to it, as a node of the older release would.
    const std::string v = trim(max_protocol_text);
    const bool digits =
        !v.empty() && v.size() <= 3 &&
        std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
    const int n = digits ? std::stoi(v) : 0;
    if (n < static_cast<int>(replicator::wire::kMinProtocolVersion) ||
        n > static_cast<int>(replicator::wire::kProtocolVersion)) {
      return err.key("replication.max_protocol_version",
                     "invalid replication.max_protocol_version \"" + max_protocol_text +
                         "\": this release speaks replication protocol versions " +
                         std::to_string(replicator::wire::kMinProtocolVersion) + " to " +
                         std::to_string(replicator::wire::kProtocolVersion) +
                         "\nhint: pin to the version the older node speaks (mpfailover status "
                         "on it shows protocol_versions), or leave the key out");
    }
    cfg.replication.max_protocol_version = static_cast<uint32_t>(n);
  }

  if (vm.count("heartbeat.interval")) {
    auto d = parse_duration(interval_text);
    if (!d) return err.key("heartbeat.interval", "heartbeat.interval: " + d.status().message());
    if (*d < std::chrono::milliseconds(100)) {
      return err.key("heartbeat.interval",
                     "heartbeat.interval \"" + interval_text + "\" is below the minimum of 100ms");
    }
    cfg.heartbeat.interval = *d;
  }

  cfg.heartbeat.timeout = std::min<Duration>(std::chrono::seconds(10), cfg.heartbeat.interval);
  for (auto [key, text, out] :
       {std::tuple{"replication.retention", &retention_text, &cfg.replication.retention},
        std::tuple{"replication.tombstone_retention", &tombstone_retention_text,
                   &cfg.replication.tombstone_retention},
        std::tuple{"heartbeat.timeout", &hb_timeout_text, &cfg.heartbeat.timeout},
        std::tuple{"heartbeat.ping_timeout", &ping_timeout_text, &cfg.heartbeat.ping_timeout},
        std::tuple{"heartbeat.max_skew", &max_skew_text, &cfg.heartbeat.max_skew},
        std::tuple{"failover.switchover_timeout", &switchover_timeout_text,
                   &cfg.failover.switchover_timeout},
        std::tuple{"failover.fence_after", &fence_after_text, &cfg.failover.fence_after},
        std::tuple{"hooks.timeout", &hook_timeout_text, &cfg.hooks.timeout},
        std::tuple{"conflicts.retention", &conflict_retention_text, &cfg.conflicts.retention}}) {
    if (!vm.count(key)) continue;
    auto d = parse_duration(*text);
    if (!d) return err.key(key, std::string(key) + ": " + d.status().message());
    *out = *d;
  }
  for (auto [key, d] : {std::pair{"heartbeat.timeout", cfg.heartbeat.timeout},
                        std::pair{"heartbeat.ping_timeout", cfg.heartbeat.ping_timeout},
                        std::pair{"failover.switchover_timeout", cfg.failover.switchover_timeout},
                        std::pair{"hooks.timeout", cfg.hooks.timeout}}) {
    if (d < std::chrono::milliseconds(10)) {
      return err.key(key, std::string(key) + " must be at least 10ms");
    }
  }

  if (cfg.node.initial_role != "active" && cfg.node.initial_role != "standby") {
    return err.key("node.initial_role", "invalid node.initial_role \"" + cfg.node.initial_role +
                                            "\": expected active or standby");
  }
  if (!cfg.node.app_role.empty() && !valid_table_name(cfg.node.app_role)) {
    return err.key("node.app_role", "invalid node.app_role \"" + cfg.node.app_role +
                                        "\": expected a lower-case PostgreSQL role name");
  }
  if (vm.count("heartbeat.witness")) {
    for (const auto& w : split_list(witness_text)) {
      if (!w.empty()) cfg.heartbeat.witness.push_back(w);
    }
  }
  if (vm.count("failover.automatic")) {
    const std::string v = trim(automatic_text);
    if (v == "true" || v == "on" || v == "yes") {
      cfg.failover.automatic = true;
    } else if (v == "false" || v == "off" || v == "no") {
      cfg.failover.automatic = false;
    } else {
      return err.key("failover.automatic", "invalid failover.automatic \"" + automatic_text +
                                               "\": expected true or false");
    }
  }
  if (vm.count("failover.missed_heartbeats")) {
    const std::string v = trim(missed_text);
    const bool digits =
        !v.empty() && v.size() <= 3 &&
        std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
    const int n = digits ? std::stoi(v) : 0;
    if (n < 1 || n > 100) {
      return err.key("failover.missed_heartbeats",
                     "invalid failover.missed_heartbeats \"" + missed_text + "\": expected 1-100");
    }
    cfg.failover.missed_heartbeats = n;
  }
  // Issue #18: a timeout above the interval is what once disabled peer-loss detection; the
  // monitor copes now, but a heartbeat still unanswered when the next goes out is a setting
  // mistake, not a choice.
  if (cfg.heartbeat.timeout > cfg.heartbeat.interval) {
    return err.key("heartbeat.timeout",
                   "heartbeat.timeout " + hb_timeout_text + " is above heartbeat.interval " +
                       (interval_text.empty() ? std::string("60s") : interval_text) +
                       ": an answer must be due before the next heartbeat goes out\nhint: set "
                       "heartbeat.timeout at most heartbeat.interval (e.g. half of it)");
  }
  {
    const std::string a = trim(cfg.heartbeat.arbiter);
    if (a != "none" && a != "etcd") {
      return err.key("heartbeat.arbiter", "invalid heartbeat.arbiter \"" + cfg.heartbeat.arbiter +
                                              "\": expected none or etcd");
    }
    cfg.heartbeat.arbiter = a;
  }
  const bool arbiter = cfg.heartbeat.arbiter == "etcd";
  if (vm.count("arbiter.endpoints")) {
    for (const auto& e : split_list(arbiter_endpoints_text)) {
      if (e.empty()) continue;
      if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0) {
        return err.key("arbiter.endpoints",
                       "invalid arbiter.endpoints entry \"" + e +
                           "\": expected http://HOST:PORT or https://HOST:PORT (etcd client URLs)");
      }
      cfg.arbiter.endpoints.push_back(e);
    }
  }
  if (arbiter && cfg.arbiter.endpoints.empty()) {
    return err.key("heartbeat.arbiter",
                   "heartbeat.arbiter = etcd needs arbiter.endpoints (etcd client URLs, e.g. "
                   "http://198.18.0.1:2379)");
  }
  if (!arbiter && (vm.count("arbiter.endpoints") || vm.count("arbiter.ca_file") ||
                   vm.count("arbiter.cert_file") || vm.count("arbiter.key_file"))) {
    return err.key("arbiter.endpoints",
                   "arbiter.* keys are set but heartbeat.arbiter is not etcd\nhint: set "
                   "heartbeat.arbiter = etcd, or remove the [arbiter] section");
  }
  if (cfg.arbiter.prefix.empty() || cfg.arbiter.prefix.front() != '/') {
    return err.key("arbiter.prefix", "invalid arbiter.prefix \"" + cfg.arbiter.prefix +
                                         "\": expected a key path "
                                         "starting with /");
  }
  if (cfg.arbiter.cert_file.empty() != cfg.arbiter.key_file.empty()) {
    return err.key("arbiter.cert_file",
                   "arbiter.cert_file and arbiter.key_file go together (etcd client certificate)");
  }
  if (cfg.failover.automatic && cfg.heartbeat.witness.empty() && !arbiter) {
    return err.key("failover.automatic",
                   "failover.automatic = true needs heartbeat.witness or heartbeat.arbiter = "
                   "etcd: without either a node cannot tell a dead peer from its own cut-off link "
                   "(split brain)");
  }
  // Self-fencing must close an isolated active before the standby can open (fence_timing.hpp).
  if (cfg.failover.automatic || arbiter) {
    const auto t = heartbeat::fence_timing(cfg.heartbeat.interval, cfg.heartbeat.timeout,
                                           cfg.failover.missed_heartbeats, arbiter);
    const bool given = vm.count("failover.fence_after") > 0;
    const Duration f = given ? cfg.failover.fence_after : t.fence_after;
    if (auto problem = heartbeat::fence_after_problem(f, t, arbiter)) {
      return err.key(given ? "failover.fence_after" : "heartbeat.timeout",
                     (given ? *problem
                            : "the heartbeat timing leaves no safe self-fencing delay: " +
                                  *problem + " (derived)") +
                         "\nhint: raise heartbeat.timeout or failover.missed_heartbeats, or set "
                         "failover.fence_after between the bounds (docs/fencing.md)");
    }
    cfg.failover.fence_after = f;
  } else if (vm.count("failover.fence_after")) {
    return err.key("failover.fence_after",
                   "failover.fence_after is set but nothing fences: self-fencing runs with "
                   "failover.automatic = true or heartbeat.arbiter = etcd");
  }
  if (!cfg.shared.address.empty()) {
    if (auto s = check_cidr(cfg.shared.address); !s) {
      return err.key("shared.address", "invalid shared.address \"" + cfg.shared.address +
                                           "\": " + s.message() +
                                           "; expected an address in CIDR form, e.g. "
                                           "192.0.2.10/24");
    }
    if (cfg.shared.interface.empty()) {
      return err.file("missing key \"shared.interface\" (shared.address is set)");
    }
  }

  if (vm.count("queue.warn_bytes")) {
    auto bytes = parse_bytes(warn_bytes_text);
    if (!bytes) return err.key("queue.warn_bytes", "queue.warn_bytes: " + bytes.status().message());
    cfg.queue.warn_bytes = *bytes;
  }

  if (cfg.security.mode == "curve") {
    for (const char* key : {"security.secret_key_file", "security.public_key_file",
                            "security.peer_public_key_file"}) {
      if (!vm.count(key) || trim(vm[key].as<std::string>()).empty()) {
        return err.file(std::string("missing required key \"") + key +
                        "\" (security.mode is curve)\nhint: create keys with mpfailover keygen, "
                        "or set security.mode = plain to run unencrypted");
      }
    }
  } else if (cfg.security.mode != "plain") {
    return err.key("security.mode",
                   "invalid security.mode \"" + cfg.security.mode + "\": expected curve or plain");
  }

  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (!kLevels.count(cfg.log.level)) {
    return err.key("log.level", "invalid log.level \"" + cfg.log.level +
                                    "\": expected trace, debug, info, warn or error");
  }
  if (!trim(cfg.metrics.listen).empty()) {
    auto listen = parse_listen(cfg.metrics.listen);
    if (!listen) {
      return err.key("metrics.listen", "invalid metrics.listen \"" + cfg.metrics.listen +
                                           "\": " + listen.status().message());
    }
    cfg.metrics.address = listen->first;
    cfg.metrics.port = listen->second;
  } else {
    cfg.metrics.listen.clear();
  }
  if (cfg.control.socket.empty() || cfg.control.socket.front() != '/') {
    return err.key("control.socket",
                   "control.socket \"" + cfg.control.socket + "\" must be an absolute path");
  }
  return cfg;
}

ReloadPlan plan_reload(const Config& now, const Config& next) {
  ReloadPlan plan;
  auto cmp = [&](const char* key, const auto& a, const auto& b, bool at_run_time) {
    if (a == b) return;
    (at_run_time ? plan.apply : plan.restart).push_back(key);
  };
  // At run time.
  cmp("log.level", now.log.level, next.log.level, true);
  cmp("hooks.on_promote", now.hooks.on_promote, next.hooks.on_promote, true);
  cmp("hooks.on_demote", now.hooks.on_demote, next.hooks.on_demote, true);
  cmp("hooks.timeout", now.hooks.timeout, next.hooks.timeout, true);
  cmp("hooks.on_role_change", now.hooks.on_role_change, next.hooks.on_role_change, true);
  cmp("conflicts.retention", now.conflicts.retention, next.conflicts.retention, true);
  cmp("heartbeat.witness", now.heartbeat.witness, next.heartbeat.witness, true);
  cmp("failover.automatic", now.failover.automatic, next.failover.automatic, true);
  cmp("metrics.listen", now.metrics.listen, next.metrics.listen, true);
  // Only with a restart: identities, sockets, the database, the timing the core was built with.
  cmp("node.name", now.node.name, next.node.name, false);
  cmp("node.database", now.node.database, next.node.database, false);
  cmp("node.initial_role", now.node.initial_role, next.node.initial_role, false);
  cmp("node.app_role", now.node.app_role, next.node.app_role, false);
  cmp("peer.name", now.peer.name, next.peer.name, false);
  cmp("peer.address", now.peer.address, next.peer.address, false);
  cmp("peer.port", now.peer.port, next.peer.port, false);
  cmp("replication.listen", now.replication.listen, next.replication.listen, false);
  cmp("replication.port", now.replication.port, next.replication.port, false);
  cmp("replication.tables", now.replication.tables, next.replication.tables, false);
  cmp("replication.retention", now.replication.retention, next.replication.retention, false);
  cmp("replication.tombstone_retention", now.replication.tombstone_retention,
      next.replication.tombstone_retention, false);
  cmp("replication.max_protocol_version", now.replication.max_protocol_version,
      next.replication.max_protocol_version, false);
  cmp("heartbeat.interval", now.heartbeat.interval, next.heartbeat.interval, false);
  cmp("heartbeat.timeout", now.heartbeat.timeout, next.heartbeat.timeout, false);
  cmp("heartbeat.ping_timeout", now.heartbeat.ping_timeout, next.heartbeat.ping_timeout, false);
  cmp("heartbeat.max_skew", now.heartbeat.max_skew, next.heartbeat.max_skew, false);
  cmp("failover.missed_heartbeats", now.failover.missed_heartbeats, next.failover.missed_heartbeats,
      false);
  cmp("failover.switchover_timeout", now.failover.switchover_timeout,
      next.failover.switchover_timeout, false);
  cmp("shared.address", now.shared.address, next.shared.address, false);
  cmp("shared.interface", now.shared.interface, next.shared.interface, false);
  cmp("shared.hostname", now.shared.hostname, next.shared.hostname, false);
  cmp("heartbeat.arbiter", now.heartbeat.arbiter, next.heartbeat.arbiter, false);
  cmp("arbiter.endpoints", now.arbiter.endpoints, next.arbiter.endpoints, false);
  cmp("arbiter.prefix", now.arbiter.prefix, next.arbiter.prefix, false);
  cmp("arbiter.ca_file", now.arbiter.ca_file, next.arbiter.ca_file, false);
  cmp("arbiter.cert_file", now.arbiter.cert_file, next.arbiter.cert_file, false);
  cmp("arbiter.key_file", now.arbiter.key_file, next.arbiter.key_file, false);
  cmp("failover.fence_after", now.failover.fence_after, next.failover.fence_after, false);
  cmp("control.socket", now.control.socket, next.control.socket, false);
  cmp("control.group", now.control.group, next.control.group, false);
  cmp("queue.warn_bytes", now.queue.warn_bytes, next.queue.warn_bytes, false);
  cmp("security.mode", now.security.mode, next.security.mode, false);
  cmp("security.secret_key_file", now.security.secret_key_file, next.security.secret_key_file,
      false);
  cmp("security.public_key_file", now.security.public_key_file, next.security.public_key_file,
      false);
  cmp("security.peer_public_key_file", now.security.peer_public_key_file,
      next.security.peer_public_key_file, false);
  return plan;
}

const char* software_version() { return MPF_SOFTWARE_VERSION; }

uint32_t Config::protocol_max() const {
  return replication.max_protocol_version != 0 ? replication.max_protocol_version
                                               : replicator::wire::kProtocolVersion;
}

bool Config::protocol_pinned() const { return protocol_max() < replicator::wire::kProtocolVersion; }

std::string Config::listen_endpoint() const {
  return "tcp://" + replication.listen + ":" + std::to_string(replication.port);
}

std::string Config::peer_endpoint() const {
  const bool v6 = peer.address.find(':') != std::string::npos;
  return "tcp://" + (v6 ? "[" + peer.address + "]" : peer.address) + ":" +
         std::to_string(peer.port ? peer.port : replication.port);
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return not_found("could not open config file \"" + path +
                     "\"\nhint: pass --config PATH, or copy deploy/mpfailover.conf.example");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), path);
}

}  // namespace mpf::server
