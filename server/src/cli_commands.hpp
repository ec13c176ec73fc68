// The CLI's commands, one function each (mpfailover_main.cpp dispatches). Each parses its own
// arguments, prints its own help and returns an exit code.
#pragma once

#include <iostream>
#include <string>
#include <vector>

#include <mpf/server/config.hpp>

namespace mpf::server::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
// The command ran and the answer is bad news: status, the pair is unhealthy; verify and check,
// the nodes differ (1 is then "could not check"). docs/cli-exit-codes.md has the table.
constexpr int kExitUnhealthy = 3;
constexpr int kExitDifferent = 3;

// The node's config, or a one-line error on stderr (the caller exits with kExitUsage).
inline Result<Config> config_or_error(const std::string& path) {
  auto cfg = load_config(path);
  if (!cfg) std::cerr << "mpfailover: " << cfg.status().message() << "\n";
  return cfg;
}

// Safety rails for the commands that overwrite or discard (failover --force, resync --force,
// verify --repair). may_confirm: before any work, refuses (kExitUsage, with the hint) when
// there is neither a terminal to ask on nor --yes; returns -1 to go on. confirm: on a terminal
// without --yes, shows `what` and goes on only when the operator types "yes" (kExitFailed
// otherwise, nothing done); returns -1 to go on. cli_confirm.cpp.
int may_confirm(const std::string& command, bool yes);
int confirm(const std::string& command, const std::string& what, bool yes);

// Through the daemon's control socket (cli_control.cpp).
int cmd_status(const std::string& config_path, const std::vector<std::string>& args);
int cmd_failover(const std::string& config_path, const std::vector<std::string>& args);
int cmd_switchover(const std::string& config_path, const std::vector<std::string>& args);
int cmd_standalone(const std::string& config_path, const std::vector<std::string>& args);
int cmd_join(const std::string& config_path, const std::vector<std::string>& args);
int cmd_maintenance(const std::string& config_path, const std::vector<std::string>& args);

// Both nodes in one table, from the daemon's status; history from the database (cli_list.cpp).
int cmd_list(const std::string& config_path, const std::vector<std::string>& args);
int cmd_history(const std::string& config_path, const std::vector<std::string>& args);

// Straight to the peer's port 2008, this node's side from its database (cli_verify.cpp).
int cmd_verify(const std::string& config_path, const std::vector<std::string>& args);
int cmd_check(const std::string& config_path, const std::vector<std::string>& args);

// Started in this node's daemon through the control socket, followed from here (cli_resync.cpp).
int cmd_resync(const std::string& config_path, const std::vector<std::string>& args);

}  // namespace mpf::server::cli
