// NOTES: the migrations table lives in the `mpfailover` schema and is created before any
// migration runs, so even the first catalog migration is recorded. A transaction-level advisory
// lock serialises concurrent init-db runs against one database.
#include <algorithm>

#include <pqxx/pqxx>

#include <mpf/schema/migrations.hpp>

namespace mpf::schema {
namespace {

constexpr long kMigrationLockKey = 0x6d7066;  // "mpf"

void ensure_migrations_table(pqxx::work& tx) {
  tx.exec(
      "CREATE SCHEMA IF NOT EXISTS mpfailover;"
      "CREATE TABLE IF NOT EXISTS mpfailover.schema_migrations ("
      "  stream text NOT NULL,"
      "  version integer NOT NULL,"
      "  name text NOT NULL,"
      "  applied_at timestamptz NOT NULL DEFAULT now(),"
      "  PRIMARY KEY (stream, version))");
}

int max_version(pqxx::work& tx, const std::string& stream) {
  auto r = tx.exec_params(
      "SELECT coalesce(max(version), 0) FROM mpfailover.schema_migrations WHERE stream = $1",
      stream);
  return r[0][0].as<int>();
}

}  // namespace

int latest_version(const std::string& stream) {
  int v = 0;
  for (const auto& m : all_migrations()) {
    if (m.stream == stream) v = std::max(v, m.version);
  }
  return v;
}

Result<int> installed_version(pqxx::connection& conn, const std::string& stream) {
  try {
    pqxx::work tx(conn);
    auto exists = tx.exec("SELECT to_regclass('mpfailover.schema_migrations') IS NOT NULL");
    if (!exists[0][0].as<bool>()) return 0;
    return max_version(tx, stream);
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read schema version: ") + e.what());
  }
}

Result<MigrationReport> migrate(pqxx::connection& conn, const std::string& stream) {
  MigrationReport report;
  const int known = latest_version(stream);
  std::vector<const Migration*> pending;
  for (const auto& m : all_migrations()) {
    if (m.stream == stream) pending.push_back(&m);
  }
  std::sort(pending.begin(), pending.end(),
            [](const Migration* a, const Migration* b) { return a->version < b->version; });
  try {
    for (const Migration* m : pending) {
      pqxx::work tx(conn);
      tx.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")");
      ensure_migrations_table(tx);
      const int current = max_version(tx, stream);
      if (current > known) {
        return failed_precondition(
            "database catalog \"" + stream + "\" is at version " + std::to_string(current) +
            ", newer than this mpfailover knows (" + std::to_string(known) +
            ")\nhint: upgrade mpfailover on this node before running it against this database");
      }
      if (m->version <= current) continue;
      // The application's tables go to schema public whatever the login's search_path says
      // (a login named "mpfailover" would otherwise put them in the catalog's schema).
      if (stream == "app") tx.exec("SET LOCAL search_path = public");
      tx.exec(m->sql);
      tx.exec_params(
          "INSERT INTO mpfailover.schema_migrations (stream, version, name) VALUES ($1, $2, $3)",
          stream, m->version, m->name);
      tx.commit();
      report.applied.push_back(m->name);
    }
    if (pending.empty()) {
      pqxx::work tx(conn);
      ensure_migrations_table(tx);
      tx.commit();
    }
  } catch (const pqxx::broken_connection& e) {
    return unavailable(std::string("database connection lost during migration: ") + e.what());
  } catch (const std::exception& e) {
    return internal_error(std::string("migration failed: ") + e.what());
  }
  return report;
}

}  // namespace mpf::schema
