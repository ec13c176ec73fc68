#include <iostream>
#include <string>

#include <unistd.h>

#include "cli_commands.hpp"

namespace mpf::server::cli {

int may_confirm(const std::string& command, bool yes) {
  if (yes || ::isatty(STDIN_FILENO)) return -1;
  std::cerr << "mpfailover " << command
            << ": refused: this overwrites or discards data and needs a confirmation, but there "
               "is no terminal to ask on\nhint: add --yes to confirm from a script, or "
               "--dry-run to see what it would do\n";
  return kExitUsage;
}

int confirm(const std::string& command, const std::string& what, bool yes) {
  if (yes) return -1;
  if (int rc = may_confirm(command, yes); rc >= 0) return rc;
  std::cerr << what << "\nType \"yes\" to go on: " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer) || answer != "yes") {
    std::cerr << "mpfailover " << command << ": not confirmed; nothing done\n";
    return kExitFailed;
  }
  return -1;
}

}  // namespace mpf::server::cli
