// mpfailover: the operator's CLI.
//
// Exit codes (the table is docs/cli.md and docs/cli-exit-codes.md):
//   0  success
//   1  the operation failed (database error, refused by a safety check, could not check)
//   2  usage or configuration error (bad argument, missing or malformed config)
//   3  the command ran and the answer is bad news: status, the pair is unhealthy; verify and
//      check, the nodes differ
#include <atomic>
#include <csignal>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <unistd.h>

#include <mpf/core/duration.hpp>
#include <mpf/core/position.hpp>
#include <mpf/replicator/security.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/conflict_log.hpp>
#include <mpf/server/control_client.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/init_db.hpp>
#include <mpf/server/logging.hpp>

#include "cli_commands.hpp"

namespace po = boost::program_options;
using mpf::server::Config;

namespace {

using mpf::server::cli::kExitFailed;
using mpf::server::cli::kExitOk;
using mpf::server::cli::kExitUsage;

struct Command {
  const char* summary;
  int (*run)(const std::string& config_path, const std::vector<std::string>& args);
};

void print_error(const mpf::Status& s) {
  // First line is the message; "hint:" lines follow as the status carries them.
  std::cerr << "mpfailover: " << s.message() << "\n";
}

using mpf::server::cli::config_or_error;

int cmd_init_db(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover init-db options");
  bool app_schema = false;
  bool json = false;
  std::string grant_to;
  desc.add_options()("help,h", "show this help")(
      "app-schema", po::bool_switch(&app_schema),
      "also create the MeetingPlace application tables (demo and tests)")(
      "grant-to", po::value(&grant_to),
      "grant ROLE (the daemon's own login, not a superuser) what mpfailoverd needs")(
      "json", po::bool_switch(&json), "print what was done as JSON");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover init-db: " << e.what() << "\nhint: mpfailover init-db --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] init-db [--app-schema] [--grant-to ROLE] "
                 "[--json]\n\n"
                 "Creates or upgrades the replicator's catalog in node.database and installs\n"
                 "capture on every table in replication.tables. Safe to run again. Run it as a\n"
                 "superuser (the capture trigger is a C function); with --grant-to, the daemon\n"
                 "can then run as ROLE, an ordinary login (docs/operator-tools.md).\n\n"
              << desc;
    return kExitOk;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  mpf::server::InitDbOptions options;
  options.app_schema = app_schema;
  options.grant_to = grant_to;
  auto report = mpf::server::init_db(*cfg, options);
  if (!report) {
    print_error(report.status());
    return kExitFailed;
  }
  if (json) {
    std::cout << nlohmann::json{{"ok", true},
                                {"migrations_applied", report->migrations_applied},
                                {"tables_captured", report->tables_captured},
                                {"notes", report->notes}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  if (report->migrations_applied.empty()) {
    std::cout << "catalog is up to date\n";
  } else {
    for (const auto& m : report->migrations_applied) std::cout << "applied migration " << m << "\n";
  }
  for (const auto& t : report->tables_captured) std::cout << "capturing " << t << "\n";
  for (const auto& n : report->notes) std::cout << n << "\n";
  return kExitOk;
}

int cmd_keygen(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover keygen options");
  std::string secret_path;
  std::string public_path;
  bool json = false;
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                 "print the files and the public key as JSON")(
      "secret-key-file", po::value(&secret_path),
      "where to write the secret key (default: security.secret_key_file of the config)")(
      "public-key-file", po::value(&public_path),
      "where to write the public key (default: security.public_key_file of the config)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover keygen: " << e.what() << "\nhint: mpfailover keygen --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] keygen [--secret-key-file F] "
                 "[--public-key-file F] [--json]\n\n"
                 "Writes a new CURVE key pair for this node (secret key mode 0600). Give the\n"
                 "public key to the peer: its config names it in security.peer_public_key_file.\n\n"
              << desc;
    return kExitOk;
  }
  if (secret_path.empty() || public_path.empty()) {
    auto cfg = mpf::server::load_config(config_path);
    if (cfg) {
      if (secret_path.empty()) secret_path = cfg->security.secret_key_file;
      if (public_path.empty()) public_path = cfg->security.public_key_file;
    }
  }
  if (secret_path.empty() || public_path.empty()) {
    std::cerr << "mpfailover keygen: no key file paths\nhint: pass --secret-key-file and "
                 "--public-key-file, or set security.*_key_file in the config\n";
    return kExitUsage;
  }
  auto keys = mpf::replicator::generate_key_pair();
  if (!keys) {
    print_error(keys.status());
    return kExitFailed;
  }
  if (auto s = mpf::replicator::write_key_pair(*keys, secret_path, public_path); !s) {
    print_error(s);
    return kExitFailed;
  }
  if (json) {
    std::cout << nlohmann::json{{"ok", true},
                                {"secret_key_file", secret_path},
                                {"public_key_file", public_path},
                                {"public_key", keys->public_key}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::cout << "wrote secret key " << secret_path << " (mode 0600)\nwrote public key "
            << public_path << ": " << keys->public_key << "\n";
  return kExitOk;
}

int cmd_skip(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover skip options");
  std::string position_text;
  std::string reason;
  bool json = false;
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                 "print the recorded request as JSON")(
      "position", po::value(&position_text), "TICK/SEQ, as the apply error names it")(
      "reason", po::value(&reason), "why (required; recorded with the skipped changes)");
  po::positional_options_description pos;
  pos.add("position", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover skip: " << e.what() << "\nhint: mpfailover skip --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] skip TICK/SEQ --reason TEXT [--json]\n\n"
                 "When apply of the peer's changes has stopped on a transaction this node cannot\n"
                 "apply, records the decision to leave that one transaction out. The applier\n"
                 "keeps each of its changes in the conflicts table (kind 'skip') and goes on.\n\n"
              << desc;
    return kExitOk;
  }
  const auto slash = position_text.find('/');
  mpf::Position position;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    position.tick = std::stoll(position_text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("tick");
    position.seq = std::stoll(position_text.substr(slash + 1), &used);
    if (used != position_text.size() - slash - 1) throw std::invalid_argument("seq");
  } catch (const std::exception&) {
    std::cerr << "mpfailover skip: invalid position \"" << position_text
              << "\": expected TICK/SEQ as in the apply error, e.g. 12/3456\n";
    return kExitUsage;
  }
  if (position.tick < 1 || position.seq < 1) {
    std::cerr << "mpfailover skip: invalid position \"" << position_text << "\"\n";
    return kExitUsage;
  }
  if (reason.empty()) {
    std::cerr << "mpfailover skip: --reason is required: it is recorded with the skipped "
                 "changes\n";
    return kExitUsage;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  try {
    pqxx::connection conn(cfg->node.database);
    pqxx::work tx(conn);
    // Only the transaction apply stopped on may be skipped (#12): the position the applier
    // recorded, while the applied position has not passed it. Any other would leave out a
    // transaction that applies.
    auto stopped = tx.exec_params(
        "SELECT f.tick, f.seq FROM mpfailover.apply_failure f "
        "LEFT JOIN mpfailover.applied_position p ON p.origin = f.origin "
        "WHERE f.origin = $1 AND (p.origin IS NULL OR (f.tick, f.seq) > (p.tick, p.seq))",
        cfg->peer.name);
    if (stopped.empty()) {
      std::cerr << "mpfailover skip: apply of the changes from \"" << cfg->peer.name
                << "\" has not stopped on any transaction here: nothing to skip, " << position_text
                << " not recorded\nhint: when apply stops, mpfailover queue on \"" << cfg->peer.name
                << "\" and this node's log name the transaction\n";
      return kExitFailed;
    }
    const mpf::Position at{stopped[0][0].as<int64_t>(), stopped[0][1].as<int64_t>()};
    if (at != position) {
      std::cerr << "mpfailover skip: apply of the changes from \"" << cfg->peer.name
                << "\" stopped on transaction " << at.to_string() << ", not " << position_text
                << ": skipping " << position_text << " is refused (it would leave out a "
                << "transaction that applies)\nhint: mpfailover skip " << at.to_string()
                << " --reason TEXT\n";
      return kExitFailed;
    }
    tx.exec_params(
        "INSERT INTO mpfailover.skip_request (origin, tick, seq, reason) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (origin, tick, seq) DO UPDATE SET reason = EXCLUDED.reason, "
        "requested_at = now(), requested_by = current_user",
        cfg->peer.name, position.tick, position.seq, reason);
    if (!tx.exec("SELECT to_regclass('mpfailover.history')")[0][0].is_null()) {
      mpf::server::HistoryEvent e;
      e.node = cfg->node.name;
      e.event = "skip";
      e.who = mpf::server::current_operator();
      e.why = reason;
      e.detail = {{"position", position.to_string()}, {"origin", cfg->peer.name}};
      mpf::server::record_history(tx, e);
    }
    tx.commit();
  } catch (const std::exception& e) {
    std::cerr << "mpfailover skip: could not record the skip in the node's database: " << e.what()
              << "\n";
    return kExitFailed;
  }
  if (json) {
    std::cout << nlohmann::json{{"ok", true},
                                {"position", position.to_string()},
                                {"origin", cfg->peer.name},
                                {"reason", reason}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::cout << "skip of transaction " << position.to_string() << " from \"" << cfg->peer.name
            << "\" recorded; apply leaves it out when it resumes, and its changes are kept in "
               "mpfailover.conflict\n";
  return kExitOk;
}

// Set by SIGINT/SIGTERM while `queue --watch` runs: the loop ends and the command exits 0.
std::atomic<bool> g_stop_watch{false};

extern "C" void stop_watch(int) { g_stop_watch = true; }

// Exit code for a failed read: a catalog or connection problem is "failed", a bad argument usage.
int exit_code_for(const mpf::Status& s) {
  return s.code() == mpf::Code::kInvalidArgument ? kExitUsage : kExitFailed;
}

int cmd_queue(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover queue options");
  bool json = false;
  bool watch = false;
  std::string interval_text = "2s";
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                 "one JSON object (with --watch: one a line)")(
      "watch", po::bool_switch(&watch), "refresh until Ctrl-C (in place on a terminal)")(
      "interval", po::value(&interval_text), "refresh interval with --watch (default 2s)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover queue: " << e.what() << "\nhint: mpfailover queue --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout
        << "usage: mpfailover [--config PATH] queue [--json] [--watch [--interval D]]\n\n"
           "This node's backlog, read straight from its database (the daemon need not run):\n"
           "transactions, rows and bytes captured and not yet acknowledged by the peer, the\n"
           "oldest waiting change and its age, the breakdown by table, the peer's acknowledged\n"
           "position, the drain rate over the last minute and the time to empty at that rate,\n"
           "and, when the peer's apply has stopped, the blocking transaction and its error.\n\n"
           "Cost: one sequential scan of mpfailover.change_log (the whole backlog),\n"
           "aggregated per transaction within work_mem, in one read-only transaction: a few\n"
           "times a count(DISTINCT txid) of the log (a million waiting rows: seconds). The\n"
           "daemon's acknowledgements are not held up. With --watch it is repeated every\n"
           "interval: keep the interval well above the time one read takes (\"scan_ms\").\n\n"
           "--json fields: transactions, rows, bytes, oldest_age_s, oldest, by_table (table ->\n"
           "rows), by_table_detail, acked_position (TICK/SEQ), acked_at, drain_rate_tps,\n"
           "eta_s, blocked {position, error, since}; null where unknown.\n"
           "Exit codes: 0 ok, 1 the database could not be read, 2 usage or config error.\n\n"
        << desc;
    return kExitOk;
  }
  if (vm.count("interval") && !watch) {
    std::cerr << "mpfailover queue: --interval needs --watch\nhint: mpfailover queue --help\n";
    return kExitUsage;
  }
  auto interval = mpf::parse_duration(interval_text);
  if (!interval || *interval < std::chrono::milliseconds(100)) {
    std::cerr << "mpfailover queue: --interval: "
              << (interval ? "invalid duration \"" + interval_text + "\": at least 100ms"
                           : interval.status().message())
              << "\n";
    return kExitUsage;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  mpf::server::BacklogReader reader(cfg->node.database, cfg->node.name, cfg->peer.name);
  auto render = [&](const mpf::server::Backlog& b) {
    return json ? mpf::server::backlog_json(b) + "\n" : mpf::server::format_backlog(b);
  };
  auto first = reader.read();
  if (!first) {
    std::cerr << "mpfailover queue: " << first.status().message() << "\n";
    return kExitFailed;
  }
  if (!watch) {
    std::cout << render(*first);
    return kExitOk;
  }
  // Refresh in place only for humans on a terminal; piped (or JSON), successive reports.
  const bool in_place = !json && ::isatty(STDOUT_FILENO);
  struct sigaction sa {};
  sa.sa_handler = stop_watch;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (in_place) std::cout << "\x1b[2J";
  mpf::Result<mpf::server::Backlog> b = std::move(first);
  while (!g_stop_watch) {
    std::string text = b ? render(*b) : "mpfailover queue: " + b.status().message() + "\n";
    if (in_place) {
      std::string framed = "\x1b[H";
      for (char c : text) framed += c == '\n' ? std::string("\x1b[K\n") : std::string(1, c);
      framed += "(every " + interval_text + "; Ctrl-C to stop)\x1b[K\n\x1b[J";
      std::cout << framed << std::flush;
    } else {
      (b ? std::cout : std::cerr) << text << (json || !b ? "" : "\n") << std::flush;
    }
    const auto until = std::chrono::steady_clock::now() + *interval;
    while (!g_stop_watch && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!g_stop_watch) b = reader.read();
  }
  return kExitOk;
}

int cmd_conflicts(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover conflicts options");
  bool json = false;
  mpf::server::ConflictFilter filter;
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                 "one JSON object: {conflicts: [...], more}")(
      "since", po::value(&filter.since),
      "only since TIME (\"2026-11-22 10:00\") or for the last DURATION (90s, 30min, 2h, 7d)")(
      "table", po::value(&filter.table), "only this table (\"meetings\" or \"public.meetings\")")(
      "limit", po::value(&filter.limit), "at most N, newest first (default 100)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover conflicts: " << e.what() << "\nhint: mpfailover conflicts --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] conflicts [--json] [--since TIME|DURATION]\n"
                 "                  [--table T] [--limit N]\n\n"
                 "Changes reconciliation overrode on this node (mpfailover.conflict), newest\n"
                 "first: when, which table and row (key), which side won, which change lost and\n"
                 "why. Kinds: lww (last writer wins between the peer's change and a row or delete\n"
                 "made here), skip (an operator's mpfailover skip), repair (verify --repair),\n"
                 "resync (a change made here that resync --force discarded).\n"
                 "Read straight from the database (the daemon need not run); an index scan.\n"
                 "Exit codes: 0 ok, 1 the database could not be read, 2 usage or config error.\n\n"
              << desc;
    return kExitOk;
  }
  if (filter.limit < 1) {
    std::cerr << "mpfailover conflicts: invalid --limit " << filter.limit
              << ": expected 1 or more\n";
    return kExitUsage;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  auto list = mpf::server::read_conflicts(cfg->node.database, filter);
  if (!list) {
    std::cerr << "mpfailover conflicts: " << list.status().message() << "\n";
    return exit_code_for(list.status());
  }
  std::cout << (json ? mpf::server::conflicts_json(*list) + "\n"
                     : mpf::server::format_conflicts(*list));
  return kExitOk;
}

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> kCommands = {
      {"conflicts", {"changes reconciliation overrode on this node", cmd_conflicts}},
      {"init-db", {"create or upgrade the catalog and install capture", cmd_init_db}},
      {"keygen", {"write a new CURVE key pair for this node", cmd_keygen}},
      {"history",
       {"role changes, failovers, fencing, skips, resyncs, repairs on this node",
        mpf::server::cli::cmd_history}},
      {"list",
       {"both nodes in one table (exit 1 when the pair is unhealthy)", mpf::server::cli::cmd_list}},
      {"queue", {"this node's backlog, from its database", cmd_queue}},
      {"skip", {"leave out a transaction apply cannot apply (recorded)", cmd_skip}},
      {"status",
       {"this node and its peer: roles, liveness, link, lag", mpf::server::cli::cmd_status}},
      {"failover",
       {"promote this standby now (refused while the peer is active)",
        mpf::server::cli::cmd_failover}},
      {"switchover",
       {"planned move of the active role, no loss", mpf::server::cli::cmd_switchover}},
      {"standalone",
       {"take this node out of the pair on purpose", mpf::server::cli::cmd_standalone}},
      {"join", {"bring a standalone node back into the pair", mpf::server::cli::cmd_join}},
      {"maintenance",
       {"on|off: pause automatic failover and self-fencing for planned work",
        mpf::server::cli::cmd_maintenance}},
      {"verify",
       {"compare both databases by key-range hashes; --repair on the standby",
        mpf::server::cli::cmd_verify}},
      {"check", {"configuration parity with the peer", mpf::server::cli::cmd_check}},
      {"resync",
       {"rebuild this standby from a snapshot of the active, then catch up",
        mpf::server::cli::cmd_resync}},
  };
  return kCommands;
}

void print_usage(std::ostream& out) {
  out << "usage: mpfailover [--config PATH] COMMAND [ARGS...]\n\ncommands:\n";
  for (const auto& [name, cmd] : commands()) {
    out << "  " << name << std::string(12 - std::min<size_t>(name.size(), 11), ' ') << cmd.summary
        << "\n";
  }
  out << "\noptions:\n  --config PATH  node config (default " << mpf::server::kDefaultConfigPath
      << ")\n  --timeout D    how long to wait for the daemon's answer on the control socket\n"
         "                 (default 10s, e.g. 500ms or 30s)\n"
         "  --version      print the version and exit\n"
         "  --help         this help; COMMAND --help for a command's own\n"
         "\nexit codes: 0 ok, 1 failed (or could not check), 2 usage or config error, 3 the\n"
         "answer is bad news (status: pair unhealthy; verify, check: the nodes differ)\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = mpf::server::kDefaultConfigPath;
  std::string command;
  std::string timeout_text;
  std::vector<std::string> rest;
  po::options_description global;
  global.add_options()("help,h", "")("config", po::value(&config_path), "")(
      "timeout", po::value(&timeout_text), "")("version", "")("command", po::value(&command), "")(
      "args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("command", 1).add("args", -1);
  po::variables_map vm;
  try {
    auto parsed = po::command_line_parser(argc, argv)
                      .options(global)
                      .positional(pos)
                      .allow_unregistered()
                      .run();
    po::store(parsed, vm);
    po::notify(vm);
    // Everything after COMMAND (options included) belongs to the command.
    rest = po::collect_unrecognized(parsed.options, po::include_positional);
    if (!rest.empty() && rest.front() == command) rest.erase(rest.begin());
  } catch (const po::error& e) {
    std::cerr << "mpfailover: " << e.what() << "\nhint: mpfailover --help\n";
    return kExitUsage;
  }
  if (vm.count("version") && command.empty()) {
    std::cout << "mpfailover " << mpf::server::build_version() << "\n";
    return kExitOk;
  }
  if (!timeout_text.empty()) {
    auto t = mpf::parse_duration(timeout_text);
    if (!t || *t < std::chrono::milliseconds(100)) {
      std::cerr << "mpfailover: --timeout: "
                << (t ? "invalid duration \"" + timeout_text + "\": at least 100ms"
                      : t.status().message())
                << "\nhint: mpfailover --timeout 30s status\n";
      return kExitUsage;
    }
    mpf::server::set_control_timeout(*t);
  }
  if (command.empty()) {
    if (vm.count("help")) {
      print_usage(std::cout);
      return kExitOk;
    }
    print_usage(std::cerr);
    return kExitUsage;
  }
  if (vm.count("help")) rest.insert(rest.begin(), "--help");
  auto it = commands().find(command);
  if (it == commands().end()) {
    std::cerr << "mpfailover: unknown command \"" << command << "\"\nhint: mpfailover --help\n";
    return kExitUsage;
  }
  mpf::server::setup_logging("mpfailover", "warn");
  return it->second.run(config_path, rest);
}
