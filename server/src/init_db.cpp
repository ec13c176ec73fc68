#include <set>

#include <pqxx/connection>
#include <pqxx/pqxx>

#include <mpf/replicator/capture.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/init_db.hpp>

namespace mpf::server {

namespace {

Result<std::unique_ptr<pqxx::connection>> connect(const Config& config) {
  try {
    return std::make_unique<pqxx::connection>(config.node.database);
  } catch (const std::exception& e) {
    return unavailable("could not connect to the node's database (node.database in \"" +
                       config.path + "\"): " + e.what());
  }
}

}  // namespace

Result<InitDbReport> init_db(const Config& config, const InitDbOptions& options) {
  auto conn = connect(config);
  if (!conn) return conn.status();
  InitDbReport report;

  auto catalog = schema::migrate(**conn, "catalog");
  if (!catalog) return catalog.status();
  report.migrations_applied = catalog->applied;
  if (options.app_schema) {
    auto app = schema::migrate(**conn, "app");
    if (!app) return app.status();
    for (auto& m : app->applied) report.migrations_applied.push_back("app/" + m);
  }

  auto tables = replicator::install_capture(**conn, config.node.name, config.replication.tables);
  if (!tables) return tables.status();
  for (const auto& t : *tables) report.tables_captured.push_back(t.relation);

  // A delete by the application's login records a tombstone through the capture trigger, in
  // that login's name: it needs these rights, and nothing more of the catalog.
  if (!config.node.app_role.empty()) {
    try {
      pqxx::work tx(**conn);
      auto exists =
          tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", config.node.app_role);
      if (exists.empty()) {
        report.notes.push_back("node.app_role \"" + config.node.app_role +
                               "\" does not exist yet: create the login, then run init-db again "
                               "(it grants what capture needs)");
      } else {
        const std::string role = tx.quote_name(config.node.app_role);
        tx.exec("GRANT USAGE ON SCHEMA mpfailover TO " + role);
        tx.exec("GRANT SELECT, INSERT, UPDATE ON mpfailover.tombstone TO " + role);
        tx.commit();
        report.notes.push_back("granted " + config.node.app_role +
                               " what capture needs (USAGE on schema mpfailover, SELECT, INSERT, "
                               "UPDATE on mpfailover.tombstone)");
      }
    } catch (const std::exception& e) {
      return unavailable(std::string("could not grant capture rights to node.app_role: ") +
                         e.what());
    }
  }
  return report;
}

Status check_database(const Config& config) {
  auto conn = connect(config);
  if (!conn) return conn.status();
  auto version = schema::installed_version(**conn, "catalog");
  if (!version) return version.status();
  if (*version == 0) {
    return failed_precondition(
        "database has no mpfailover catalog\nhint: run mpfailover --config " + config.path +
        " init-db");
  }
  if (*version > schema::latest_version("catalog")) {
    return failed_precondition("database catalog is at version " + std::to_string(*version) +
                               ", newer than this mpfailover knows (" +
                               std::to_string(schema::latest_version("catalog")) + ")");
  }
  if (*version < schema::latest_version("catalog")) {
    return failed_precondition("database catalog is at version " + std::to_string(*version) +
                               ", older than this mpfailover (" +
                               std::to_string(schema::latest_version("catalog")) +
                               ")\nhint: run mpfailover init-db to upgrade it");
  }
  auto described = replicator::describe_tables(**conn, config.replication.tables);
  if (!described) return described.status();
  auto installed = replicator::installed_tables(**conn);
  if (!installed) return installed.status();
  std::set<std::string> captured;
  for (const auto& t : *installed) captured.insert(t.relation);
  for (const auto& t : *described) {
    if (!captured.count(t.relation)) {
      return failed_precondition("replicated table \"" + t.relation +
                                 "\" has no capture installed\nhint: run mpfailover init-db");
    }
  }
  try {
    pqxx::work tx(**conn);
    if (tx.exec("SHOW track_commit_timestamp")[0][0].as<std::string>() != "on") {
      return failed_precondition(
          "track_commit_timestamp is off in the node's PostgreSQL: replication needs commit "
          "timestamps to resolve conflicts\nhint: set track_commit_timestamp = on in "
          "postgresql.conf and restart PostgreSQL");
    }
    auto node = tx.exec("SELECT name FROM mpfailover.node");
    if (node.empty() || node[0][0].as<std::string>() != config.node.name) {
      return failed_precondition(
          "database belongs to node \"" + (node.empty() ? "" : node[0][0].as<std::string>()) +
          "\", but the config says node.name = \"" + config.node.name + "\"");
    }
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read mpfailover.node: ") + e.what());
  }
  return Status::ok();
}

Status check_tables(const Config& config) {
  auto conn = connect(config);
  if (!conn) return conn.status();
  auto described = replicator::describe_tables(**conn, config.replication.tables);
  if (!described) return described.status();
  auto version = schema::installed_version(**conn, "catalog");
  if (!version) return version.status();
  if (*version == 0) return Status::ok();  // nothing installed yet: nothing to drift from
  return replicator::check_definitions(**conn);
}

}  // namespace mpf::server
