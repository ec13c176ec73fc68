// NOTES: capture is one C trigger function shared by every replicated table
// (replicator/pgmodule/mpfailover_capture.c); each table's trigger passes it the table id, the
// origin node and the key and image column names as arguments. The catalog records the column
// list the trigger was created with, so a changed table definition is detectable, and init-db
// regenerates the trigger. Values are stored in PostgreSQL text form with DateStyle,
// IntervalStyle and extra_float_digits pinned by the trigger, so they parse back exactly.
//
// The trigger is AFTER ROW and named "mpfailover_capture", which sorts after the
// "RI_ConstraintTrigger_*" foreign-key triggers: the change number is taken after any FK wait,
// so it is later than the change numbers of the transaction it waited for (docs/design.md §1).
#include <algorithm>
#include <map>
#include <set>

#include <pqxx/pqxx>

#include <mpf/core/pg_identifier.hpp>
#include <mpf/replicator/capture.hpp>

#include "pg_text.hpp"

namespace mpf::replicator {
namespace {

using pg::quote_ident;
using pg::quote_literal;
using pg::quote_relation;

std::vector<std::string> parse_text_array(const pqxx::field& f) {
  std::vector<std::string> out;
  for (auto& v : pg::parse_array(f)) out.push_back(v.value_or(""));
  return out;
}

// Why a table cannot be replicated, in the words init-db, check and bind print.
Status refused(const std::string& relation, const std::string& what, const std::string& hint) {
  return invalid_argument("replicated table \"" + relation + "\" cannot be replicated: " + what +
                          "\nhint: " + hint);
}

Result<std::vector<TableDef>> describe_in(pqxx::work& tx, const std::vector<std::string>& tables) {
  std::vector<TableDef> out;
  std::set<std::string> seen;
  for (const auto& name : tables) {
    // Resolved here by PostgreSQL's identifier rules, not by to_regclass: an unqualified name is
    // in schema public whatever the login's search_path says (a login named like the catalog's
    // schema would otherwise resolve names there), and "My Table" is one name.
    const auto parsed = pgident::parse_qualified_name(name);
    if (!parsed.value) {
      return invalid_argument("invalid table name \"" + name + "\": " + parsed.error);
    }
    auto rel = tx.exec_params(
        "SELECT c.oid::bigint, n.nspname, c.relname, c.relkind, "
        "EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) AND c.relkind = 'r' "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2",
        parsed.value->schema, parsed.value->name);
    if (rel.empty()) {
      return not_found("replicated table \"" + name + "\" does not exist in the node's database" +
                       "\nhint: create it, or remove it from replication.tables");
    }
    const auto oid = rel[0][0].as<int64_t>();
    const std::string relkind = rel[0][3].as<std::string>();
    TableDef def;
    def.relation = rel[0][1].as<std::string>() + "." + rel[0][2].as<std::string>();
    if (relkind != "r" && relkind != "p") {
      return invalid_argument("replicated table \"" + name + "\" is not an ordinary table");
    }
    if (def.relation.rfind("mpfailover.", 0) == 0) {
      return invalid_argument("table \"" + name + "\" belongs to the replicator's own catalog");
    }
    if (!seen.insert(def.relation).second) {
      return invalid_argument("table \"" + def.relation + "\" is listed twice");
    }
    if (rel[0][1].as<std::string>().find('.') != std::string::npos) {
      return refused(def.relation, "its schema's name contains a '.'",
                     "rename the schema; the catalog records relations as schema.table");
    }
    if (rel[0][4].as<bool>()) {
      return refused(def.relation,
                     "it has inheritance children, whose rows its capture trigger does not see "
                     "but whose rows a read of it returns",
                     "replicate each child table by name, or use declarative partitioning");
    }
    // The key is the primary key's key columns only (indnkeyatts): INCLUDE (...) columns are
    // payload, not identity, and ON CONFLICT names the key columns.
    auto keys = tx.exec_params(
        "SELECT a.attname, a.attgenerated <> '', con.conname, con.condeferrable "
        "FROM pg_index i "
        "JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'p' "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = $1::bigint::oid AND i.indisprimary AND k.ord <= i.indnkeyatts "
        "ORDER BY k.ord",
        oid);
    if (keys.empty()) {
      return invalid_argument("replicated table \"" + name + "\" has no primary key" +
                              "\nhint: every replicated table needs a primary key to identify "
                              "its rows on the peer");
    }
    for (const auto& r : keys) {
      def.key_columns.push_back(r[0].as<std::string>());
      if (r[1].as<bool>()) {
        return refused(def.relation,
                       "primary key column \"" + r[0].as<std::string>() +
                           "\" is a generated column, computed on each node rather than shipped",
                       "make the key an ordinary column");
      }
    }
    if (keys[0][3].as<bool>()) {
      return refused(
          def.relation,
          "primary key \"" + keys[0][2].as<std::string>() + "\" (" +
              [&] {
                std::string k;
                for (const auto& c : def.key_columns) k += (k.empty() ? "" : ", ") + c;
                return k;
              }() +
              ") is DEFERRABLE, and apply's INSERT ... ON CONFLICT cannot use a deferrable "
              "constraint",
          "recreate the primary key NOT DEFERRABLE (ALTER TABLE ... DROP CONSTRAINT, then ADD "
          "PRIMARY KEY), on both nodes");
    }
    // Stored generated columns are left out: computed on the target from the shipped columns,
    // as PostgreSQL's logical replication does.
    auto cols = tx.exec_params(
        "SELECT attname, format_type(atttypid, atttypmod), attidentity FROM pg_attribute "
        "WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped "
        "AND attgenerated = '' ORDER BY attnum",
        oid);
    for (const auto& r : cols) {
      const std::string col = r[0].as<std::string>();
      const bool key =
          std::find(def.key_columns.begin(), def.key_columns.end(), col) != def.key_columns.end();
      if (r[2].as<std::string>() == "a") {
        // A key column is inserted with OVERRIDING SYSTEM VALUE (and never updated: a key change
        // arrives as delete + insert). Any other column would be updated too, and an ALWAYS
        // identity column "can only be updated to DEFAULT".
        if (!key) {
          return refused(def.relation,
                         "column \"" + col +
                             "\" is GENERATED ALWAYS AS IDENTITY and not part of the primary "
                             "key: apply cannot update it to the source's value",
                         "ALTER TABLE " + quote_relation(def.relation) + " ALTER COLUMN " +
                             quote_ident(col) + " SET GENERATED BY DEFAULT, on both nodes");
        }
      }
      def.columns.push_back(col);
      def.column_types.push_back(r[1].as<std::string>());
    }
    out.push_back(std::move(def));
  }
  return out;
}

}  // namespace

std::string capture_trigger_sql(const TableDef& t, const std::string& node_name) {
  std::string args = quote_literal(std::to_string(t.table_id)) + ", " + quote_literal(node_name) +
                     ", " + quote_literal(std::to_string(t.key_columns.size()));
  for (const auto& k : t.key_columns) args += ", " + quote_literal(k);
  for (const auto& c : t.columns) args += ", " + quote_literal(c);
  return "CREATE TRIGGER mpfailover_capture AFTER INSERT OR UPDATE OR DELETE ON " +
         quote_relation(t.relation) + " FOR EACH ROW EXECUTE FUNCTION mpfailover.capture(" + args +
         ")";
}

Result<std::vector<TableDef>> install_capture(pqxx::connection& conn, const std::string& node_name,
                                              const std::vector<std::string>& tables) {
  try {
    pqxx::work tx(conn);
    auto node = tx.exec("SELECT name FROM mpfailover.node");
    if (node.empty()) {
      tx.exec_params("INSERT INTO mpfailover.node (name) VALUES ($1)", node_name);
    } else if (node[0][0].as<std::string>() != node_name) {
      return failed_precondition(
          "database belongs to node \"" + node[0][0].as<std::string>() +
          "\", but the config says node.name = \"" + node_name +
          "\"\nhint: check node.database, or re-create the database for this node");
    }
    auto described = describe_in(tx, tables);
    if (!described) return described.status();
    std::vector<TableDef> defs = std::move(described.value());

    try {
      pqxx::subtransaction sub(tx, "load_module");
      sub.exec(
          "CREATE OR REPLACE FUNCTION mpfailover.capture() RETURNS trigger "
          "LANGUAGE C AS 'mpfailover_capture', 'mpf_capture'");
      sub.commit();
    } catch (const pqxx::sql_error& e) {
      return failed_precondition(
          std::string("could not load the capture module \"mpfailover_capture\" into "
                      "PostgreSQL: ") +
          e.what() +
          "hint: install mpfailover on the database server (it puts mpfailover_capture.so in "
          "PostgreSQL's lib directory), or add its directory to dynamic_library_path");
    }

    for (auto& def : defs) {
      auto existing = tx.exec_params(
          "SELECT table_id, (columns = $2::text[] AND key_columns = $3::text[]) OR NOT active "
          "FROM mpfailover.replicated_table WHERE relation = $1",
          def.relation, pg::array_literal(def.columns), pg::array_literal(def.key_columns));
      if (!existing.empty()) {
        def.table_id = existing[0][0].as<int32_t>();
        // Log rows hold images in the column order they were captured with, and the shipper
        // describes them with the catalog's list: changing the list under a backlog would
        // misalign every waiting image of the table (#12).
        if (!existing[0][1].as<bool>()) {
          auto waiting = tx.exec_params(
              "SELECT count(*) FROM mpfailover.change_log WHERE table_id = $1", def.table_id);
          if (const auto n = waiting[0][0].as<int64_t>(); n > 0) {
            return failed_precondition(
                "replicated table \"" + def.relation + "\" changed its columns, but " +
                std::to_string(n) +
                " of its changes captured with the old columns are still in "
                "mpfailover.change_log\nhint: let the peer apply them (mpfailover queue) and the "
                "log be trimmed (replication.retention), then run init-db again "
                "(docs/tables.md, \"Changing a replicated table\")");
          }
        }
      } else {
        def.table_id = tx.exec(
                             "SELECT coalesce(max(table_id), 0) + 1 "
                             "FROM mpfailover.replicated_table")[0][0]
                           .as<int32_t>();
      }
      const std::string rel = quote_relation(def.relation);
      tx.exec("DROP TRIGGER IF EXISTS mpfailover_capture ON " + rel);
      tx.exec(capture_trigger_sql(def, node_name));
      // TRUNCATE fires no row triggers: refuse it rather than diverge silently.
      tx.exec("DROP TRIGGER IF EXISTS mpfailover_no_truncate ON " + rel);
      tx.exec("CREATE TRIGGER mpfailover_no_truncate BEFORE TRUNCATE ON " + rel +
              " FOR EACH STATEMENT EXECUTE FUNCTION mpfailover.refuse_truncate()");
      tx.exec_params(
          "INSERT INTO mpfailover.replicated_table "
          "(table_id, relation, key_columns, columns, column_types, active) "
          "VALUES ($1, $2, $3::text[], $4::text[], $5::text[], true) "
          "ON CONFLICT (table_id) DO UPDATE SET key_columns = EXCLUDED.key_columns, "
          "columns = EXCLUDED.columns, column_types = EXCLUDED.column_types, active = true, "
          "installed_at = now()",
          def.table_id, def.relation, pg::array_literal(def.key_columns),
          pg::array_literal(def.columns), pg::array_literal(def.column_types));
    }

    // Tables dropped from replication.tables lose their capture.
    std::set<std::string> wanted;
    for (const auto& d : defs) wanted.insert(d.relation);
    auto old = tx.exec("SELECT table_id, relation FROM mpfailover.replicated_table WHERE active");
    for (const auto& r : old) {
      const auto relation = r[1].as<std::string>();
      if (wanted.count(relation)) continue;
      auto still = tx.exec_params("SELECT to_regclass($1) IS NOT NULL", relation);
      if (still[0][0].as<bool>()) {
        tx.exec("DROP TRIGGER IF EXISTS mpfailover_capture ON " + quote_relation(relation));
        tx.exec("DROP TRIGGER IF EXISTS mpfailover_no_truncate ON " + quote_relation(relation));
      }
      tx.exec_params("UPDATE mpfailover.replicated_table SET active = false WHERE relation = $1",
                     relation);
    }
    tx.commit();
    return defs;
  } catch (const pqxx::broken_connection& e) {
    return unavailable(std::string("database connection lost while installing capture: ") +
                       e.what());
  } catch (const std::exception& e) {
    return internal_error(std::string("could not install capture: ") + e.what());
  }
}

Result<std::vector<TableDef>> describe_tables(pqxx::connection& conn,
                                              const std::vector<std::string>& tables) {
  try {
    pqxx::work tx(conn);
    return describe_in(tx, tables);
  } catch (const pqxx::broken_connection& e) {
    return unavailable(std::string("database connection lost: ") + e.what());
  } catch (const std::exception& e) {
    return internal_error(std::string("could not describe tables: ") + e.what());
  }
}

Status check_definitions(pqxx::connection& conn) {
  auto installed = installed_tables(conn);
  if (!installed) return installed.status();
  const std::string runbook =
      "\nhint: bring the table back in line with the peer's (docs/tables.md, \"Changing a "
      "replicated table\"), then run mpfailover init-db on both nodes; apply waits meanwhile and "
      "nothing is lost";
  try {
    pqxx::work tx(conn);
    for (const auto& was : *installed) {
      auto now = describe_in(tx, {quote_relation(was.relation)});
      if (!now && now.status().code() == Code::kNotFound) {
        return failed_precondition("replicated table \"" + was.relation +
                                   "\" no longer exists on this node (dropped or renamed since "
                                   "init-db)" +
                                   runbook);
      }
      if (!now) return now.status().with_context("replicated table \"" + was.relation + "\"");
      const TableDef& is = now->front();
      auto changed = [&](const std::string& what) {
        return failed_precondition("replicated table \"" + was.relation +
                                   "\" changed on this node since init-db: " + what + runbook);
      };
      std::map<std::string, std::string> type_now, type_was;
      for (size_t i = 0; i < is.columns.size(); ++i) type_now[is.columns[i]] = is.column_types[i];
      for (size_t i = 0; i < was.columns.size(); ++i)
        type_was[was.columns[i]] = was.column_types[i];
      for (const auto& [col, type] : type_was) {
        auto f = type_now.find(col);
        if (f == type_now.end()) {
          return changed("column \"" + col + "\" was dropped or renamed");
        }
        if (f->second != type) {
          return changed("column \"" + col + "\" was retyped from " + type + " to " + f->second);
        }
      }
      for (const auto& [col, type] : type_now) {
        if (!type_was.count(col)) {
          return changed("column \"" + col + "\" (" + type + ") was added");
        }
      }
      if (is.key_columns != was.key_columns) {
        return changed("the primary key changed");
      }
    }
    return Status::ok();
  } catch (const pqxx::broken_connection& e) {
    return unavailable(std::string("database connection lost: ") + e.what());
  } catch (const std::exception& e) {
    return internal_error(std::string("could not check the replicated tables: ") + e.what());
  }
}

Result<std::vector<TableDef>> installed_tables(pqxx::connection& conn) {
  try {
    pqxx::work tx(conn);
    auto rows = tx.exec(
        "SELECT table_id, relation, key_columns, columns, column_types "
        "FROM mpfailover.replicated_table WHERE active ORDER BY table_id");
    std::vector<TableDef> out;
    for (const auto& r : rows) {
      TableDef d;
      d.table_id = r[0].as<int32_t>();
      d.relation = r[1].as<std::string>();
      d.key_columns = parse_text_array(r[2]);
      d.columns = parse_text_array(r[3]);
      d.column_types = parse_text_array(r[4]);
      out.push_back(std::move(d));
    }
    return out;
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read replicated tables: ") + e.what());
  }
}

}  // namespace mpf::replicator
