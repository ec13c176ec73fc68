// What `mpfailoverd --check` (the unit's ExecStartPre) checks beyond the config's syntax and the
// catalog (check_database): the files and the host the daemon will use, and the database
// rights it needs. Each check names the key, the path or the missing right, with a hint.
#pragma once

#include <string>
#include <vector>

#include <mpf/core/status.hpp>
#include <mpf/server/config.hpp>

namespace mpf::server {

struct PreflightReport {
  std::vector<std::string> checked;   // one line per thing found in order ("key files", ...)
  std::vector<std::string> warnings;  // not fatal (a hook that would not run today)
};

// security.*_key_file (curve mode): readable CURVE keys, the secret one mode 0600.
Status check_key_files(const Config& config);

// hooks.on_promote / hooks.on_demote: present and executable. A missing hook is an error when
// shared.address is set (the hooks move it), otherwise a warning in `report`.
Status check_hooks(const Config& config, PreflightReport& report);

// shared.interface (when shared.address is set): an interface this host has.
Status check_interface(const Config& config);

// The node's database login has what the daemon uses: the catalog (schema mpfailover), the
// replicated tables (apply) and replication origins (exactly-once positions).
Status check_privileges(const Config& config);

// All of the above in order; the first failure wins.
Result<PreflightReport> preflight(const Config& config);

}  // namespace mpf::server
