// The CLI commands that talk to the daemon: status, failover, switchover, standalone, join.
// Each prints what it will do, waits for the outcome (with progress on a terminal), and prints
// it; --json prints the daemon's final word instead, for scripts.
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <boost/program_options.hpp>
#include <unistd.h>

#include <mpf/server/config.hpp>
#include <mpf/server/control_client.hpp>
#include <mpf/server/status_text.hpp>

#include "cli_commands.hpp"

namespace mpf::server::cli {
namespace {

namespace po = boost::program_options;
using json = nlohmann::json;

struct Common {
  bool json_output = false;
  bool force = false;
  bool yes = false;
  bool dry_run = false;
  double wait_s = 0;
};

// Parses the command's options; returns -1 to go on, else the exit code.
int parse(const std::string& name, const std::string& usage, const std::string& about,
          const std::vector<std::string>& args, Common& c, bool with_force) {
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&c.json_output),
                                                 "print the daemon's answer as JSON");
  if (with_force) {
    desc.add_options()("force", po::bool_switch(&c.force),
                       "promote even though the peer is up and active, or the definitions differ")(
        "yes", po::bool_switch(&c.yes), "with --force: do not ask for a confirmation (scripts)")(
        "dry-run", po::bool_switch(&c.dry_run), "say what would be done, do nothing");
  }
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover " << name << ": " << e.what() << "\nhint: mpfailover " << name
              << " --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] " << usage << "\n\n" << about << "\n\n" << desc;
    return kExitOk;
  }
  return -1;
}

Result<json> ask(const Config& cfg, const json& request) {
  return control_request(cfg.control.socket, request);
}

std::string text_or_dash(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string secs(const json& v) {
  if (!v.is_number()) return "never";
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << v.get<double>() << " s";
  return out.str();
}

// Polls status until `done` says so or `limit` passes; a progress line on a terminal.
Result<json> wait_for(const Config& cfg, double limit_s, const std::string& what,
                      const std::function<bool(const json&)>& done) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  json last;
  for (;;) {
    auto s = ask(cfg, json{{"command", "status"}});
    if (!s) return s.status();
    last = *s;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done(last)) {
      if (tty) std::cerr << "\r\033[K";
      return last;
    }
    if (elapsed > limit_s) {
      if (tty) std::cerr << "\r\033[K";
      return unknown_outcome(what + " did not finish within " +
                             std::to_string(static_cast<int>(limit_s)) + " s; role now " +
                             last["role"].get<std::string>() +
                             (last["last_error"].is_null()
                                  ? std::string()
                                  : ", last error: " + last["last_error"].get<std::string>()) +
                             "\nhint: mpfailover status");
    }
    if (tty) {
      std::cerr << "\r\033[K" << what << ": " << last["role"].get<std::string>() << ", "
                << (last["operation"].get<std::string>().empty()
                        ? std::string("waiting")
                        : last["operation"].get<std::string>())
                << " (" << std::fixed << std::setprecision(1) << elapsed << " s)" << std::flush;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int fail(const Status& s) {
  std::cerr << "mpfailover: " << s.message() << "\n";
  return kExitFailed;
}

}  // namespace

int cmd_status(const std::string& config_path, const std::vector<std::string>& args) {
  Common c;
  if (int rc = parse("status", "status [--json]",
                     "This node and its peer: role, epoch, peer state (up, service_down,\n"
                     "unreachable), last heartbeat, ping, witness, clock skew, link, replication\n"
                     "lag, shared address holder, last error. Asks the running daemon.\n"
                     "Exit codes: 0 the pair is healthy, 1 the daemon could not be asked, 2 usage\n"
                     "or config error, 3 the pair is not healthy (the health line says why).",
                     args, c, false);
      rc >= 0) {
    return rc;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto s = ask(*cfg, json{{"command", "status"}});
  if (!s) return fail(s.status());
  if (c.json_output) {
    std::cout << s->dump(2) << "\n";
  } else {
    std::cout << format_status(*s);
  }
  // For monitoring: the daemon answered, and the pair is not healthy (the text's health line).
  return unhealthy_reasons(*s).empty() ? kExitOk : kExitUnhealthy;
}

int cmd_failover(const std::string& config_path, const std::vector<std::string>& args) {
  Common c;
  if (int rc = parse("failover", "failover [--force [--yes]] [--dry-run] [--json]",
                     "Promotes this standby node to active now, with a new epoch. Refused while\n"
                     "the peer is up and active (use switchover for a planned move) or when this\n"
                     "node's catalog or replicated tables differ from the peer's last known ones,\n"
                     "unless --force. Works when the peer is unreachable. Reports first how far\n"
                     "this node had applied the old active's changes, and how long ago.\n"
                     "--force asks for a confirmation on a terminal (--yes for scripts); without\n"
                     "a terminal and without --yes it is refused. --dry-run only says what would\n"
                     "be done.",
                     args, c, true);
      rc >= 0) {
    return rc;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  if (c.force && !c.dry_run) {
    if (int rc = may_confirm("failover --force", c.yes); rc >= 0) return rc;
  }
  if (c.dry_run || c.force) {
    auto now = ask(*cfg, json{{"command", "status"}});
    if (!now) return fail(now.status());
    const std::string peer_line = "peer \"" + cfg->peer.name + "\" is " +
                                  text_or_dash((*now)["peer_state"]) + " (role " +
                                  text_or_dash((*now)["peer_role"]) + ")";
    const std::string what = "failover" + std::string(c.force ? " --force" : "") +
                             " would promote node \"" + cfg->node.name + "\" (now " +
                             text_or_dash((*now)["role"]) + ", epoch " +
                             text_or_dash((*now)["epoch"]) + ") to active; " + peer_line;
    if (c.dry_run) {
      if (c.json_output) {
        std::cout << json{{"ok", true}, {"dry_run", true}, {"would", what}, {"status", *now}}.dump(
                         2)
                  << "\n";
      } else {
        std::cout << "dry run: " << what << "; nothing done\n";
      }
      return kExitOk;
    }
    if (int rc = confirm("failover --force",
                         what + ".\nIf the peer still takes writes, both nodes do until fencing "
                                "settles it (conflicts are resolved by last writer wins).",
                         c.yes);
        rc >= 0) {
      return rc;
    }
  }
  auto r = ask(*cfg, json{{"command", "failover"}, {"force", c.force}});
  if (!r) return fail(r.status());
  // Announced only once the daemon has accepted: a refusal must not read as "promoting".
  if (!c.json_output && r->value("ok", false)) {
    std::cout << "failover: daemon accepted; promoting node \"" << cfg->node.name << "\" to active"
              << (c.force ? " (forced)" : "") << "\n";
  }
  const json& report = (*r)["report"];
  if (!c.json_output && report.is_object()) {
    std::cout << "last change applied from peer \"" << cfg->peer.name
              << "\": " << report.value("last_applied_from_peer", std::string("none"));
    if (report.contains("last_applied_age_s") && !report["last_applied_age_s"].is_null()) {
      std::cout << ", " << secs(report["last_applied_age_s"]) << " ago";
    }
    std::cout << "\n";
    if (report.contains("peer_last_seen_s")) {
      std::cout << "peer last heard " << secs(report["peer_last_seen_s"]) << " ago, as "
                << report["peer_last_role"].get<std::string>() << " at epoch "
                << report["peer_last_epoch"]
                << "; changes it committed after that point and had not shipped are not here\n";
    }
  }
  if (!r->value("ok", false)) {
    if (c.json_output) std::cout << r->dump(2) << "\n";
    std::cerr << "mpfailover: failover refused: " << r->value("error", "") << "\n";
    return kExitFailed;
  }
  auto final = wait_for(*cfg, 30, "failover", [](const json& s) {
    return s["role"] == "active" || s["role"] == "standby";
  });
  if (!final) return fail(final.status());
  if (c.json_output) {
    std::cout << json{{"ok", (*final)["role"] == "active"}, {"report", report}, {"status", *final}}
                     .dump(2)
              << "\n";
  } else if ((*final)["role"] == "active") {
    std::cout << "node \"" << cfg->node.name << "\" is active at epoch " << (*final)["epoch"]
              << "\n";
  }
  if ((*final)["role"] != "active") {
    std::cerr << "mpfailover: failover failed: " << text_or_dash((*final)["last_error"]) << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

int cmd_switchover(const std::string& config_path, const std::vector<std::string>& args) {
  Common c;
  if (int rc = parse("switchover", "switchover [--json]",
                     "Planned move of the active role to the other node with no loss: the active\n"
                     "closes application writes, its backlog drains to the standby, the roles\n"
                     "swap and the shared address moves. Run on either node.",
                     args, c, false);
      rc >= 0) {
    return rc;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto before = ask(*cfg, json{{"command", "status"}});
  if (!before) return fail(before.status());
  const bool here_active = (*before)["role"] == "active";
  if (!c.json_output) {
    std::cout << "switchover: " << (here_active ? cfg->node.name : cfg->peer.name) << " -> "
              << (here_active ? cfg->peer.name : cfg->node.name) << "\n";
  }
  const auto start = std::chrono::steady_clock::now();
  auto r = ask(*cfg, json{{"command", "switchover"}});
  if (!r) return fail(r.status());
  if (!r->value("ok", false)) {
    if (c.json_output) std::cout << r->dump(2) << "\n";
    std::cerr << "mpfailover: switchover refused: " << r->value("error", "") << "\n";
    return kExitFailed;
  }
  if (!c.json_output) std::cout << r->value("message", "") << "\n";
  const double limit = std::chrono::duration<double>(cfg->failover.switchover_timeout).count() + 15;
  auto final = wait_for(*cfg, limit, "switchover", [&](const json& s) {
    if (here_active) {
      return (s["role"] == "standby" && s["peer_role"] == "active" &&
              s["peer_epoch"] > (*before)["epoch"] && s["operation"] == "") ||
             (s["role"] == "active" && !s["last_error"].is_null() &&
              s["last_error"].get<std::string>().find("aborted") != std::string::npos);
    }
    return s["role"] == "active";
  });
  if (!final) return fail(final.status());
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool ok = here_active ? (*final)["role"] == "standby" : (*final)["role"] == "active";
  if (c.json_output) {
    std::cout << json{{"ok", ok}, {"seconds", took}, {"status", *final}}.dump(2) << "\n";
  } else if (ok) {
    std::cout << "switchover complete in " << std::fixed << std::setprecision(3) << took
              << " s: " << (here_active ? cfg->peer.name : cfg->node.name) << " is active at epoch "
              << (here_active ? (*final)["peer_epoch"] : (*final)["epoch"]) << "\n";
  }
  if (!ok) {
    std::cerr << "mpfailover: switchover failed: " << text_or_dash((*final)["last_error"]) << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

namespace {

int simple(const std::string& name, const std::string& about, const std::string& config_path,
           const std::vector<std::string>& args) {
  Common c;
  if (int rc = parse(name, name + " [--json]", about, args, c, false); rc >= 0) return rc;
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto r = ask(*cfg, json{{"command", name}});
  if (!r) return fail(r.status());
  if (c.json_output) std::cout << r->dump(2) << "\n";
  if (!r->value("ok", false)) {
    std::cerr << "mpfailover: " << name << " refused: " << r->value("error", "") << "\n";
    return kExitFailed;
  }
  if (!c.json_output) std::cout << r->value("message", "") << "\n";
  return kExitOk;
}

}  // namespace

int cmd_standalone(const std::string& config_path, const std::vector<std::string>& args) {
  return simple("standalone",
                "Takes this node out of the pair on purpose: it keeps (or opens) application\n"
                "writes, and replication pauses both ways. Changes keep queueing durably.\n"
                "`mpfailover join` brings it back; its changes are then reconciled.",
                config_path, args);
}

int cmd_join(const std::string& config_path, const std::vector<std::string>& args) {
  return simple("join",
                "Brings a standalone node back into the pair in the role it left; replication\n"
                "resumes and the changes made meanwhile drain and reconcile both ways\n"
                "(last writer wins per row, conflicts recorded). Fencing decides if both are\n"
                "active.",
                config_path, args);
}

int cmd_maintenance(const std::string& config_path, const std::vector<std::string>& args) {
  const std::string about =
      "Maintenance mode for planned work: `on` pauses automatic failover, self-fencing and the\n"
      "no-active settle rule on this node (run it on both nodes); `off` resumes them. Persisted\n"
      "in the node's database: a restart keeps it. status, list and metrics show it.";
  const std::string usage = "maintenance on|off [--json]";
  if (args.empty() || (args[0] != "on" && args[0] != "off")) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      Common help;
      return parse("maintenance", usage, about, args, help, false);
    }
    std::cerr << "mpfailover maintenance: expected on or off, got \""
              << (args.empty() ? std::string() : args[0])
              << "\"\nhint: mpfailover maintenance on   (or off)\n";
    return kExitUsage;
  }
  Common c;
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (int rc = parse("maintenance", usage, about, rest, c, false); rc >= 0) return rc;
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto r = ask(*cfg, json{{"command", "maintenance"}, {"on", args[0] == "on"}});
  if (!r) return fail(r.status());
  if (c.json_output) std::cout << r->dump(2) << "\n";
  if (!r->value("ok", false)) {
    std::cerr << "mpfailover: maintenance refused: " << r->value("error", "") << "\n";
    return kExitFailed;
  }
  if (!c.json_output) std::cout << r->value("message", "") << "\n";
  return kExitOk;
}

}  // namespace mpf::server::cli
