// mpfailover: the operator's CLI.
//
// Exit codes (documented in README.md):
//   0  success
//   1  the operation failed (database error, refused by a safety check)
//   2  usage or configuration error (bad argument, missing or malformed config)
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <pqxx/pqxx>

#include <mpf/core/position.hpp>
#include <mpf/replicator/security.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/init_db.hpp>
#include <mpf/server/logging.hpp>

#include "cli_commands.hpp"

namespace po = boost::program_options;
using mpf::server::Config;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Command {
  const char* summary;
  int (*run)(const std::string& config_path, const std::vector<std::string>& args);
};

void print_error(const mpf::Status& s) {
  // First line is the message; "hint:" lines follow as the status carries them.
  std::cerr << "mpfailover: " << s.message() << "\n";
}

mpf::Result<Config> config_or_error(const std::string& path) {
  auto cfg = mpf::server::load_config(path);
  if (!cfg) print_error(cfg.status());
  return cfg;
}

int cmd_init_db(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover init-db options");
  bool app_schema = false;
  desc.add_options()("help,h", "show this help")(
      "app-schema", po::bool_switch(&app_schema),
      "also create the MeetingPlace application tables (demo and tests)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover init-db: " << e.what() << "\nhint: mpfailover init-db --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] init-db [--app-schema]\n\n"
                 "Creates or upgrades the replicator's catalog in node.database and installs\n"
                 "capture on every table in replication.tables. Safe to run again.\n\n"
              << desc;
    return kExitOk;
  }
  auto cfg = config_or_error(config_path);
  if (!cfg) return kExitUsage;
  mpf::server::InitDbOptions options;
  options.app_schema = app_schema;
  auto report = mpf::server::init_db(*cfg, options);
  if (!report) {
    print_error(report.status());
    return kExitFailed;
  }
  if (report->migrations_applied.empty()) {
    std::cout << "catalog is up to date\n";
  } else {
    for (const auto& m : report->migrations_applied) std::cout << "applied migration " << m << "\n";
  }
  for (const auto& t : report->tables_captured) std::cout << "capturing " << t << "\n";
  return kExitOk;
}

int cmd_keygen(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover keygen options");
  std::string secret_path;
  std::string public_path;
  desc.add_options()("help,h", "show this help")(
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
                 "[--public-key-file F]\n\n"
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
  std::cout << "wrote secret key " << secret_path << " (mode 0600)\nwrote public key "
            << public_path << ": " << keys->public_key << "\n";
  return kExitOk;
}

int cmd_skip(const std::string& config_path, const std::vector<std::string>& args) {
  po::options_description desc("mpfailover skip options");
  std::string position_text;
  std::string reason;
  desc.add_options()("help,h", "show this help")("position", po::value(&position_text),
                                                 "TICK/SEQ, as the apply error names it")(
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
    std::cout << "usage: mpfailover [--config PATH] skip TICK/SEQ --reason TEXT\n\n"
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
    tx.exec_params(
        "INSERT INTO mpfailover.skip_request (origin, tick, seq, reason) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (origin, tick, seq) DO UPDATE SET reason = EXCLUDED.reason, "
        "requested_at = now(), requested_by = current_user",
        cfg->peer.name, position.tick, position.seq, reason);
    tx.commit();
  } catch (const std::exception& e) {
    std::cerr << "mpfailover skip: could not record the skip in the node's database: " << e.what()
              << "\n";
    return kExitFailed;
  }
  std::cout << "skip of transaction " << position.to_string() << " from \"" << cfg->peer.name
            << "\" recorded; apply leaves it out when it resumes, and its changes are kept in "
               "mpfailover.conflict\n";
  return kExitOk;
}

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> kCommands = {
      {"init-db", {"create or upgrade the catalog and install capture", cmd_init_db}},
      {"keygen", {"write a new CURVE key pair for this node", cmd_keygen}},
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
      {"verify",
       {"compare both databases by key-range hashes; --repair on the standby",
        mpf::server::cli::cmd_verify}},
      {"check", {"configuration parity with the peer", mpf::server::cli::cmd_check}},
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
      << ")\n  --help         this help; COMMAND --help for a command's own\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = mpf::server::kDefaultConfigPath;
  std::string command;
  std::vector<std::string> rest;
  po::options_description global;
  global.add_options()("help,h", "")("config", po::value(&config_path), "")(
      "command", po::value(&command), "")("args", po::value<std::vector<std::string>>(), "");
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
