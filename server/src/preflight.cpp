#include <cerrno>
#include <cstring>

#include <net/if.h>
#include <pqxx/pqxx>
#include <sys/stat.h>
#include <unistd.h>

#include <mpf/replicator/security.hpp>
#include <mpf/server/preflight.hpp>

namespace mpf::server {

Status check_key_files(const Config& config) {
  if (config.security.mode != "curve") return Status::ok();
  for (auto [key, path, secret] :
       {std::tuple{"security.secret_key_file", &config.security.secret_key_file, true},
        std::tuple{"security.public_key_file", &config.security.public_key_file, false},
        std::tuple{"security.peer_public_key_file", &config.security.peer_public_key_file,
                   false}}) {
    auto k = replicator::read_key_file(*path, secret);
    if (!k) {
      return Status(k.status().code(), std::string(key) + ": " + k.status().message());
    }
  }
  return Status::ok();
}

Status check_hooks(const Config& config, PreflightReport& report) {
  const bool needed = !config.shared.address.empty();
  for (auto [key, path] : {std::pair{"hooks.on_promote", &config.hooks.on_promote},
                           std::pair{"hooks.on_demote", &config.hooks.on_demote}}) {
    if (path->empty()) continue;
    std::string problem;
    struct stat st;
    if (::stat(path->c_str(), &st) != 0) {
      problem = std::string("does not exist (") + std::strerror(errno) + ")";
    } else if (!S_ISREG(st.st_mode)) {
      problem = "is not a regular file";
    } else if (::access(path->c_str(), X_OK) != 0) {
      problem = "is not executable";
    }
    if (problem.empty()) continue;
    const std::string what = std::string(key) + " \"" + *path + "\" " + problem;
    if (needed) {
      return failed_precondition(what +
                                 " (shared.address is set: the hooks move it)\nhint: chmod " +
                                 "755 the hook, or point " + key + " at an executable file");
    }
    report.warnings.push_back(what);
  }
  return Status::ok();
}

Status check_interface(const Config& config) {
  if (config.shared.address.empty() || config.shared.interface.empty()) return Status::ok();
  if (::if_nametoindex(config.shared.interface.c_str()) == 0) {
    return failed_precondition("shared.interface \"" + config.shared.interface +
                               "\" is not an interface of this host (" + std::strerror(errno) +
                               ")\nhint: ip -brief link lists them");
  }
  return Status::ok();
}

Status check_privileges(const Config& config) {
  std::vector<std::string> missing;
  try {
    pqxx::connection conn(config.node.database);
    pqxx::nontransaction q(conn);
    const std::string user = q.exec("SELECT current_user")[0][0].as<std::string>();
    if (q.exec("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0].as<bool>()) {
      return Status::ok();
    }
    // has_*_privilege with a list ("SELECT, DELETE") is true when ANY is held: one at a time.
    auto need_table = [&](const std::string& table, const std::string& privilege) {
      auto r = q.exec_params(
          "SELECT to_regclass($1) IS NULL OR has_table_privilege(to_regclass($1), $2)", table,
          privilege);
      if (!r[0][0].as<bool>()) missing.push_back(privilege + " on " + table);
    };
    if (!q.exec("SELECT has_schema_privilege('mpfailover', 'USAGE')")[0][0].as<bool>()) {
      missing.push_back("USAGE on schema mpfailover");
    }
    for (const char* p : {"SELECT", "DELETE"}) need_table("mpfailover.change_log", p);
    for (const char* p : {"SELECT", "INSERT", "UPDATE"}) {
      need_table("mpfailover.applied_position", p);
    }
    if (!q.exec("SELECT has_function_privilege('pg_replication_origin_session_setup(text)', "
                "'EXECUTE')")[0][0]
             .as<bool>()) {
      missing.push_back("EXECUTE on pg_replication_origin_session_setup(text)");
    }
    // The applier writes every replicated table (a table that does not exist is
    // check_database's error, not a right).
    for (const auto& t : config.replication.tables) {
      for (const char* p : {"SELECT", "INSERT", "UPDATE", "DELETE"}) need_table(t, p);
    }
    if (missing.empty()) return Status::ok();
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
    return failed_precondition("database login \"" + user + "\" (node.database) lacks " + list +
                               "\nhint: run mpfailover init-db as a superuser to grant them, "
                               "or connect as a role that has them");
  } catch (const std::exception& e) {
    return unavailable(std::string("could not check the database rights (node.database): ") +
                       e.what());
  }
}

Result<PreflightReport> preflight(const Config& config) {
  PreflightReport report;
  if (auto s = check_key_files(config); !s) return s;
  if (config.security.mode == "curve") report.checked.push_back("key files readable");
  if (auto s = check_hooks(config, report); !s) return s;
  report.checked.push_back("hooks");
  if (auto s = check_interface(config); !s) return s;
  if (!config.shared.interface.empty()) {
    report.checked.push_back("interface " + config.shared.interface);
  }
  if (auto s = check_privileges(config); !s) return s;
  report.checked.push_back("database rights");
  return report;
}

}  // namespace mpf::server
