// mpfailover resync: rebuild this standby from the active. The copy runs in this node's daemon
// (server/src/verify/resync_runner.cpp says why); this command starts it through the control
// socket, prints its progress (rows per table, then the catch-up backlog) and its outcome.
#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <mpf/core/duration.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/control_client.hpp>

#include "cli_commands.hpp"

namespace mpf::server::cli {
namespace {

namespace po = boost::program_options;
using json = nlohmann::json;

std::string fixed1(double v) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << v;
  return out.str();
}

int refuse(const json& reply) {
  std::cerr << "mpfailover: " << reply.value("error", std::string("resync failed")) << "\n";
  if (reply.contains("hint") && reply["hint"].is_string() &&
      !reply["hint"].get<std::string>().empty()) {
    std::cerr << "hint: " << reply["hint"].get<std::string>() << "\n";
  }
  return kExitFailed;
}

}  // namespace

int cmd_resync(const std::string& config_path, const std::vector<std::string>& args) {
  bool json_output = false;
  bool force = false;
  bool yes = false;
  bool dry_run = false;
  std::string timeout_text = "300s";
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json_output),
                                                 "print the final summary as JSON")(
      "force", po::bool_switch(&force),
      "discard this node's changes the peer has not acknowledged (each is recorded in "
      "mpfailover.conflict, kind 'resync')")(
      "yes", po::bool_switch(&yes), "with --force: do not ask for a confirmation (scripts)")(
      "dry-run", po::bool_switch(&dry_run), "say what would be done, do nothing")(
      "catch-up-timeout", po::value(&timeout_text),
      "stop following the catch-up after this long (default 300s; replication goes on)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover resync: " << e.what() << "\nhint: mpfailover resync --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout
        << "usage: mpfailover [--config PATH] resync [--force [--yes]] [--dry-run] [--json]\n"
           "                  [--catch-up-timeout D]\n\n"
           "On the standby: replaces this node's replicated tables (and tombstones) with one\n"
           "consistent snapshot of the active's, copied over port 2008 while the active keeps\n"
           "serving writes, stores the position of the active's change stream the snapshot\n"
           "holds, then follows the catch-up from the active's log. Refused on the active, when\n"
           "the peer is not up and active, when definitions differ, and when this node has\n"
           "changes the peer has not acknowledged (unless --force). Runs in this node's daemon.\n"
           "--force asks for a confirmation on a terminal (--yes for scripts); without a\n"
           "terminal and without --yes it is refused. --dry-run only says what would be done.\n\n"
        << desc;
    return kExitOk;
  }
  auto timeout = parse_duration(timeout_text);
  if (!timeout) {
    std::cerr << "mpfailover resync: --catch-up-timeout: " << timeout.status().message() << "\n";
    return kExitUsage;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  if (force && !dry_run) {
    if (int rc = may_confirm("resync --force", yes); rc >= 0) return rc;
  }
  if (force || dry_run) {
    // What would be replaced and discarded: the roles from the daemon, the unacknowledged
    // changes from this node's database.
    auto now = control_request(cfg->control.socket, json{{"command", "status"}});
    if (!now) {
      std::cerr << "mpfailover: resync runs in this node's daemon: " << now.status().message()
                << "\n";
      return kExitFailed;
    }
    BacklogReader reader(cfg->node.database, cfg->node.name, cfg->peer.name);
    auto backlog = reader.read();
    if (!backlog) {
      std::cerr << "mpfailover resync: " << backlog.status().message() << "\n";
      return kExitFailed;
    }
    auto field = [&](const char* k) {
      const json& v = (*now)[k];
      return v.is_string() ? v.get<std::string>() : v.dump();
    };
    const std::string what =
        "resync would replace the " + std::to_string(cfg->replication.tables.size()) +
        " replicated tables of node \"" + cfg->node.name + "\" (now " + field("role") +
        ") with a snapshot of peer \"" + cfg->peer.name + "\" (" + field("peer_state") + ", " +
        field("peer_role") + ")" +
        (force ? " and discard the " + std::to_string(backlog->transactions) + " transactions (" +
                     std::to_string(backlog->rows) + " rows) here the peer has not acknowledged"
               : std::string());
    if (dry_run) {
      if (json_output) {
        std::cout << json{{"ok", true},
                          {"dry_run", true},
                          {"would", what},
                          {"unacknowledged_transactions", backlog->transactions},
                          {"unacknowledged_rows", backlog->rows}}
                         .dump(2)
                  << "\n";
      } else {
        std::cout << "dry run: " << what << "; nothing done\n";
      }
      return kExitOk;
    }
    if (int rc = confirm("resync --force", what + ".", yes); rc >= 0) return rc;
  }
  const double timeout_s = std::chrono::duration<double>(*timeout).count();
  auto started = control_request(
      cfg->control.socket,
      json{{"command", "resync"}, {"force", force}, {"catch_up_timeout_s", timeout_s}});
  if (!started) {
    std::cerr << "mpfailover: resync runs in this node's daemon: " << started.status().message()
              << "\n";
    return kExitFailed;
  }
  if (!started->value("ok", false)) return refuse(*started);
  if (!json_output) {
    std::cout << "resync of node \"" << cfg->node.name << "\" from active \"" << cfg->peer.name
              << "\" started"
              << (force ? " (--force: unacknowledged changes here are discarded)" : "") << "\n"
              << std::flush;
  }
  const bool tty = !json_output && isatty(STDOUT_FILENO) != 0;
  size_t tables_reported = 0;
  std::string last_state;
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  json p;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto r = control_request(cfg->control.socket, json{{"command", "resync_status"}});
    if (!r) {
      std::cerr << "\nmpfailover: lost the daemon while following the resync: "
                << r.status().message() << "\n";
      return kExitFailed;
    }
    p = *r;
    const std::string state = p.value("state", "");
    if (!json_output) {
      if (state != last_state && state == "copying" && p.contains("snapshot_position")) {
        std::cout << "snapshot of \"" << cfg->peer.name << "\" at position "
                  << p["snapshot_position"].get<std::string>()
                  << "; its applied position for this node "
                  << p.value("peer_applied_from_here", std::string("?")) << "\n";
        if (p.value("discarded_changes", 0) > 0) {
          std::cout << "discarding " << p["discarded_changes"] << " unacknowledged change(s) of "
                    << p["discarded_transactions"] << " transaction(s) made here\n";
        }
      }
      // One line per table as it completes; on a terminal, the current table in place.
      const auto& tables = p["tables"];
      while (tables_reported < tables.size() && tables[tables_reported].value("done", false)) {
        if (tty) std::cout << "\r\033[K";
        std::cout << "copied " << tables[tables_reported]["table"].get<std::string>() << ": "
                  << tables[tables_reported]["rows"] << " rows\n";
        ++tables_reported;
      }
      if (tty && state == "copying" && tables_reported < tables.size()) {
        const auto& t = tables[tables_reported];
        std::cout << "\r\033[Kcopying " << t["table"].get<std::string>() << ": " << t["rows"]
                  << " of ~" << t["estimated_rows"] << " rows" << std::flush;
      }
      const auto now = std::chrono::steady_clock::now();
      if (state == "catching_up" && p.contains("backlog_transactions") &&
          now - last_line > std::chrono::seconds(1)) {
        last_line = now;
        std::cout << "catch-up: " << p["backlog_transactions"] << " transaction(s) waiting on \""
                  << cfg->peer.name << "\" (oldest " << fixed1(p.value("backlog_oldest_age_s", 0.0))
                  << " s), " << p.value("applied_transactions", 0) << " applied since the copy\n"
                  << std::flush;
      }
    }
    last_state = state;
    if (state == "done" || state == "failed") break;
  }
  if (json_output) {
    p.erase("ok");
    std::cout << p.dump(2) << "\n";
  }
  if (p.value("state", "") == "failed") return json_output ? kExitFailed : refuse(p);
  if (!json_output) {
    std::cout << "resync done: " << p.value("rows_copied", 0) << " rows copied in "
              << fixed1(p.value("copy_seconds", 0.0)) << " s; snapshot position "
              << p.value("snapshot_position", std::string("?")) << "; "
              << (p.value("caught_up", false)
                      ? "caught up in " + fixed1(p.value("catch_up_seconds", 0.0)) + " s"
                      : "still catching up (replication goes on: mpfailover status)")
              << "\n";
  }
  return kExitOk;
}

}  // namespace mpf::server::cli
