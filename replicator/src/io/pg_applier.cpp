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
// so an acknowledgement sent after apply() returns is durable (NOTES.md §2).
#include <algorithm>
#include <map>
#include <set>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_applier.hpp>

#include "pg_text.hpp"

namespace mpf::replicator {
namespace {

std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string quote_relation(const std::string& relation) {
  const auto dot = relation.find('.');
  return quote_ident(relation.substr(0, dot)) + "." + quote_ident(relation.substr(dot + 1));
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

struct PgApplier::BoundTable {
  int32_t origin_table_id = 0;
  std::string relation;
  std::vector<size_t> key_in_image;  // positions of the key columns in the origin's image
  std::string delete_sql;            // $1..$k: key columns as text[]
  std::string upsert_sql;            // $1..$n: image columns as text[]
};

PgApplier::PgApplier(std::unique_ptr<pqxx::connection> conn) : conn_(std::move(conn)) {}

PgApplier::~PgApplier() { reset(); }

Result<std::unique_ptr<PgApplier>> PgApplier::open(const std::string& conninfo) {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo);
    return std::unique_ptr<PgApplier>(new PgApplier(std::move(conn)));
  } catch (const std::exception& e) {
    return unavailable(std::string("could not connect the applier to the database: ") + e.what());
  }
}

void PgApplier::reset() {
  if (!tx_) return;
  try {
    tx_->abort();
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
  std::vector<std::string> names;
  for (const auto& t : origin_tables) names.push_back(t.relation);
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
    bt->upsert_sql = "INSERT INTO " + rel + " (" + join(cols) + ") SELECT " + join(selects) +
                     " FROM unnest(" + join(uparams) + ") AS u(" + join(ualiases) +
                     ") ON CONFLICT (" + join(keys) + ") DO " +
                     (sets.empty() ? std::string("NOTHING") : "UPDATE SET " + join(sets));
    tables_.push_back(std::move(bt));
  }
  std::stable_sort(tables_.begin(), tables_.end(), [&](const auto& a, const auto& b) {
    return depth[a->relation] < depth[b->relation];
  });
  by_id_.assign(static_cast<size_t>(max_id) + 1, nullptr);
  for (auto& t : tables_) by_id_[static_cast<size_t>(t->origin_table_id)] = t.get();
  auto pos = applied_position();
  if (!pos) return pos.status();
  committed_ = *pos;
  return Status::ok();
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

Status PgApplier::begin_if_needed() {
  if (tx_) return Status::ok();
  tx_ = std::make_unique<pqxx::work>(*conn_);
  tx_->exec(std::string("SET LOCAL ") + kApplyingSetting + " = 'on'");
  tx_->exec("SET CONSTRAINTS ALL DEFERRED");
  return Status::ok();
}

void PgApplier::flush(const NetEffect& net) {
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
  // Children first for deletes, parents first for upserts.
  for (auto it = tables_.rbegin(); it != tables_.rend(); ++it) {
    const auto found = net.tables().find((*it)->origin_table_id);
    if (found == net.tables().end()) continue;
    std::vector<const NetChange*> deletes;
    for (const auto& c : found->second)
      if (c.op == Op::kDelete) deletes.push_back(&c);
    if (deletes.empty()) continue;
    std::vector<size_t> pick((*it)->key_in_image.size());
    auto params = column_arrays(deletes, pick, /*from_key=*/true);
    tx_->exec_params((*it)->delete_sql, pqxx::prepare::make_dynamic_params(params));
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
    auto params = column_arrays(upserts, pick, /*from_key=*/false);
    tx_->exec_params(t->upsert_sql, pqxx::prepare::make_dynamic_params(params));
  }
}

Status PgApplier::apply_one_by_one(const std::vector<TxChunk>& chunks) {
  for (const auto& chunk : chunks) {
    for (const auto& change : chunk.changes) {
      NetEffect one;
      one.add(change);
      try {
        tx_->exec("SAVEPOINT mpf_one");
        flush(one);
        tx_->exec("RELEASE SAVEPOINT mpf_one");
      } catch (const pqxx::broken_connection&) {
        throw;
      } catch (const std::exception& e) {
        // The failed statement aborted the savepoint; the caller rolls the whole group back.
        const auto* t = by_id_[static_cast<size_t>(change.table_id)];
        std::string key;
        for (const auto& v : change.key) key += (key.empty() ? "" : ",") + v.value_or("NULL");
        return failed_precondition("could not apply transaction " + chunk.position.to_string() +
                                   " from \"" + origin_ + "\": " + static_cast<char>(change.op) +
                                   " on \"" + t->relation + "\" key (" + key + "): " + e.what());
      }
    }
  }
  return Status::ok();
}

Result<Position> PgApplier::apply(const std::vector<TxChunk>& chunks) {
  if (tables_.empty()) return failed_precondition("applier is not bound to an origin");
  // A resent transaction the target already committed (the ack was lost) is dropped here, so a
  // resend is always harmless: apply is keyed by origin position (NOTES.md §2).
  size_t first_new = 0;
  while (first_new < chunks.size() && chunks[first_new].position <= committed_) ++first_new;
  if (first_new == chunks.size()) return committed_;
  if (first_new == 0) return apply_fresh(chunks);
  return apply_fresh(
      std::vector<TxChunk>(chunks.begin() + static_cast<long>(first_new), chunks.end()));
}

Result<Position> PgApplier::apply_fresh(const std::vector<TxChunk>& chunks) {
  NetEffect net;
  for (const auto& chunk : chunks) {
    for (const auto& change : chunk.changes) {
      if (change.table_id < 0 || static_cast<size_t>(change.table_id) >= by_id_.size() ||
          by_id_[static_cast<size_t>(change.table_id)] == nullptr) {
        reset();
        return invalid_argument("transaction " + chunk.position.to_string() + " from \"" + origin_ +
                                "\" refers to unknown table " + std::to_string(change.table_id));
      }
      net.add(change);
    }
  }
  try {
    if (auto s = begin_if_needed(); !s) return s;
    // Savepoints by hand: libpqxx 6.4's subtransaction left the transaction aborted after a
    // failed statement.
    try {
      tx_->exec("SAVEPOINT mpf_group");
      flush(net);
      tx_->exec("RELEASE SAVEPOINT mpf_group");
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error&) {
      // Back to the savepoint; find out whether only the order inside the group mattered.
      tx_->exec("ROLLBACK TO SAVEPOINT mpf_group");
      if (auto s = apply_one_by_one(chunks); !s) {
        reset();
        return s;
      }
    }
    if (!chunks.back().last) return committed_;  // a split transaction goes on
    const Position pos = chunks.back().position;
    tx_->exec_params(
        "INSERT INTO mpfailover.applied_position (origin, tick, seq) VALUES ($1, $2, $3) "
        "ON CONFLICT (origin) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
        "applied_at = now()",
        origin_, pos.tick, pos.seq);
    tx_->commit();
    tx_.reset();
    committed_ = pos;
    return committed_;
  } catch (const pqxx::in_doubt_error& e) {
    tx_.reset();
    return unknown_outcome(std::string("commit outcome unknown: ") + e.what());
  } catch (const std::exception& e) {
    tx_.reset();
    return unavailable(std::string("apply failed: ") + e.what());
  }
}

}  // namespace mpf::replicator
