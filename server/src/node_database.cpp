#include <pqxx/pqxx>

#include <mpf/core/text.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/node_database.hpp>

namespace mpf::server {

using heartbeat::PersistedRole;
using heartbeat::Role;

NodeDatabase::NodeDatabase(std::string conninfo) : conninfo_(std::move(conninfo)) {}
NodeDatabase::~NodeDatabase() = default;

Result<pqxx::connection*> NodeDatabase::conn() {
  if (conn_ && conn_->is_open()) return conn_.get();
  try {
    conn_ = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::nontransaction q(*conn_);
    q.exec("SET statement_timeout = '5s'");
    q.exec("SET default_transaction_read_only = off");
    q.exec("SET application_name = 'mpfailoverd-node'");
    return conn_.get();
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable(std::string("could not connect to the node's database: ") + e.what());
  }
}

Result<PersistedRole> NodeDatabase::load_role() {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::read_transaction tx(**c);
    auto r = tx.exec(
        "SELECT initialized, role, epoch, standalone_from, maintenance FROM mpfailover.node");
    if (r.empty()) return failed_precondition("database has no mpfailover node record");
    PersistedRole p;
    p.initialized = r[0][0].as<bool>();
    auto role = heartbeat::role_from_string(r[0][1].as<std::string>());
    auto from = heartbeat::role_from_string(r[0][3].as<std::string>());
    if (!role || !from) return internal_error("mpfailover.node holds an unknown role");
    p.role = *role;
    p.epoch = r[0][2].as<int64_t>();
    p.standalone_from = *from;
    p.maintenance = r[0][4].as<bool>();
    return p;
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable(std::string("could not read mpfailover.node: ") + e.what());
  }
}

Status NodeDatabase::persist_role(const PersistedRole& p) {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::work tx(**c);
    tx.exec_params(
        "UPDATE mpfailover.node SET initialized = true, role = $1, epoch = $2, "
        "standalone_from = $3, maintenance = $4, role_changed_at = now()",
        std::string(heartbeat::to_string(p.role)), p.epoch,
        std::string(heartbeat::to_string(p.standalone_from)), p.maintenance);
    tx.commit();
    return Status::ok();
  } catch (const pqxx::in_doubt_error& e) {
    conn_.reset();
    return unknown_outcome(std::string("could not persist the role: ") + e.what());
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable(std::string("could not persist the role: ") + e.what());
  }
}

Status NodeDatabase::set_app_writes(const std::string& app_role, bool writable) {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::work q(**c);
    const std::string role = q.quote_name(app_role);
    // A daemon login that is not a superuser acts as the application's role, of which init-db
    // --grant-to made it a member: a role may set its own defaults and end its own sessions.
    const bool as_member =
        !q.exec("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0].as<bool>();
    if (as_member) q.exec("SET LOCAL ROLE " + role);
    q.exec(std::string("ALTER ROLE ") + role +
           " SET default_transaction_read_only = " + (writable ? "off" : "on"));
    if (!writable) {
      q.exec_params(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE usename = $1 AND pid <> pg_backend_pid()",
          app_role);
    }
    q.commit();
    return Status::ok();
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable("could not " + std::string(writable ? "open" : "close") +
                       " writes of login \"" + app_role + "\": " + e.what());
  }
}

Result<AppliedFromPeer> NodeDatabase::applied_from(const std::string& origin) {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::read_transaction tx(**c);
    auto r = tx.exec_params(
        "SELECT tick, seq, extract(epoch FROM now() - applied_at)::float8 "
        "FROM mpfailover.applied_position WHERE origin = $1",
        origin);
    AppliedFromPeer a;
    if (!r.empty()) {
      a.position = {r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
      a.age_s = r[0][2].as<double>();
    }
    return a;
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable(std::string("could not read mpfailover.applied_position: ") + e.what());
  }
}

Result<std::string> NodeDatabase::definitions_text() {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::read_transaction tx(**c);
    auto r = tx.exec(
        "SELECT string_agg(relation || '(' || array_to_string(columns, ',') || ':' || "
        "array_to_string(column_types, ',') || ';key=' || array_to_string(key_columns, ',') || "
        "')', ' ' ORDER BY relation) FROM mpfailover.replicated_table WHERE active");
    return r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable(std::string("could not read mpfailover.replicated_table: ") + e.what());
  }
}

Result<int32_t> NodeDatabase::catalog_version() {
  auto c = conn();
  if (!c) return c.status();
  auto v = schema::installed_version(**c, "catalog");
  if (!v) {
    conn_.reset();
    return v.status();
  }
  return static_cast<int32_t>(*v);
}

Status NodeDatabase::record_history(const HistoryEvent& e) {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::work tx(**c);
    if (tx.exec("SELECT to_regclass('mpfailover.history') IS NULL")[0][0].as<bool>()) {
      return failed_precondition("the catalog has no mpfailover.history (run mpfailover init-db)");
    }
    server::record_history(tx, e);
    tx.commit();
    return Status::ok();
  } catch (const std::exception& ex) {
    conn_.reset();
    return unavailable("could not record the " + e.event +
                       " in mpfailover.history: " + one_line(ex.what()));
  }
}

Result<int64_t> NodeDatabase::prune_conflicts(Duration retention) {
  auto c = conn();
  if (!c) return c.status();
  try {
    pqxx::work tx(**c);
    // detected_at is indexed: the range delete reads only what it removes. At most 10,000 rows
    // a call, so a first prune of a long history stays within the 5 s statement timeout.
    auto r = tx.exec_params(
        "DELETE FROM mpfailover.conflict WHERE conflict_id IN (SELECT conflict_id FROM "
        "mpfailover.conflict WHERE detected_at < now() - interval '1 second' * $1 LIMIT 10000)",
        std::chrono::duration<double>(retention).count());
    tx.commit();
    return static_cast<int64_t>(r.affected_rows());
  } catch (const std::exception& ex) {
    conn_.reset();
    return unavailable("could not prune mpfailover.conflict: " + one_line(ex.what()));
  }
}

}  // namespace mpf::server
