// mpfailover list: both nodes of the pair in one table, as `patronictl list` or
// `pg_autoctl show state` show a cluster; and mpfailover history (mpfailover.history).
//
// One control request (status): this node's daemon knows the peer from its heartbeats, and the
// peer's own facts (writes, lag, backlog, links) from the note of the peer's latest Beat
// (heartbeat/node_facts.hpp). A peer that does not answer heartbeats is shown with its last
// known role in brackets and everything else "unknown": nothing is guessed. The exit code is
// pair_health()'s verdict, the same rule as `status`.
#include <atomic>
#include <chrono>
#include <csignal>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>
#include <unistd.h>

#include <mpf/core/duration.hpp>
#include <mpf/server/control_client.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/pair_view.hpp>

#include "cli_commands.hpp"

namespace mpf::server::cli {
namespace {

namespace po = boost::program_options;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

std::atomic<bool> g_stop{false};
extern "C" void stop_list_watch(int) { g_stop = true; }

std::string cell(const ojson& v) {
  if (v.is_null()) return "unknown";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(v.get<double>() < 10 ? 2 : 0) << v.get<double>() << "s";
    return o.str();
  }
  return v.dump();
}

std::string link_cell(const ojson& link) {
  if (!link.is_object()) return "unknown";
  return "out " + cell(link["outbound"]) + ", in " + cell(link["inbound"]);
}

std::string flags_cell(const ojson& n) {
  std::string f;
  auto add = [&](const char* key, const char* word) {
    if (n[key].is_boolean() && n[key].get<bool>()) f += (f.empty() ? "" : ",") + std::string(word);
  };
  add("maintenance", "maintenance");
  add("fenced", "fenced");
  if (f.empty()) f = n["maintenance"].is_null() ? "unknown" : "-";
  return f;
}

std::string format_list(const ojson& l) {
  const std::vector<std::string> head{"NODE", "ADDRESS", "ROLE",    "EPOCH",     "WRITES", "STATE",
                                      "LINK", "LAG",     "BACKLOG", "HEARTBEAT", "FLAGS"};
  std::vector<std::vector<std::string>> rows{head};
  for (const auto& n : l["nodes"]) {
    std::string role = cell(n["role"]);
    if (n["role"].is_null() && n.contains("last_known_role") && !n["last_known_role"].is_null()) {
      role = "unknown (was " + n["last_known_role"].get<std::string>() + ")";
    }
    std::string hb = n["self"].get<bool>() ? "-"
                     : n["last_heartbeat_age_s"].is_null()
                         ? "never"
                         : cell(n["last_heartbeat_age_s"]) + " ago";
    rows.push_back({cell(n["name"]) + (n["self"].get<bool>() ? " *" : ""), cell(n["address"]), role,
                    cell(n["epoch"]), cell(n["writes"]), cell(n["state"]), link_cell(n["link"]),
                    cell(n["lag_s"]), cell(n["backlog_transactions"]), hb, flags_cell(n)});
  }
  std::vector<size_t> width(head.size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::ostringstream out;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      out << r[i];
      if (i + 1 < r.size()) out << std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << "\n";
  }
  out << "(* this node; the peer's writes, link, lag and backlog as its latest heartbeat said)\n";
  if (l["healthy"].get<bool>()) {
    out << "pair: healthy\n";
  } else {
    out << "pair: UNHEALTHY\n";
    for (const auto& p : l["problems"]) out << "  - " << p.get<std::string>() << "\n";
  }
  return out.str();
}

// One report: the text (or JSON line) and the exit code.
std::pair<std::string, int> list_once(const Config& cfg, bool as_json) {
  auto s = control_request(cfg.control.socket, json{{"command", "status"}});
  if (!s) {
    // No daemon here: nothing is known of either node; the pair cannot be called healthy.
    if (as_json) {
      return {ojson{{"nodes", nullptr}, {"healthy", false}, {"problems", {s.status().message()}}}
                      .dump() +
                  "\n",
              kExitFailed};
    }
    return {"mpfailover list: " + s.status().message() + "\n", kExitFailed};
  }
  const ojson l = pair_view_json(cfg, *s);
  const int rc = l["healthy"].get<bool>() ? kExitOk : kExitFailed;
  return {as_json ? l.dump() + "\n" : format_list(l), rc};
}

}  // namespace

int cmd_list(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover list options");
  bool as_json = false;
  std::string interval_text;
  std::vector<std::string> positional;
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&as_json),
                                                 "one JSON object (with --watch: one a line)")(
      "watch", po::value(&interval_text)->implicit_value("2s"),
      "refresh every INTERVAL (default 2s) until Ctrl-C: --watch, --watch=5s or --watch 5s");
  po::options_description hidden;
  hidden.add_options()("rest", po::value(&positional));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("rest", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover list: " << e.what() << "\nhint: mpfailover list --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout
        << "usage: mpfailover [--config PATH] list [--json] [--watch [INTERVAL]]\n\n"
           "Both nodes of the pair in one table: name, address, role, epoch, writes, state\n"
           "(this daemon: running; the peer: up, service_down, unreachable), replication link\n"
           "each way, lag, backlog (transactions not yet acknowledged), last heartbeat, and\n"
           "flags (maintenance: standalone; fenced: application writes closed). Asks this\n"
           "node's daemon; the peer's own figures come with its heartbeats, so a peer that\n"
           "does not answer shows \"unknown\".\n\n"
           "Exit codes: 0 the pair is healthy, 1 it is not (the problems are listed) or this\n"
           "node's daemon did not answer, 2 usage or config error.\n\n"
        << desc;
    return kExitOk;
  }
  const bool watch = vm.count("watch") > 0;
  if (!positional.empty()) {
    if (!watch || positional.size() > 1 || interval_text != "2s") {
      std::cerr << "mpfailover list: unexpected argument \"" << positional.front()
                << "\"\nhint: mpfailover list --help\n";
      return kExitUsage;
    }
    interval_text = positional.front();  // --watch 5s
  }
  std::chrono::nanoseconds interval{};
  if (watch) {
    auto d = parse_duration(interval_text);
    if (!d || *d < std::chrono::milliseconds(100)) {
      std::cerr << "mpfailover list: --watch: "
                << (d ? "invalid interval \"" + interval_text + "\": at least 100ms"
                      : d.status().message())
                << "\n";
      return kExitUsage;
    }
    interval = *d;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto [text, rc] = list_once(*cfg, as_json);
  if (!watch) {
    (rc == kExitFailed && text.rfind("mpfailover list:", 0) == 0 ? std::cerr : std::cout) << text;
    return rc;
  }
  const bool in_place = !as_json && ::isatty(STDOUT_FILENO);
  struct sigaction sa {};
  sa.sa_handler = stop_list_watch;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (in_place) std::cout << "\x1b[2J";
  while (!g_stop) {
    if (in_place) {
      std::string framed = "\x1b[H";
      for (char c : text) framed += c == '\n' ? std::string("\x1b[K\n") : std::string(1, c);
      framed += "(every " + interval_text + "; Ctrl-C to stop)\x1b[K\n\x1b[J";
      std::cout << framed << std::flush;
    } else {
      std::cout << text << (as_json ? "" : "\n") << std::flush;
    }
    const auto until = std::chrono::steady_clock::now() + interval;
    while (!g_stop && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!g_stop) std::tie(text, rc) = list_once(*cfg, as_json);
  }
  return rc;  // the last verdict
}

int cmd_history(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover history options");
  bool as_json = false;
  HistoryFilter filter;
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&as_json),
                                                 "one JSON object: {events: [...], count, more}")(
      "since", po::value(&filter.since),
      "only since TIME (\"2026-11-22 10:00\") or for the last DURATION (90s, 30min, 2h, 7d)")(
      "limit", po::value(&filter.limit), "the newest N at most (default 100)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover history: " << e.what() << "\nhint: mpfailover history --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] history [--since TIME|DURATION] [--limit N] "
                 "[--json]\n\n"
                 "What happened to this node, oldest first (mpfailover.history): role changes,\n"
                 "failovers, switchovers, standalone/join, fencing (application writes opened or\n"
                 "closed), skips, resyncs and repairs, each with who asked, why, the epoch and\n"
                 "the replication positions then. Read straight from the database (the daemon\n"
                 "need not run). Each node keeps its own history.\n"
                 "Exit codes: 0 ok, 1 the database could not be read, 2 usage or config error.\n\n"
              << desc;
    return kExitOk;
  }
  if (filter.limit < 1) {
    std::cerr << "mpfailover history: invalid --limit " << filter.limit << ": expected 1 or more\n";
    return kExitUsage;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto list = read_history(cfg->node.database, filter);
  if (!list) {
    std::cerr << "mpfailover history: " << list.status().message() << "\n";
    return list.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  std::cout << (as_json ? history_json(*list) + "\n" : format_history(*list));
  return kExitOk;
}

}  // namespace mpf::server::cli
