// NOTES: apply, set-based.
//
// A group's changes are collapsed to their net effect per key (NetEffect), then each table gets
// one DELETE ... USING unnest(...) and one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
// UPDATE, with every column passed as one text[] parameter and cast to the local column type.
// Deletes run children first, upserts parents first (foreign-key order among the bound tables),
// and deferrable constraints are deferred, so the order of rows inside the group does not matter.
// When the set-based statements fail (a unique value moved between rows inside the group, a
// constraint the target violates), the group is replayed change by change inside a
// subtransaction, which either succeeds (only the order mattered) or names the transaction and
// row that cannot be applied. Nothing is ever skipped here; skipping is an operator's decision.
//
// The position is written in the same transaction as the rows and the commit is synchronous,
// so an acknowledgement sent after apply() returns is durable (docs/design.md §2).
//
// Last-writer-wins without lookups, the common case. Only a row written here (or by a third
// origin) or a tombstone of a delete made elsewhere than the origin gives LWW something to decide
// (docs/design.md §4); otherwise the change simply applies. So upserts first go without version
// lookups, through an upsert that writes a row only when that holds (no such tombstone; the
// existing row, if any, last written by the origin per its commit record, or of unknown commit
// time) and fails the statement unless it wrote every row. The common case costs no lookup
// statement at all (version lookups were ~25% of the apply's statement time while draining); a
// group where LWW has something to decide is redone from the savepoint, its upserts through one
// statement per table that looks every key up, decides LWW and records the conflicts in SQL
// (lww_upsert_sql; issue #16: after a role change or a copy by hand every row of the target was
// written by the target, and the redo with a lookup round trip per table and decisions here
// halved the drain), and the next groups skip the fast attempt for a while. Deletes are always
// looked up (a delete of a missing row still decides its tombstone).
//
// Round trips per group (they bound the lag): one for a group without deletes, which carries
// BEGIN, the upserts, the deferred foreign-key checks, the position and COMMIT. With deletes, the
// first opens the group (BEGIN, session settings, savepoint) and looks up the current versions of
// the first table's deleted keys (one more round trip per further table with deletes); the last
// carries every write (DELETE, upsert, tombstones, conflict records), the deferred foreign-key
// checks, the position and COMMIT. Prepared statements travel as EXECUTE with quoted literals
// inside one multi-statement string, the last statement's result being the one returned;
// PostgreSQL runs nothing after a failing statement, so a failed write never reaches the COMMIT
// (the group is rolled back to the savepoint and redone as above). BEGIN and COMMIT go by hand
// through a pqxx::nontransaction; every error path ends in reset(), which sends ROLLBACK, so the
// session never carries an aborted transaction on. (Four round trips per group before.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/lww.hpp>
#include <mpf/replicator/pg_applier.hpp>

#include "pg_text.hpp"

namespace mpf::replicator {
namespace {

using pg::quote_ident;
using pg::quote_relation;

// Clock skew the applier absorbs by waiting before its commit (see the header).
constexpr auto kMaxCommitWait = std::chrono::seconds(2);

// Groups applied without trying the fast upsert after one failed (see apply_fresh).
constexpr int kFastSkipGroups = 64;

// UTF8 text with every non-ASCII character written \XXXX (or \+XXXXXX) and a backslash as
// \\, as in PostgreSQL's U&'' strings: ASCII only, so any database encoding holds it, and
// lossless (U&'...' reads it back).
std::string escape_non_ascii(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += c == '\\' ? std::string("\\\\") : std::string(1, static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    uint32_t cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0F : 0x1F);
    for (size_t k = 1; k < len && i + k < utf8.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
    }
    char buf[16];
    std::snprintf(buf, sizeof buf, cp > 0xFFFF ? "\\+%06X" : "\\%04X", cp);
    out += buf;
    i += len;
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// The parts of a table's upsert that lww_upsert_sql puts together (all already quoted).
struct UpsertParts {
  std::string rel;           // quoted relation
  std::string relation_lit;  // the relation's name as a literal (conflict and tombstone rows)
  std::string origin_lit;    // the origin's node name as a literal
  std::string roname_lit;    // its replication origin's name as a literal
  std::vector<std::string> cols, selects, sets, keys;
  std::vector<std::string> key_texts;  // u.cK, the key columns' text in the image
  std::vector<std::string> key_conds;  // mpf_row.k = u.cK::type
};

// Last-writer-wins for a table's upserts in ONE statement (issue #16): every row's current
// version is looked up (the same probes as versions_sql), decided in SQL exactly as apply_group
// decides a looked-up change (lww.hpp: the later (timestamp, node name) wins, names compared
// bytewise), the winners upserted and every decision recorded in mpfailover.conflict with the
// same fields and reasons. After a switchover, a failover or a copy by hand every row of the
// target was written by the target itself, so every group needed this path; it used to cost a
// failed fast upsert, a rollback to the savepoint, a version lookup round trip per table and
// the decisions in C++. $1..$n: image columns as text[]; $n+1: the rows' timestamps (text[]
// of bigint); $n+2: their ops ('I'/'U').
std::string lww_upsert_sql(const UpsertParts& p) {
  const size_t n = p.cols.size();
  std::vector<std::string> uparams, ualiases, image;
  for (size_t c = 0; c < n; ++c) {
    uparams.push_back("$" + std::to_string(c + 1) + "::text[]");
    ualiases.push_back("c" + std::to_string(c));
    image.push_back("d.c" + std::to_string(c));
  }
  uparams.push_back("$" + std::to_string(n + 1) + "::text[]");
  uparams.push_back("$" + std::to_string(n + 2) + "::text[]");
  std::string kwhere;
  for (const auto& c : p.key_conds) kwhere += (kwhere.empty() ? "" : " AND ") + c;
  std::string dkey;
  for (const auto& k : p.key_texts) dkey += (dkey.empty() ? "d." : ", d.") + k.substr(2);
  std::string dselects;
  for (const auto& sel : p.selects) dselects += (dselects.empty() ? "d." : ", d.") + sel.substr(2);
  const std::string local = "(SELECT name FROM mpfailover.node)";
  // The incoming change wins over the row (or tombstone) of version (H, O) when later.
  auto later = [&](const std::string& h, const std::string& o) {
    return "(d.hb > " + h + " OR (d.hb = " + h + " AND " + p.origin_lit + " COLLATE \"C\" > " + o +
           " COLLATE \"C\"))";
  };
  return "WITH u AS (SELECT * FROM unnest(" + join(uparams) + ") WITH ORDINALITY AS u(" +
         join(ualiases) +
         ", h, op, ord)), "
         "v AS MATERIALIZED (SELECT u.*, t.found, t.row_hlc, t.roident, t.local_row, "
         "tb.hlc AS tomb_hlc, tb.origin AS tomb_origin FROM u "
         "LEFT JOIN LATERAL (SELECT true AS found, "
         "(extract(epoch FROM x.timestamp) * 1000000)::bigint AS row_hlc, x.roident, "
         "CASE WHEN x.roident = 0 THEN to_jsonb(mpf_row)::text END AS local_row FROM " +
         p.rel +
         " mpf_row LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(mpf_row.xmin) x ON true "
         "WHERE " +
         kwhere +
         " OFFSET 0) t ON true "
         "LEFT JOIN LATERAL (SELECT mpfailover.tombstone_hlc(s) AS hlc, s.origin "
         "FROM mpfailover.tombstone s WHERE t.found IS NULL AND s.relation = " +
         p.relation_lit + " AND s.key = ARRAY[" + join(p.key_texts) +
         "]::text[] OFFSET 0) tb ON true), "
         "d AS MATERIALIZED (SELECT v.*, v.h::bigint AS hb, CASE "
         "WHEN v.found AND NOT coalesce(v.roident = (SELECT roident FROM pg_replication_origin "
         "WHERE roname = " +
         p.roname_lit +
         "), false) AND v.row_hlc IS NOT NULL THEN 'row' "
         "WHEN v.found IS NULL AND v.tomb_hlc IS NOT NULL AND v.tomb_origin <> " +
         p.origin_lit +
         " THEN 'tomb' END AS against FROM v), "
         "e AS MATERIALIZED (SELECT d.*, CASE d.against "
         "WHEN 'row' THEN CASE WHEN " +
         later("d.row_hlc", local) +
         " THEN 'row-lost' ELSE 'change-lost' END "
         "WHEN 'tomb' THEN CASE WHEN " +
         later("d.tomb_hlc", "d.tomb_origin") +
         " THEN 'restored' ELSE 'deleted-later' END END AS verdict "
         "FROM d), "
         "ins AS (INSERT INTO " +
         p.rel + " AS mpf_row (" + join(p.cols) + ") OVERRIDING SYSTEM VALUE SELECT " + dselects +
         " FROM e d WHERE d.verdict IS NULL OR d.verdict IN ('row-lost', 'restored') ORDER BY "
         "d.ord ON CONFLICT (" +
         join(p.keys) + ") DO UPDATE SET " + join(p.sets) +
         " RETURNING 1), "
         "conf AS (INSERT INTO mpfailover.conflict (relation, key, kind, winner_origin, "
         "winner_hlc, loser_origin, loser_hlc, loser_op, loser_image, loser_row, reason) "
         "SELECT " +
         p.relation_lit + ", ARRAY[" + dkey +
         "]::text[], 'lww', "
         "CASE d.verdict WHEN 'change-lost' THEN " +
         local + " WHEN 'deleted-later' THEN d.tomb_origin ELSE " + p.origin_lit +
         " END, "
         "CASE d.verdict WHEN 'change-lost' THEN d.row_hlc WHEN 'deleted-later' THEN d.tomb_hlc "
         "ELSE d.hb END, "
         "CASE d.verdict WHEN 'row-lost' THEN " +
         local + " WHEN 'restored' THEN d.tomb_origin ELSE " + p.origin_lit +
         " END, "
         "CASE d.verdict WHEN 'row-lost' THEN d.row_hlc WHEN 'restored' THEN d.tomb_hlc "
         "ELSE d.hb END, "
         "CASE WHEN d.verdict IN ('change-lost', 'deleted-later') THEN d.op ELSE 'U' END, "
         "CASE WHEN d.verdict IN ('change-lost', 'deleted-later') THEN ARRAY[" +
         join(image) +
         "]::text[] END, "
         "CASE WHEN d.verdict = 'row-lost' THEN d.local_row::jsonb END, "
         "CASE d.verdict "
         "WHEN 'row-lost' THEN 'change from \"' || " +
         p.origin_lit +
         " || '\" is later than the row written here' "
         "WHEN 'change-lost' THEN 'row written here is later than the change from \"' || " +
         p.origin_lit +
         " || '\"' "
         "WHEN 'restored' THEN 'change from \"' || " +
         p.origin_lit +
         " || '\" is later than the delete made here: row restored' "
         "ELSE 'row was deleted here later than the change from \"' || " +
         p.origin_lit +
         " || '\"' END "
         "FROM e d WHERE d.verdict IS NOT NULL ORDER BY d.ord RETURNING 1) "
         "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM conf)";
}

}  // namespace

struct PgApplier::BoundTable {
  int32_t origin_table_id = 0;
  std::string relation;
  std::vector<size_t> key_in_image;  // positions of the key columns in the origin's image
  std::string delete_sql;            // $1..$k: key columns as text[]
  std::string upsert_sql;            // $1..$n: image columns as text[]
  std::string versions_sql;          // $1..$k: key columns as text[]; one row per key, in order
  std::string tombstone_sql;         // see bind
  // The upsert without version lookups (see apply_group): $1..$n image columns as text[],
  // $n+1 the row count; fails (division by zero) unless every row was applied. Empty for a
  // table whose columns are all key columns (its upsert does nothing on a conflict).
  std::string fast_upsert_sql;
  std::string fast_upsert_name;
  // Last-writer-wins decided in one statement (lww_upsert_sql); empty like fast_upsert_sql.
  std::string lww_upsert_sql;
  std::string lww_upsert_name;
  // Prepared once per bind (planning these per group cost more than running them).
  std::string delete_name, upsert_name, versions_name, tombstone_name;
  // One per foreign key of this table (as the child): $1..$k key columns as text[]; raises
  // foreign_key_violation when one of these rows has no parent here (apply runs as a replica
  // session, where PostgreSQL's own checks do not fire). Names parallel the statements.
  // Those with `true` check this table as the parent: $1..$k the keys deleted here; raises when
  // a row of the child still references one (this node's own row: the source's cascades arrive
  // as their own changes).
  std::vector<std::pair<std::string, bool>> reference_sqls;
  std::vector<std::string> reference_names;
};

PgApplier::PgApplier(std::unique_ptr<pqxx::connection> conn) : conn_(std::move(conn)) {}

PgApplier::~PgApplier() { reset(); }

Result<std::unique_ptr<PgApplier>> PgApplier::open(const std::string& conninfo) {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo);
    // Values arrive in UTF8 (PROTOCOL.md, "Encoding"); the server converts them into the
    // database's encoding, and one it cannot represent fails the statement (nothing stored).
    conn->set_client_encoding("UTF8");
    // The application's login is made read-only on a standby (node.app_role); should the
    // replicator log in as that same role, its own session must still write.
    bool converts = false;
    {
      pqxx::nontransaction q(*conn);
      q.exec("SET default_transaction_read_only = off");
      converts = q.exec("SELECT current_setting('server_encoding') <> 'UTF8'")[0][0].as<bool>();
    }
    std::unique_ptr<PgApplier> applier(new PgApplier(std::move(conn)));
    applier->converts_ = converts;
    return applier;
  } catch (const std::exception& e) {
    return unavailable(std::string("could not connect the applier to the database: ") + e.what());
  }
}

void PgApplier::reset() {
  if (!tx_) return;
  try {
    tx_->exec("ROLLBACK");
    tx_->abort();  // libpqxx's bookkeeping only: a nontransaction sends nothing
  } catch (const std::exception&) {
    // The connection is gone; nothing was committed.
  }
  tx_.reset();
}

Status PgApplier::bind(const std::string& origin, const std::vector<TableDef>& origin_tables) {
  reset();
  origin_ = origin;
  tables_.clear();
  by_id_.clear();
  // This node's own tables first: one changed since init-db (schema drift, #12) stops apply
  // here, naming it, until the definitions are back in line; the next session binds again.
  if (auto drift = check_definitions(*conn_); !drift) return drift;
  std::vector<std::string> names;
  for (const auto& t : origin_tables) names.push_back(quote_relation(t.relation));
  auto local = describe_tables(*conn_, names);
  if (!local) return local.status().with_context("origin \"" + origin + "\" replicates a table");

  // Foreign-key depth among the bound tables, so parents are upserted first.
  std::map<std::string, int> depth;
  try {
    pqxx::work q(*conn_);
    std::map<std::string, std::set<std::string>> parents;
    for (const auto& r : q.exec("SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, "
                                "n1.nspname || '.' || r1.relname, n2.nspname || '.' || r2.relname "
                                "FROM pg_constraint c "
                                "JOIN pg_class r1 ON r1.oid = c.conrelid "
                                "JOIN pg_namespace n1 ON n1.oid = r1.relnamespace "
                                "JOIN pg_class r2 ON r2.oid = c.confrelid "
                                "JOIN pg_namespace n2 ON n2.oid = r2.relnamespace "
                                "WHERE c.contype = 'f' AND c.conrelid <> c.confrelid")) {
      parents[r[2].as<std::string>()].insert(r[3].as<std::string>());
    }
    // Bounded relaxation: depth = longest parent chain, cycles stop at the table count.
    for (const auto& d : *local) depth[d.relation] = 0;
    for (size_t round = 0; round < local->size(); ++round) {
      for (const auto& d : *local) {
        for (const auto& p : parents[d.relation]) {
          if (depth.count(p) && p != d.relation) {
            depth[d.relation] = std::max(depth[d.relation], std::min<int>(depth[p] + 1, 1000));
          }
        }
      }
    }
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read foreign keys: ") + e.what());
  }

  int32_t max_id = 0;
  for (size_t i = 0; i < origin_tables.size(); ++i) {
    const TableDef& remote = origin_tables[i];
    const TableDef& here = (*local)[i];
    max_id = std::max(max_id, remote.table_id);
    if (remote.key_columns != here.key_columns) {
      return failed_precondition("table \"" + here.relation + "\" has primary key (" +
                                 join(here.key_columns) + ") here but (" +
                                 join(remote.key_columns) + ") on \"" + origin + "\"");
    }
    std::set<std::string> remote_cols(remote.columns.begin(), remote.columns.end());
    std::set<std::string> here_cols(here.columns.begin(), here.columns.end());
    if (remote_cols != here_cols) {
      std::vector<std::string> only_here, only_there;
      for (const auto& c : here_cols)
        if (!remote_cols.count(c)) only_here.push_back(c);
      for (const auto& c : remote_cols)
        if (!here_cols.count(c)) only_there.push_back(c);
      return failed_precondition("table \"" + here.relation + "\" differs from \"" + origin +
                                 "\": columns only here (" + join(only_here) + "), only there (" +
                                 join(only_there) + ")");
    }
    std::map<std::string, std::string> type_of;
    for (size_t c = 0; c < here.columns.size(); ++c)
      type_of[here.columns[c]] = here.column_types[c];

    auto bt = std::make_unique<BoundTable>();
    bt->origin_table_id = remote.table_id;
    bt->relation = here.relation;
    const std::string rel = quote_relation(here.relation);
    // DELETE t USING unnest($1::text[], $2::text[]) AS u(k1, k2) WHERE t.k1 = u.k1::type ...
    std::vector<std::string> params, aliases, conds;
    for (size_t k = 0; k < remote.key_columns.size(); ++k) {
      const auto& col = remote.key_columns[k];
      const auto pos = std::find(remote.columns.begin(), remote.columns.end(), col);
      bt->key_in_image.push_back(static_cast<size_t>(pos - remote.columns.begin()));
      params.push_back("$" + std::to_string(k + 1) + "::text[]");
      aliases.push_back("k" + std::to_string(k));
      conds.push_back("t." + quote_ident(col) + " = u.k" + std::to_string(k) + "::" + type_of[col]);
    }
    std::string where;
    for (const auto& c : conds) where += (where.empty() ? "" : " AND ") + c;
    bt->delete_sql = "DELETE FROM " + rel + " t USING unnest(" + join(params) + ") AS u(" +
                     join(aliases) + ") WHERE " + where;
    // The current version of each key here: the row's last writer (commit time and replication
    // origin of its xmin; origin 0 = written on this node), the row itself when it was written
    // here (for the conflict record), and, when there is no row, the key's tombstone. Each
    // lookup is a LATERAL subquery kept apart by OFFSET 0, so the plan is one index probe per
    // key: joined plainly, the planner hash-joined the keys against a full scan of the table
    // and of the tombstones once per group, a cost growing with the tables (43 ms for 900 keys
    // against 45,500 rows).
    std::vector<std::string> key_texts, lconds;
    for (const auto& a : aliases) key_texts.push_back("u." + a);
    for (size_t k = 0; k < remote.key_columns.size(); ++k) {
      const auto& col = remote.key_columns[k];
      lconds.push_back("mpf_row." + quote_ident(col) + " = u.k" + std::to_string(k) +
                       "::" + type_of[col]);
    }
    std::string lwhere;
    for (const auto& c : lconds) lwhere += (lwhere.empty() ? "" : " AND ") + c;
    bt->versions_sql =
        "SELECT (t.found IS NOT NULL), t.hlc, t.roident, t.local_row, tb.hlc, tb.origin "
        "FROM unnest(" +
        join(params) + ") WITH ORDINALITY AS u(" + join(aliases) +
        ", ord) "
        "LEFT JOIN LATERAL (SELECT true AS found, "
        "(extract(epoch FROM x.timestamp) * 1000000)::bigint AS hlc, x.roident, "
        "CASE WHEN x.roident = 0 THEN to_jsonb(mpf_row)::text END AS local_row FROM " +
        rel +
        " mpf_row LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(mpf_row.xmin) x ON true "
        "WHERE " +
        lwhere +
        " OFFSET 0) t ON true "
        "LEFT JOIN LATERAL (SELECT mpfailover.tombstone_hlc(s) AS hlc, s.origin "
        "FROM mpfailover.tombstone s WHERE t.found IS NULL AND s.relation = " +
        conn_->quote(here.relation) + " AND s.key = ARRAY[" + join(key_texts) +
        "]::text[] OFFSET 0) tb ON true ORDER BY u.ord";
    // Tombstones of applied deletes: $1 relation, $2 origin, $3 timestamps, $4.. key columns.
    {
      std::string cols = "h", arrays = "$3::text[]", key_expr;
      for (size_t k = 0; k < remote.key_columns.size(); ++k) {
        cols += ", k" + std::to_string(k);
        arrays += ", $" + std::to_string(4 + k) + "::text[]";
        key_expr += (k ? ", u.k" : "u.k") + std::to_string(k);
      }
      bt->tombstone_sql =
          "INSERT INTO mpfailover.tombstone (relation, key, origin, txid, hlc) SELECT $1, ARRAY[" +
          key_expr + "]::text[], $2, NULL, u.h::bigint FROM unnest(" + arrays + ") AS u(" + cols +
          ") ON CONFLICT (relation, key) DO UPDATE SET "
          "origin = EXCLUDED.origin, txid = NULL, hlc = EXCLUDED.hlc, deleted_at = now()";
    }
    // INSERT INTO t (c...) SELECT u.c0::type ... FROM unnest(...) ON CONFLICT (keys) DO UPDATE
    std::vector<std::string> cols, selects, sets, uparams, ualiases, keys;
    for (size_t c = 0; c < remote.columns.size(); ++c) {
      const auto& col = remote.columns[c];
      cols.push_back(quote_ident(col));
      uparams.push_back("$" + std::to_string(c + 1) + "::text[]");
      ualiases.push_back("c" + std::to_string(c));
      selects.push_back("u.c" + std::to_string(c) + "::" + type_of[col]);
      if (std::find(remote.key_columns.begin(), remote.key_columns.end(), col) ==
          remote.key_columns.end()) {
        sets.push_back(quote_ident(col) + " = EXCLUDED." + quote_ident(col));
      }
    }
    for (const auto& k : remote.key_columns) keys.push_back(quote_ident(k));
    // Identity columns keep the source's values, as with PostgreSQL's apply (GENERATED ALWAYS
    // ones only as key columns: describe refuses others). Harmless on a table without one.
    const std::string overriding = " OVERRIDING SYSTEM VALUE";
    bt->upsert_sql = "INSERT INTO " + rel + " (" + join(cols) + ")" + overriding + " SELECT " +
                     join(selects) + " FROM unnest(" + join(uparams) + ") AS u(" + join(ualiases) +
                     ") ON CONFLICT (" + join(keys) + ") DO " +
                     (sets.empty() ? std::string("NOTHING") : "UPDATE SET " + join(sets));
    // The same upsert, applying each row only where last-writer-wins has nothing to decide: no
    // tombstone of a delete made elsewhere than the origin, and a row, if any, last written by
    // the origin (or of unknown commit time). The tombstone probe is a scalar subquery so that
    // it stays an index probe per row (NOT EXISTS became an anti-join scanning every tombstone of
    // the table per row in the generic plan).
    if (!sets.empty()) {
      std::vector<std::string> tomb_key;
      for (size_t k : bt->key_in_image) tomb_key.push_back("u.c" + std::to_string(k));
      bt->fast_upsert_sql =
          "WITH ins AS (INSERT INTO " + rel + " AS mpf_row (" + join(cols) + ")" + overriding +
          " SELECT " + join(selects) + " FROM unnest(" + join(uparams) + ") AS u(" +
          join(ualiases) + ") WHERE (SELECT true FROM mpfailover.tombstone s WHERE s.relation = " +
          conn_->quote(here.relation) + " AND s.key = ARRAY[" + join(tomb_key) +
          "]::text[] AND s.origin <> " + conn_->quote(origin) + ") IS NULL ON CONFLICT (" +
          join(keys) + ") DO UPDATE SET " + join(sets) +
          " WHERE (SELECT coalesce(x.roident = (SELECT roident FROM pg_replication_origin "
          "WHERE roname = " +
          conn_->quote("mpfailover_" + origin) +
          "), true) OR x.\"timestamp\" IS NULL "
          "FROM pg_xact_commit_timestamp_origin(mpf_row.xmin) x) RETURNING 1) "
          "SELECT 1 / (SELECT (count(*) = $" +
          std::to_string(remote.columns.size() + 1) + "::bigint)::int FROM ins)";
      std::vector<std::string> key_conds;
      for (size_t k = 0; k < remote.key_columns.size(); ++k) {
        key_conds.push_back("mpf_row." + quote_ident(remote.key_columns[k]) + " = u.c" +
                            std::to_string(bt->key_in_image[k]) +
                            "::" + type_of[remote.key_columns[k]]);
      }
      bt->lww_upsert_sql = lww_upsert_sql(UpsertParts{
          rel, conn_->quote(here.relation), conn_->quote(origin),
          conn_->quote("mpfailover_" + origin), cols, selects, sets, keys, tomb_key, key_conds});
    }
    if (auto refs = reference_checks(here, type_of, aliases, params); !refs) {
      return refs.status();
    } else {
      bt->reference_sqls = std::move(*refs);
    }
    tables_.push_back(std::move(bt));
  }
  std::stable_sort(tables_.begin(), tables_.end(), [&](const auto& a, const auto& b) {
    return depth[a->relation] < depth[b->relation];
  });
  try {
    pqxx::nontransaction q(*conn_);
    if (q.exec("SHOW track_commit_timestamp")[0][0].as<std::string>() != "on") {
      return failed_precondition(
          "track_commit_timestamp is off in this node's PostgreSQL: conflicts cannot be "
          "resolved\nhint: set track_commit_timestamp = on in postgresql.conf and restart it");
    }
    auto node = q.exec("SELECT name FROM mpfailover.node");
    if (node.empty()) return failed_precondition("database has no mpfailover node record");
    local_node_ = node[0][0].as<std::string>();
    // Rows written by this session carry the origin's replication origin in their commit
    // record, which is how a later change tells "came from the peer" from "written here".
    const std::string roname = "mpfailover_" + origin;
    q.exec_params(
        "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
        roname);
    if (q.exec("SELECT pg_replication_origin_session_is_setup()")[0][0].as<bool>()) {
      q.exec("SELECT pg_replication_origin_session_reset()");
    }
    q.exec_params("SELECT pg_replication_origin_session_setup($1)", roname);
    origin_roident_ =
        q.exec_params("SELECT roident FROM pg_replication_origin WHERE roname = $1", roname)[0][0]
            .as<int64_t>();
  } catch (const std::exception& e) {
    return unavailable(std::string("could not set up the replication origin: ") + e.what());
  }
  by_id_.assign(static_cast<size_t>(max_id) + 1, nullptr);
  for (auto& t : tables_) by_id_[static_cast<size_t>(t->origin_table_id)] = t.get();
  try {
    for (auto& t : tables_) {
      const std::string id = std::to_string(++statement_generation_);
      t->delete_name = "mpf_del_" + id;
      t->upsert_name = "mpf_up_" + id;
      t->versions_name = "mpf_ver_" + id;
      t->tombstone_name = "mpf_tomb_" + id;
      conn_->prepare(t->delete_name, t->delete_sql);
      conn_->prepare(t->upsert_name, t->upsert_sql);
      conn_->prepare(t->versions_name, t->versions_sql);
      conn_->prepare(t->tombstone_name, t->tombstone_sql);
      // Run by EXECUTE inside multi-statement strings, which libpqxx does not see: registered
      // with the server now, not lazily at a first exec_prepared.
      for (const auto* name :
           {&t->delete_name, &t->upsert_name, &t->versions_name, &t->tombstone_name}) {
        conn_->prepare_now(*name);
      }
      t->reference_names.clear();
      for (size_t r = 0; r < t->reference_sqls.size(); ++r) {
        t->reference_names.push_back("mpf_ref_" + id + "_" + std::to_string(r));
        conn_->prepare(t->reference_names.back(), t->reference_sqls[r].first);
        conn_->prepare_now(t->reference_names.back());
      }
      if (!t->fast_upsert_sql.empty()) {
        t->fast_upsert_name = "mpf_fast_" + id;
        conn_->prepare(t->fast_upsert_name, t->fast_upsert_sql);
        conn_->prepare_now(t->fast_upsert_name);
        t->lww_upsert_name = "mpf_lww_" + id;
        conn_->prepare(t->lww_upsert_name, t->lww_upsert_sql);
        conn_->prepare_now(t->lww_upsert_name);
      }
    }
  } catch (const std::exception& e) {
    return unavailable(std::string("could not prepare apply statements: ") + e.what());
  }
  auto pos = applied_position();
  if (!pos) return pos.status();
  committed_ = *pos;
  skips_.clear();
  try {
    pqxx::nontransaction q(*conn_);
    for (const auto& r : q.exec_params("SELECT tick, seq, reason FROM mpfailover.skip_request "
                                       "WHERE origin = $1 AND done_at IS NULL",
                                       origin)) {
      skips_[Position{r[0].as<int64_t>(), r[1].as<int64_t>()}] = r[2].as<std::string>();
    }
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read skip requests: ") + e.what());
  }
  return Status::ok();
}

Result<std::vector<std::pair<std::string, bool>>> PgApplier::reference_checks(
    const TableDef& here, const std::map<std::string, std::string>& type_of,
    const std::vector<std::string>& key_aliases, const std::vector<std::string>& key_params) {
  std::vector<std::pair<std::string, bool>> out;
  std::string unnest = "unnest(" + join(key_params) + ") AS u(" + join(key_aliases) + ")";
  // u.kN cast to the key column's type, by key column name.
  auto key_value = [&](const std::string& col) -> std::optional<std::string> {
    for (size_t k = 0; k < here.key_columns.size(); ++k) {
      if (here.key_columns[k] == col) return "u." + key_aliases[k] + "::" + type_of.at(col);
    }
    return std::nullopt;
  };
  try {
    pqxx::nontransaction q(*conn_);
    const auto dot = here.relation.find('.');
    // Every foreign key with this table as the child (side 'c') or as the parent (side 'p').
    auto fks = q.exec_params(
        "WITH me AS (SELECT r.oid FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace "
        " WHERE n.nspname = $1 AND r.relname = $2) "
        "SELECT side, c.conname, "
        "(SELECT n.nspname || '.' || r.relname FROM pg_class r JOIN pg_namespace n "
        " ON n.oid = r.relnamespace WHERE r.oid = CASE side WHEN 'c' THEN c.confrelid "
        " ELSE c.conrelid END), "
        "(SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY "
        " AS k(n, ord) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), "
        "(SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY "
        " AS k(n, ord) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n) "
        "FROM pg_constraint c CROSS JOIN me CROSS JOIN LATERAL (VALUES ('c'), ('p')) s(side) "
        "WHERE c.contype = 'f' AND CASE side WHEN 'c' THEN c.conrelid ELSE c.confrelid END "
        " = me.oid ORDER BY side, c.conname",
        here.relation.substr(0, dot), here.relation.substr(dot + 1));
    for (const auto& fk : fks) {
      const bool as_child = fk[0].as<std::string>() == "c";
      const std::string conname = fk[1].as<std::string>();
      const std::string other = fk[2].as<std::string>();
      const auto child_cols = pg::parse_array(fk[3]);
      const auto parent_cols = pg::parse_array(fk[4]);
      std::string not_null, match, key_names, key_values, on, gone;
      bool by_key = parent_cols.size() == here.key_columns.size();
      for (size_t i = 0; i < child_cols.size(); ++i) {
        const std::string c = "mpf_c." + quote_ident(child_cols[i].value_or(""));
        const std::string p = quote_ident(parent_cols[i].value_or(""));
        const auto k = key_value(parent_cols[i].value_or(""));
        by_key = by_key && k.has_value();
        not_null += " AND " + c + " IS NOT NULL";
        match += std::string(i ? " AND " : "") + "mpf_p." + p + " = " + c;
        key_names += (i ? ", " : "") + (as_child ? child_cols : parent_cols)[i].value_or("");
        key_values += std::string(i ? ", ', ', " : "") + c + "::text";
        if (k) on += std::string(i ? " AND " : "") + c + " = " + *k;
      }
      if (as_child) {
        // Rows written here whose parent is missing. MATCH SIMPLE (the default): a row with a
        // NULL in its referencing columns is not checked.
        std::string mine;
        for (size_t k = 0; k < here.key_columns.size(); ++k) {
          mine += std::string(k ? " AND " : "") + "mpf_c." + quote_ident(here.key_columns[k]) +
                  " = u." + key_aliases[k] + "::" + type_of.at(here.key_columns[k]);
        }
        out.emplace_back("SELECT mpfailover.foreign_key_violation(" + conn_->quote(conname) + ", " +
                             conn_->quote(here.relation) + ", " + conn_->quote(other) + ", " +
                             conn_->quote(key_names + ")=(") + " || concat(" + key_values +
                             ")) FROM " + unnest + " JOIN " + quote_relation(here.relation) +
                             " mpf_c ON " + mine + " WHERE true" + not_null +
                             " AND NOT EXISTS (SELECT 1 FROM " + quote_relation(other) +
                             " mpf_p WHERE " + match + ") LIMIT 1",
                         false);
      } else if (by_key) {
        // Rows of this table deleted here that a row of the child still references (the
        // source's cascades arrive as their own changes: what is left is this node's own).
        for (size_t k = 0; k < here.key_columns.size(); ++k) {
          gone += std::string(k ? " AND " : "") + "mpf_p." + quote_ident(here.key_columns[k]) +
                  " = u." + key_aliases[k] + "::" + type_of.at(here.key_columns[k]);
        }
        out.emplace_back("SELECT mpfailover.referenced_row_deleted(" + conn_->quote(conname) +
                             ", " + conn_->quote(here.relation) + ", " + conn_->quote(other) +
                             ", " + conn_->quote(key_names + ")=(") + " || concat(" + key_values +
                             ")) FROM " + unnest + " JOIN " + quote_relation(other) + " mpf_c ON " +
                             on + " WHERE NOT EXISTS (SELECT 1 FROM " +
                             quote_relation(here.relation) + " mpf_p WHERE " + gone + ") LIMIT 1",
                         true);
      }
    }
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read the foreign keys of \"") + here.relation +
                       "\": " + e.what());
  }
  return out;
}

std::string PgApplier::references_sql(const NetEffect& net) const {
  std::string sql;
  for (const auto& t : tables_) {
    if (t->reference_names.empty()) continue;
    const auto found = net.tables().find(t->origin_table_id);
    if (found == net.tables().end()) continue;
    // Written rows for the child checks, deleted keys for the parent checks.
    std::vector<std::vector<Value>> written(t->key_in_image.size()), deleted(written.size());
    for (const auto& c : found->second) {
      auto& to = c.op == Op::kDelete ? deleted : written;
      for (size_t k = 0; k < to.size(); ++k) to[k].push_back(c.key[k]);
    }
    for (size_t r = 0; r < t->reference_names.size(); ++r) {
      const auto& keys = t->reference_sqls[r].second ? deleted : written;
      if (keys.empty() || keys[0].empty()) continue;
      std::vector<std::string> params;
      for (const auto& k : keys) params.push_back(pg::array_literal(k));
      sql += execute_sql(t->reference_names[r], params);
    }
  }
  return sql;
}

void PgApplier::record_failure(Position at, const std::string& message) {
  failed_at_ = at;
  try {
    pqxx::nontransaction q(*conn_);
    q.exec_params(
        "INSERT INTO mpfailover.apply_failure (origin, tick, seq, message) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (origin) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
        "message = EXCLUDED.message, failed_at = now()",
        origin_, at.tick, at.seq, message);
  } catch (const std::exception& e) {
    // The error still goes back to the origin (ApplyError); only skip's check is weaker.
    spdlog::warn("ApplyFailureNotRecorded origin={} position={} reason=\"{}\"", origin_,
                 at.to_string(), e.what());
  }
}

Result<Position> PgApplier::applied_position() {
  try {
    pqxx::nontransaction q(*conn_);
    auto r = q.exec_params("SELECT tick, seq FROM mpfailover.applied_position WHERE origin = $1",
                           origin_);
    if (r.empty()) return Position{};
    return Position{r[0][0].as<int64_t>(), r[0][1].as<int64_t>()};
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read the applied position: ") + e.what());
  }
}

std::string PgApplier::begin_sql() {
  if (tx_) return "";
  tx_ = std::make_unique<pqxx::nontransaction>(*conn_);
  // The origin's timestamp is reset per transaction: once set, PostgreSQL would stamp every
  // later commit of the session with the first one's time.
  // session_replication_role = replica, as PostgreSQL's apply worker: ordinary triggers and
  // foreign-key actions do not fire (what they did on the source arrives as its own changes;
  // ENABLE REPLICA and ENABLE ALWAYS triggers do fire). The capture trigger is an ordinary one,
  // so applied rows are not captured again (mpfailover.applying stays as a second guard).
  return std::string("BEGIN; SET LOCAL ") + kApplyingSetting +
         " = 'on'; SET LOCAL session_replication_role = replica; SET CONSTRAINTS ALL DEFERRED; "
         "SELECT pg_replication_origin_xact_reset(); ";
}

void PgApplier::begin_if_needed() {
  const std::string sql = begin_sql();
  if (!sql.empty()) tx_->exec(sql);
}

std::string PgApplier::execute_sql(const std::string& statement,
                                   const std::vector<std::string>& params) const {
  std::string sql = "EXECUTE " + statement + "(";
  for (size_t i = 0; i < params.size(); ++i) {
    if (i) sql += ", ";
    sql += conn_->quote(params[i]);
  }
  return sql + "); ";
}

std::string PgApplier::position_sql(Position pos) const {
  return "INSERT INTO mpfailover.applied_position (origin, tick, seq) VALUES (" +
         conn_->quote(origin_) + ", " + std::to_string(pos.tick) + ", " + std::to_string(pos.seq) +
         ") ON CONFLICT (origin) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
         "applied_at = now(); COMMIT";
}

std::string PgApplier::flush(const NetEffect& net) const {
  auto column_arrays = [](const std::vector<const NetChange*>& rows,
                          const std::vector<size_t>& pick, bool from_key) {
    std::vector<std::string> params;
    const size_t n = pick.size();
    for (size_t c = 0; c < n; ++c) {
      std::vector<Value> column;
      column.reserve(rows.size());
      for (const auto* r : rows) column.push_back(from_key ? r->key[c] : r->image[pick[c]]);
      params.push_back(pg::array_literal(column));
    }
    return params;
  };
  std::string sql;
  // Children first for deletes, parents first for upserts.
  for (auto it = tables_.rbegin(); it != tables_.rend(); ++it) {
    const auto found = net.tables().find((*it)->origin_table_id);
    if (found == net.tables().end()) continue;
    std::vector<const NetChange*> deletes;
    for (const auto& c : found->second)
      if (c.op == Op::kDelete) deletes.push_back(&c);
    if (deletes.empty()) continue;
    std::vector<size_t> pick((*it)->key_in_image.size());
    sql += execute_sql((*it)->delete_name, column_arrays(deletes, pick, /*from_key=*/true));
  }
  for (const auto& t : tables_) {
    const auto found = net.tables().find(t->origin_table_id);
    if (found == net.tables().end()) continue;
    std::vector<const NetChange*> upserts;
    size_t width = 0;
    for (const auto& c : found->second) {
      if (c.op == Op::kDelete) continue;
      upserts.push_back(&c);
      width = c.image.size();
    }
    if (upserts.empty()) continue;
    for (const auto* u : upserts) {
      MPF_ASSERT(u->image.size() == width, "row images of one table differ in width");
    }
    std::vector<size_t> pick(width);
    for (size_t i = 0; i < width; ++i) pick[i] = i;
    sql += execute_sql(t->upsert_name, column_arrays(upserts, pick, /*from_key=*/false));
  }
  return sql;
}

Status PgApplier::apply_one_by_one(const std::vector<TxChunk>& chunks,
                                   const std::map<Position, std::string>& skips) {
  tx_->exec("SET CONSTRAINTS ALL DEFERRED");
  for (const auto& chunk : chunks) {
    if (skips.count(chunk.position)) continue;  // recorded already
    NetEffect written;  // this part's rows, for the reference checks at its end
    for (const auto& change : chunk.changes) {
      written.add(change);
      NetEffect one;
      one.add(change);
      try {
        tx_->exec(apply_group(one, "SAVEPOINT mpf_one; ", /*fast=*/false) +
                  "RELEASE SAVEPOINT mpf_one");
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const std::exception& e) {
        // The failed statement aborted the savepoint; the caller rolls the whole group back.
        const auto* t = by_id_[static_cast<size_t>(change.table_id)];
        std::string key;
        for (const auto& v : change.key) key += (key.empty() ? "" : ",") + v.value_or("NULL");
        failed_at_ = chunk.position;
        return failed_precondition("could not apply transaction " + chunk.position.to_string() +
                                   " from \"" + origin_ + "\": " + static_cast<char>(change.op) +
                                   " on \"" + t->relation + "\" key (" + key + "): " + e.what() +
                                   "\nhint: fix the cause on this node, or skip the transaction "
                                   "with: mpfailover skip " +
                                   chunk.position.to_string() + " --reason TEXT");
      }
    }
    if (!chunk.last) continue;
    // The transaction's deferred checks (foreign keys), once its last change is in: a failure
    // here is this transaction's, e.g. a child row whose parent this node deleted.
    try {
      tx_->exec(references_sql(written) +
                "SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED");
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const std::exception& e) {
      failed_at_ = chunk.position;
      return failed_precondition("could not apply transaction " + chunk.position.to_string() +
                                 " from \"" + origin_ + "\": " + e.what() +
                                 "\nhint: fix the cause on this node (a missing parent row?), or "
                                 "skip the transaction with: mpfailover skip " +
                                 chunk.position.to_string() + " --reason TEXT");
    }
  }
  return Status::ok();
}

Result<Position> PgApplier::apply(const std::vector<TxChunk>& chunks) {
  if (tables_.empty()) return failed_precondition("applier is not bound to an origin");
  failed_at_ = Position{};
  // A resent transaction the target already committed (the ack was lost) is dropped here, so a
  // resend is always harmless: apply is keyed by origin position (docs/design.md §2).
  size_t first_new = 0;
  while (first_new < chunks.size() && chunks[first_new].position <= committed_) ++first_new;
  if (first_new == chunks.size()) return committed_;
  if (first_new == 0) return apply_fresh(chunks);
  return apply_fresh(
      std::vector<TxChunk>(chunks.begin() + static_cast<long>(first_new), chunks.end()));
}

Result<Position> PgApplier::apply_fresh(const std::vector<TxChunk>& chunks) {
  NetEffect net;
  // Skip requests are read at bind: an apply error ends the session, and the next one binds.
  const std::map<Position, std::string> skips = skips_;
  for (const auto& chunk : chunks) {
    if (auto skip = skips.find(chunk.position); skip != skips.end()) {
      try {
        begin_if_needed();
        record_skip(chunk, skip->second);
      } catch (const std::exception& e) {
        reset();
        return unavailable(std::string("could not record a skipped transaction: ") + e.what());
      }
      continue;
    }
    for (const auto& change : chunk.changes) {
      if (change.table_id < 0 || static_cast<size_t>(change.table_id) >= by_id_.size() ||
          by_id_[static_cast<size_t>(change.table_id)] == nullptr) {
        reset();
        const auto s =
            invalid_argument("transaction " + chunk.position.to_string() + " from \"" + origin_ +
                             "\" refers to unknown table " + std::to_string(change.table_id));
        record_failure(chunk.position, s.message());
        return s;
      }
      net.add(change);
    }
  }
  const bool last = chunks.back().last;
  const Position pos = chunks.back().position;
  // One round trip for a group without deletes, two with: the first opens it (BEGIN, unless a
  // split transaction or a skip opened it, and the savepoint every fallback rolls back to) and
  // reads the current versions of the deleted keys; the last carries every write, the deferred
  // foreign-key checks, the origin's position and COMMIT. When the fast upserts find something
  // for last-writer-wins to decide (a row written here, a tombstone), the group is redone from
  // the savepoint with every key looked up; when that fails too (a unique value moved between
  // rows inside the group), change by change. Savepoints by hand: libpqxx 6.4's subtransaction
  // left the transaction aborted after a failed statement.
  bool sent_commit = false;
  try {
    const std::string open = begin_sql() + "SAVEPOINT mpf_group; ";  // begin_sql() sets tx_
    bool open_sent = false;
    if (converts_) {
      // A value this database's encoding cannot represent must fail inside the open group
      // (then the savepoint and the change-by-change replay name its table, key and
      // transaction), not in a string whose BEGIN never ran: one more round trip per group.
      tx_->exec(open);
      open_sent = true;
    }
    for (const bool fast : {true, false}) {
      // After a fast attempt failed, the next groups most likely meet the same rows written
      // here (after a role change every row of the target is): they go straight to the
      // last-writer-wins statements for a while instead of failing and rolling back first.
      if (fast && fast_skips_ > 0) {
        --fast_skips_;
        continue;
      }
      const bool with_open = !std::exchange(open_sent, true);
      try {
        std::string writes = apply_group(net, with_open ? open : std::string(), fast);
        if (last) {
          // Deferred foreign keys checked inside the savepoint, not by COMMIT: an orphan (a
          // child whose parent the other node deleted) must stop apply naming its transaction,
          // not fail the COMMIT as if the database had gone away and be resent for ever.
          writes +=
              references_sql(net) + "SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED; ";
          commit_wait(net);
          writes += position_sql(pos);
          sent_commit = true;
        } else {
          // A split transaction goes on; released so its parts do not nest subtransactions.
          writes += "RELEASE SAVEPOINT mpf_group";
        }
        // Statements after a failing one are not run: a failed write never reaches the COMMIT.
        tx_->exec(writes);
        if (!last) return committed_;
        tx_->commit();  // libpqxx's bookkeeping only: a nontransaction sends nothing
        tx_.reset();
        committed_ = pos;
        return committed_;
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const pqxx::sql_error&) {
        // Back to the savepoint. (Had the COMMIT itself failed, the transaction is over and
        // this fails: apply failed.)
        sent_commit = false;
        if (fast) fast_skips_ = kFastSkipGroups;
        tx_->exec("ROLLBACK TO SAVEPOINT mpf_group");
      }
    }
    // Find out whether only the order inside the group mattered.
    if (auto s = apply_one_by_one(chunks, skips); !s) {
      reset();
      record_failure(failed_at_, s.message());
      return s;
    }
    if (!last) {
      tx_->exec("RELEASE SAVEPOINT mpf_group");
      return committed_;
    }
    commit_wait(net);
  } catch (const pqxx::broken_connection& e) {
    tx_.reset();
    if (sent_commit) return unknown_outcome(std::string("commit outcome unknown: ") + e.what());
    return unavailable(std::string("apply failed: ") + e.what());
  } catch (const std::exception& e) {
    reset();
    return unavailable(std::string("apply failed: ") + e.what());
  }
  // After a replay: one round trip closes the group, as above.
  try {
    tx_->exec(position_sql(pos));
    tx_->commit();  // libpqxx's bookkeeping only: a nontransaction sends nothing
    tx_.reset();
  } catch (const pqxx::broken_connection& e) {
    tx_.reset();
    return unknown_outcome(std::string("commit outcome unknown: ") + e.what());
  } catch (const std::exception& e) {
    // A deferred constraint failing at COMMIT ends the transaction; a failed position write
    // leaves it open and aborted. ROLLBACK covers both (a warning in the first case).
    reset();
    return unavailable(std::string("apply failed: ") + e.what());
  }
  committed_ = pos;
  return committed_;
}

std::string PgApplier::apply_group(const NetEffect& net, const std::string& open, bool fast) {
  // `open` travels with the first version lookup (or with the writes when there is none).
  std::string pending_open = open;
  std::string fast_sql;  // the fast upserts, after every delete
  NetEffect winners;
  struct Lost {
    std::string relation;
    const NetChange* change;
    RowVersion winner;
    RowVersion loser;
    std::optional<std::string> loser_row;  // the local row that lost (JSON), if any
    std::string reason;
  };
  std::vector<Lost> conflicts;
  for (const auto& t : tables_) {
    const auto found = net.tables().find(t->origin_table_id);
    if (found == net.tables().end()) continue;
    // Fast: the table's upserts go without a version lookup, through the upsert that fails
    // unless last-writer-wins had nothing to decide for any of them; deletes (their tombstones
    // and local rows) are looked up.
    // Not fast: the upserts are decided and written by the table's one last-writer-wins
    // statement (lww_upsert_sql), only deletes are looked up here.
    std::vector<const NetChange*> changes;
    std::vector<const NetChange*> fast_rows;
    for (const auto& c : found->second) {
      (c.op != Op::kDelete && !t->fast_upsert_name.empty() ? fast_rows : changes).push_back(&c);
    }
    if (!fast_rows.empty()) {
      const size_t width = fast_rows.front()->image.size();
      std::vector<std::string> params;
      for (size_t col = 0; col < width; ++col) {
        std::vector<Value> column;
        column.reserve(fast_rows.size());
        for (const auto* r : fast_rows) {
          MPF_ASSERT(r->image.size() == width, "row images of one table differ in width");
          column.push_back(r->image[col]);
        }
        params.push_back(pg::array_literal(column));
      }
      if (fast) {
        params.push_back(std::to_string(fast_rows.size()));
        fast_sql += execute_sql(t->fast_upsert_name, params);
      } else {
        std::vector<std::string> hlcs, ops;
        for (const auto* r : fast_rows) {
          hlcs.push_back(std::to_string(r->hlc));
          ops.emplace_back(1, static_cast<char>(r->op));
        }
        params.push_back(pg::array_literal(hlcs));
        params.push_back(pg::array_literal(ops));
        fast_sql += execute_sql(t->lww_upsert_name, params);
      }
    }
    if (changes.empty()) continue;
    std::vector<std::string> params;
    for (size_t k = 0; k < t->key_in_image.size(); ++k) {
      std::vector<Value> column;
      column.reserve(changes.size());
      for (const auto* c : changes) column.push_back(c->key[k]);
      params.push_back(pg::array_literal(column));
    }
    // The last statement's result is the lookup's.
    auto rows = tx_->exec(std::exchange(pending_open, "") + execute_sql(t->versions_name, params));
    MPF_ASSERT(rows.size() == changes.size(), "one version row per key");
    for (size_t i = 0; i < changes.size(); ++i) {
      const NetChange& c = *changes[i];
      const auto& r = rows[static_cast<pqxx::result::size_type>(i)];
      const RowVersion incoming{c.hlc, origin_};
      bool apply = true;
      if (r[0].as<bool>()) {
        const bool from_origin = !r[2].is_null() && r[2].as<int64_t>() == origin_roident_;
        if (!from_origin && !r[1].is_null()) {
          const RowVersion here{r[1].as<int64_t>(), local_node_};
          const std::optional<std::string> row =
              r[3].is_null() ? std::nullopt : std::optional<std::string>(r[3].c_str());
          if (later_wins(incoming, here)) {
            conflicts.push_back({t->relation, &c, incoming, here, row,
                                 std::string(c.op == Op::kDelete ? "delete" : "change") +
                                     " from \"" + origin_ +
                                     "\" is later than the row written here"});
          } else {
            apply = false;
            conflicts.push_back({t->relation, &c, here, incoming, std::nullopt,
                                 "row written here is later than the " +
                                     std::string(c.op == Op::kDelete ? "delete" : "change") +
                                     " from \"" + origin_ + "\""});
          }
        }
      } else if (!r[4].is_null() && r[5].as<std::string>() != origin_) {
        const RowVersion tomb{r[4].as<int64_t>(), r[5].as<std::string>()};
        if (!later_wins(incoming, tomb)) {
          apply = false;
          if (c.op != Op::kDelete) {
            conflicts.push_back(
                {t->relation, &c, tomb, incoming, std::nullopt,
                 "row was deleted here later than the change from \"" + origin_ + "\""});
          }
        } else if (c.op != Op::kDelete) {
          conflicts.push_back(
              {t->relation, &c, incoming, tomb, std::nullopt,
               "change from \"" + origin_ + "\" is later than the delete made here: row restored"});
        }
      }
      if (!apply) continue;
      RowChange rc;
      rc.table_id = t->origin_table_id;
      rc.op = c.op;
      rc.key = c.key;
      rc.image = c.image;
      rc.hlc = c.hlc;
      rc.seq = c.seq;
      winners.add(rc);
    }
  }
  std::string sql = std::move(pending_open) + flush(winners) + fast_sql;

  // Tombstones of the deletes applied, with the origin's timestamp.
  for (const auto& t : tables_) {
    const auto found = winners.tables().find(t->origin_table_id);
    if (found == winners.tables().end()) continue;
    std::vector<std::string> hlcs;
    std::vector<std::vector<Value>> keys(t->key_in_image.size());
    for (const auto& c : found->second) {
      if (c.op != Op::kDelete) continue;
      hlcs.push_back(std::to_string(c.hlc));
      for (size_t k = 0; k < keys.size(); ++k) keys[k].push_back(c.key[k]);
    }
    if (hlcs.empty()) continue;
    std::vector<std::string> params{t->relation, origin_, pg::array_literal(hlcs)};
    for (const auto& k : keys) params.push_back(pg::array_literal(k));
    sql += execute_sql(t->tombstone_name, params);
  }

  for (const auto& l : conflicts) {
    const bool remote_lost = l.loser.origin == origin_;
    sql +=
        "INSERT INTO mpfailover.conflict (relation, key, kind, winner_origin, winner_hlc, "
        "loser_origin, loser_hlc, loser_op, loser_image, loser_row, reason) VALUES (" +
        conn_->quote(l.relation) + ", " + conn_->quote(pg::array_literal(l.change->key)) +
        "::text[], 'lww', " + conn_->quote(l.winner.origin) + ", " + std::to_string(l.winner.hlc) +
        ", " + conn_->quote(l.loser.origin) + ", " + std::to_string(l.loser.hlc) + ", " +
        conn_->quote(remote_lost ? std::string(1, static_cast<char>(l.change->op))
                                 : std::string("U")) +
        ", " +
        (remote_lost ? conn_->quote(pg::array_literal(l.change->image)) + "::text[]"
                     : std::string("NULL")) +
        ", " + (l.loser_row ? conn_->quote(*l.loser_row) + "::jsonb" : std::string("NULL")) + ", " +
        conn_->quote(l.reason) + "); ";
  }
  return sql;
}

void PgApplier::commit_wait(const NetEffect& net) {
  const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const int64_t ahead = net.max_hlc() - now_us;
  if (ahead <= 0) return;
  if (ahead > std::chrono::duration_cast<std::chrono::microseconds>(kMaxCommitWait).count()) {
    spdlog::warn(
        "ClockSkew origin={} ahead_ms={} reason=\"the origin's clock is ahead of this "
        "node's by more than {} ms; local changes made now may lose to older ones\"",
        origin_, ahead / 1000,
        std::chrono::duration_cast<std::chrono::milliseconds>(kMaxCommitWait).count());
    std::this_thread::sleep_for(kMaxCommitWait);
    return;
  }
  std::this_thread::sleep_for(std::chrono::microseconds(ahead + 1));
}

void PgApplier::record_skip(const TxChunk& chunk, const std::string& reason) {
  for (const auto& change : chunk.changes) {
    const auto* t = by_id_.at(static_cast<size_t>(change.table_id));
    auto insert = [&](bool escaped) {
      // Each element escaped, then the array literal built (which escapes the backslashes):
      // escaping the literal instead lost them to the array syntax.
      auto text = [&](const auto& items) {
        if (!escaped) return pg::array_literal(items);
        std::vector<std::optional<std::string>> out;
        for (const auto& item : items) {
          const std::optional<std::string> v = item;
          out.push_back(v ? std::optional<std::string>(escape_non_ascii(*v)) : std::nullopt);
        }
        return pg::array_literal(out);
      };
      tx_->exec_params(
          "INSERT INTO mpfailover.conflict (relation, key, kind, loser_origin, loser_hlc, "
          "loser_op, loser_image, reason) VALUES ($1, $2::text[], 'skip', $3, $4, $5, $6::text[], "
          "$7)",
          t ? t->relation : std::string("table ") + std::to_string(change.table_id),
          text(change.key), origin_, change.hlc, std::string(1, static_cast<char>(change.op)),
          change.op == Op::kDelete ? std::optional<std::string>()
                                   : std::optional<std::string>(text(change.image)),
          "skipped transaction " + chunk.position.to_string() + " from \"" + origin_ +
              "\": " + reason +
              (escaped ? " (key and image escaped as in U&'' strings: this database's encoding "
                         "cannot represent them)"
                       : ""));
    };
    if (!converts_) {
      insert(false);
      continue;
    }
    // The skipped change is often the one this database's encoding cannot represent: then it
    // is recorded escaped, never lost.
    tx_->exec("SAVEPOINT mpf_skip");
    try {
      insert(false);
      tx_->exec("RELEASE SAVEPOINT mpf_skip");
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != "22P05" && e.sqlstate() != "22021") throw;  // untranslatable
      tx_->exec("ROLLBACK TO SAVEPOINT mpf_skip");
      insert(true);
    }
  }
  if (chunk.last) {
    tx_->exec_params(
        "UPDATE mpfailover.skip_request SET done_at = now() WHERE origin = $1 AND tick = $2 "
        "AND seq = $3",
        origin_, chunk.position.tick, chunk.position.seq);
    spdlog::warn("TransactionSkipped origin={} position={} reason=\"{}\"", origin_,
                 chunk.position.to_string(), reason);
  }
}

}  // namespace mpf::replicator
