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

// What mpfailoverd does in its database, and the grant each needs (the daemon never creates or
// alters anything: init-db, run by an administrator, does):
//   the catalog (schema mpfailover): reads and writes its tables and sequences; VACUUMs
//     change_log after trims, which PostgreSQL 15 allows only to the table's owner, so the role
//     owns change_log (the capture trigger inserts into it in the writer's name either way);
//   the replicated tables: the applier inserts, updates and deletes, resync truncates;
//   replication origins (the applier's and repair's commit origin, read by last-writer-wins):
//     the pg_replication_origin_* functions, revoked from PUBLIC by default;
//   apply as PostgreSQL's apply worker does (session_replication_role = replica): SET on that
//     parameter;
//   write fencing of node.app_role: ALTER ROLE ... SET default_transaction_read_only and ending
//     its sessions, both allowed to a member of that role (the driver does SET ROLE first).
Result<std::string> grant_daemon_role(pqxx::connection& conn, const Config& config,
                                      const std::string& grantee,
                                      const std::vector<replicator::TableDef>& tables) {
  try {
    pqxx::work tx(conn);
    auto r = tx.exec_params("SELECT rolsuper FROM pg_roles WHERE rolname = $1", grantee);
    if (r.empty()) {
      return invalid_argument("--grant-to: role \"" + grantee +
                              "\" does not exist\nhint: CREATE ROLE " + grantee +
                              " LOGIN (a password or peer authentication as pg_hba.conf says), "
                              "then run init-db --grant-to again");
    }
    const std::string role = tx.quote_name(grantee);
    tx.exec("GRANT CONNECT ON DATABASE " + tx.quote_name(conn.dbname()) + " TO " + role);
    tx.exec("GRANT USAGE ON SCHEMA mpfailover TO " + role);
    tx.exec("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mpfailover TO " + role);
    tx.exec("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA mpfailover TO " + role);
    // Tables a later release's migration adds (run by the same administrator) come granted.
    tx.exec(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA mpfailover GRANT SELECT, INSERT, UPDATE, DELETE "
        "ON TABLES TO " +
        role);
    tx.exec(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA mpfailover GRANT USAGE, SELECT, UPDATE ON "
        "SEQUENCES TO " +
        role);
    tx.exec("ALTER TABLE mpfailover.change_log OWNER TO " + role);
    std::set<std::string> schemas;
    for (const auto& t : tables) {
      const auto dot = t.relation.find('.');
      const std::string rel = tx.quote_name(t.relation.substr(0, dot)) + "." +
                              tx.quote_name(t.relation.substr(dot + 1));
      schemas.insert(t.relation.substr(0, dot));
      tx.exec("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON " + rel + " TO " + role);
    }
    for (const auto& s : schemas)
      tx.exec("GRANT USAGE ON SCHEMA " + tx.quote_name(s) + " TO " + role);
    for (const char* f :
         {"pg_replication_origin_create(text)", "pg_replication_origin_session_setup(text)",
          "pg_replication_origin_session_reset()", "pg_replication_origin_session_is_setup()",
          "pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)",
          "pg_replication_origin_xact_reset()"}) {
      tx.exec(std::string("GRANT EXECUTE ON FUNCTION pg_catalog.") + f + " TO " + role);
    }
    // Apply runs with session_replication_role = replica (docs/tables.md), a superuser-only
    // setting unless granted (PostgreSQL 15's GRANT SET ON PARAMETER).
    tx.exec("GRANT SET ON PARAMETER session_replication_role TO " + role);
    // The applier's own foreign-key checks raise through these (catalog 0006).
    tx.exec("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA mpfailover TO " + role);
    std::string fencing;
    if (!config.node.app_role.empty()) {
      auto app = tx.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", config.node.app_role);
      if (!app.empty()) {
        tx.exec("GRANT " + tx.quote_name(config.node.app_role) + " TO " + role);
        fencing = ", membership in " + config.node.app_role + " (write fencing)";
      }
    }
    tx.commit();
    return "granted " + grantee +
           " what mpfailoverd needs: the catalog's tables and sequences (owner of "
           "mpfailover.change_log), SELECT, INSERT, UPDATE, DELETE, TRUNCATE on the replicated "
           "tables, the replication origin functions, SET of session_replication_role" +
           fencing + (r[0][0].as<bool>() ? " (note: it is a superuser anyway)" : "");
  } catch (const std::exception& e) {
    return unavailable(std::string("could not grant the daemon's rights to \"") + grantee +
                       "\": " + e.what());
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
  if (!options.grant_to.empty()) {
    auto s = grant_daemon_role(**conn, config, options.grant_to, *tables);
    if (!s) return s.status();
    report.notes.push_back(*s);
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
