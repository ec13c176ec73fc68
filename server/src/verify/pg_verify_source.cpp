// NOTES: why verify's queries are shaped as they are.
//
// Gentle on a live database: each query reads at most limit + 1 rows of one primary-key range
// (an index range scan, AccessShareLock only, never a table-wide snapshot held open), in a
// read-only transaction of its own per request batch; lock_timeout keeps a verify from queueing
// behind DDL and statement_timeout bounds any surprise. The hash of a range is the xor of its
// rows' hashes, so no sort beyond the index order is needed, and a range with more rows than
// the limit says so (count(*) over the limit + 1 rows read) instead of reading on.
#include "pg_verify_source.hpp"

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <pqxx/pqxx>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/security.hpp>
#include <mpf/replicator/wire.hpp>
#include <mpf/schema/migrations.hpp>

namespace mpf::server::verify {

struct PgVerifySource::TableSql {
  replicator::TableDef def;
  std::string from;                    // "schema"."table" t
  std::vector<std::string> key_cols;   // t."k1", ...
  std::vector<std::string> key_types;  // format_type text
  std::string hash;                    // 64-bit row hash expression
  std::string key_text;                // t."k1"::text AS _t0, ...
  std::string order;                   // t."k1", t."k2"
};

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string ident(pqxx::connection& c, const std::string& name) { return c.quote_name(name); }

std::string qualified(pqxx::connection& c, const std::string& relation) {
  const auto dot = relation.find('.');
  if (dot == std::string::npos) return ident(c, relation);
  return ident(c, relation.substr(0, dot)) + "." + ident(c, relation.substr(dot + 1));
}

// (t.k1, t.k2) OP ('v1'::type1, 'v2'::type2)
std::string key_cmp(pqxx::connection& c, const std::vector<std::string>& cols,
                    const std::vector<std::string>& types, const std::string& op, const Key& key) {
  std::vector<std::string> lits;
  for (size_t i = 0; i < key.size(); ++i) lits.push_back(c.quote(key[i]) + "::" + types[i]);
  return "(" + join(cols, ", ") + ") " + op + " (" + join(lits, ", ") + ")";
}

uint64_t as_u64(const pqxx::field& f) { return static_cast<uint64_t>(f.as<int64_t>()); }

}  // namespace

std::string text_array_literal(const std::vector<std::optional<std::string>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ",";
    if (!values[i]) {
      out += "NULL";
      continue;
    }
    out += "\"";
    for (char ch : *values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += "\"";
  }
  return out + "}";
}

std::string key_fingerprint(const std::string& z85) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : z85) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

PgVerifySource::PgVerifySource(std::string conninfo) : conninfo_(std::move(conninfo)) {}
PgVerifySource::~PgVerifySource() = default;

void PgVerifySource::reset() {
  conn_.reset();
  sql_.clear();
}

Result<pqxx::connection*> PgVerifySource::connection() {
  if (conn_ && conn_->is_open()) return conn_.get();
  reset();
  try {
    conn_ = std::make_unique<pqxx::connection>(conninfo_);
    conn_->set_client_encoding("UTF8");  // rows are compared as the characters they hold
    pqxx::nontransaction tx(*conn_);
    // Pinned text output: equal rows hash equal on both nodes (see the header).
    tx.exec(
        "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; "
        "SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET lock_timeout = '2s'; "
        "SET statement_timeout = '60s'; SET application_name = 'mpfailover verify'");
    return conn_.get();
  } catch (const std::exception& e) {
    reset();
    return unavailable(std::string("could not connect to this node's database: ") + e.what());
  }
}

Result<std::vector<replicator::TableDef>> PgVerifySource::tables() {
  auto c = connection();
  if (!c) return c.status();
  auto t = replicator::installed_tables(**c);
  if (!t) reset();
  return t;
}

Result<const PgVerifySource::TableSql*> PgVerifySource::table_sql(const std::string& relation) {
  for (const auto& s : sql_) {
    if (s->def.relation == relation) return s.get();
  }
  auto defs = tables();
  if (!defs) return defs.status();
  auto c = connection();
  if (!c) return c.status();
  for (const auto& d : *defs) {
    if (d.relation != relation) continue;
    auto s = std::make_unique<TableSql>();
    s->def = d;
    s->from = qualified(**c, d.relation) + " t";
    std::vector<std::string> cols;
    for (const auto& col : d.columns) cols.push_back("t." + ident(**c, col));
    std::vector<std::string> texts;
    for (size_t i = 0; i < d.key_columns.size(); ++i) {
      const auto& k = d.key_columns[i];
      size_t pos = 0;
      while (pos < d.columns.size() && d.columns[pos] != k) ++pos;
      if (pos == d.columns.size()) {
        return internal_error("key column \"" + k + "\" of \"" + relation + "\" is not a column");
      }
      s->key_cols.push_back("t." + ident(**c, k));
      s->key_types.push_back(d.column_types[pos]);
      texts.push_back("t." + ident(**c, k) + "::text AS _t" + std::to_string(i));
    }
    // The md5 of the row's UTF8 bytes, not of the database's own: a LATIN1 'Ã¶' and a UTF8
    // 'ö' are the same two bytes, and must not hash equal. (In a UTF8 database convert_to
    // changes nothing, so the hashes are those of earlier versions.)
    s->hash = "('x' || left(md5(convert_to(ROW(" + join(cols, ", ") +
              ")::text, 'UTF8')), 16))::bit(64)::bigint";
    s->key_text = join(texts, ", ");
    s->order = join(s->key_cols, ", ");
    sql_.push_back(std::move(s));
    return sql_.back().get();
  }
  return not_found("table \"" + relation + "\" is not replicated on this node");
}

namespace {

std::string where(pqxx::connection& c, const std::vector<std::string>& cols,
                  const std::vector<std::string>& types, const Range& r) {
  std::vector<std::string> conds;
  if (r.lo) conds.push_back(key_cmp(c, cols, types, ">", *r.lo));
  if (r.hi) conds.push_back(key_cmp(c, cols, types, "<=", *r.hi));
  return conds.empty() ? std::string() : " WHERE " + join(conds, " AND ");
}

Status check_key(const Key& k, size_t arity, const std::string& relation) {
  if (k.size() != arity) {
    return invalid_argument("key of " + std::to_string(k.size()) + " columns for \"" + relation +
                            "\", whose key has " + std::to_string(arity));
  }
  return Status::ok();
}

Status check_range(const Range& r, size_t arity, const std::string& relation) {
  if (r.lo) {
    if (auto s = check_key(*r.lo, arity, relation); !s) return s;
  }
  if (r.hi) return check_key(*r.hi, arity, relation);
  return Status::ok();
}

}  // namespace

Result<std::vector<Summary>> PgVerifySource::summarize(
    const std::string& relation, const std::vector<SummarizeRequest>& requests) {
  auto s = table_sql(relation);
  if (!s) return s.status();
  const TableSql& t = **s;
  auto c = connection();
  if (!c) return c.status();
  std::vector<Summary> out;
  try {
    pqxx::read_transaction tx(**c);
    for (const auto& q : requests) {
      if (auto st = check_range(q.range, t.key_cols.size(), relation); !st) return st;
      std::vector<std::string> lasts;
      std::vector<std::string> native;
      for (size_t i = 0; i < t.key_cols.size(); ++i) {
        lasts.push_back("(array_agg(_t" + std::to_string(i) + " ORDER BY rn DESC))[1]");
        native.push_back("_k" + std::to_string(i));
      }
      std::vector<std::string> native_sel;
      for (size_t i = 0; i < t.key_cols.size(); ++i) {
        native_sel.push_back(t.key_cols[i] + " AS _k" + std::to_string(i));
      }
      const std::string limit = std::to_string(q.limit);
      const std::string sql =
          "SELECT count(*), bit_xor(_h), max(_total), " + join(lasts, ", ") +
          " FROM (SELECT s1.*, ntile(" + std::to_string(q.parts) +
          ") OVER (ORDER BY rn) AS _b FROM (SELECT s0.*, row_number() OVER (ORDER BY " +
          join(native, ", ") + ") AS rn, count(*) OVER () AS _total FROM (SELECT " +
          join(native_sel, ", ") + ", " + t.key_text + ", " + t.hash + " AS _h FROM " + t.from +
          where(**c, t.key_cols, t.key_types, q.range) + " ORDER BY " + t.order + " LIMIT " +
          std::to_string(q.limit + 1) + ") s0) s1 WHERE rn <= " + limit +
          ") s2 GROUP BY _b ORDER BY _b";
      auto r = tx.exec(sql);
      Summary sum;
      for (const auto& row : r) {
        Bucket b;
        b.count = as_u64(row[0]);
        b.hash = as_u64(row[1]);
        if (row[2].as<int64_t>() > static_cast<int64_t>(q.limit)) sum.complete = false;
        for (size_t i = 0; i < t.key_cols.size(); ++i)
          b.last.push_back(row[static_cast<pqxx::row::size_type>(3 + i)].as<std::string>());
        sum.buckets.push_back(std::move(b));
      }
      out.push_back(std::move(sum));
    }
    return out;
  } catch (const pqxx::broken_connection& e) {
    reset();
    return unavailable(std::string("lost this node's database: ") + e.what());
  } catch (const std::exception& e) {
    return unavailable("could not hash ranges of \"" + relation + "\": " + e.what());
  }
}

Result<std::vector<RowList>> PgVerifySource::rows(const std::string& relation,
                                                  const std::vector<RowsRequest>& requests) {
  auto s = table_sql(relation);
  if (!s) return s.status();
  const TableSql& t = **s;
  auto c = connection();
  if (!c) return c.status();
  std::vector<RowList> out;
  try {
    pqxx::read_transaction tx(**c);
    for (const auto& q : requests) {
      if (auto st = check_range(q.range, t.key_cols.size(), relation); !st) return st;
      auto r = tx.exec("SELECT " + t.key_text + ", " + t.hash + " FROM " + t.from +
                       where(**c, t.key_cols, t.key_types, q.range) + " ORDER BY " + t.order +
                       " LIMIT " + std::to_string(q.limit + 1));
      RowList l;
      for (const auto& row : r) {
        if (l.rows.size() == q.limit) {
          l.complete = false;
          break;
        }
        RowHash h;
        for (size_t i = 0; i < t.key_cols.size(); ++i)
          h.key.push_back(row[static_cast<pqxx::row::size_type>(i)].as<std::string>());
        h.hash = as_u64(row[static_cast<pqxx::row::size_type>(t.key_cols.size())]);
        l.rows.push_back(std::move(h));
      }
      out.push_back(std::move(l));
    }
    return out;
  } catch (const pqxx::broken_connection& e) {
    reset();
    return unavailable(std::string("lost this node's database: ") + e.what());
  } catch (const std::exception& e) {
    return unavailable("could not list keys of \"" + relation + "\": " + e.what());
  }
}

Result<std::vector<FetchedRow>> PgVerifySource::fetch(const std::string& relation,
                                                      const std::vector<Key>& keys) {
  auto s = table_sql(relation);
  if (!s) return s.status();
  const TableSql& t = **s;
  auto c = connection();
  if (!c) return c.status();
  std::vector<std::string> cols;
  for (const auto& col : t.def.columns) cols.push_back("t." + ident(**c, col) + "::text");
  std::vector<FetchedRow> out;
  try {
    pqxx::read_transaction tx(**c);
    const bool ts =
        tx.exec("SELECT current_setting('track_commit_timestamp') = 'on'")[0][0].as<bool>();
    const std::string commit =
        ts ? "coalesce((extract(epoch FROM pg_xact_commit_timestamp(t.xmin)) * 1000000)::bigint, "
             "0)"
           : "0::bigint";
    for (const auto& k : keys) {
      if (auto st = check_key(k, t.key_cols.size(), relation); !st) return st;
      auto r = tx.exec("SELECT " + commit + ", " + join(cols, ", ") + " FROM " + t.from +
                       " WHERE " + key_cmp(**c, t.key_cols, t.key_types, "=", k));
      FetchedRow f;
      f.key = k;
      if (!r.empty()) {
        f.present = true;
        f.commit_us = r[0][0].as<int64_t>();
        for (size_t i = 0; i < cols.size(); ++i) {
          const auto field = r[0][static_cast<pqxx::row::size_type>(1 + i)];
          if (field.is_null()) {
            f.values.emplace_back();
          } else {
            f.values.emplace_back(field.as<std::string>());
          }
        }
      }
      out.push_back(std::move(f));
    }
    return out;
  } catch (const pqxx::broken_connection& e) {
    reset();
    return unavailable(std::string("lost this node's database: ") + e.what());
  } catch (const std::exception& e) {
    return unavailable("could not read rows of \"" + relation + "\": " + e.what());
  }
}

Result<uint64_t> PgVerifySource::estimated_rows(const std::string& relation) {
  auto c = connection();
  if (!c) return c.status();
  try {
    pqxx::read_transaction tx(**c);
    auto r = tx.exec("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = " +
                     tx.quote(qualified(**c, relation)) + "::regclass");
    return r.empty() ? uint64_t{0} : as_u64(r[0][0]);
  } catch (const std::exception& e) {
    return unavailable(std::string("could not estimate rows: ") + e.what());
  }
}

Result<Facts> local_facts(const Config& config, PgVerifySource& source) {
  std::map<std::string, std::string> f;
  f["node.name"] = config.node.name;
  f["peer.name"] = config.peer.name;
  f["peer.address"] = config.peer.address;
  f["peer.port"] = std::to_string(config.peer.port ? config.peer.port : config.replication.port);
  f["replication.port"] = std::to_string(config.replication.port);
  f["replication.listen"] = config.replication.listen;
  f["replication.tables"] = join(config.replication.tables, ", ");
  f["security.mode"] = config.security.mode;
  f["heartbeat.interval_ms"] = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(config.heartbeat.interval).count());
  // What this node offers (replication.max_protocol_version included) and runs: check compares
  // them by compatibility, not equality, so a rolling upgrade passes (check_facts.hpp).
  f["protocol.replication"] = std::to_string(replicator::wire::kMinProtocolVersion) + "-" +
                              std::to_string(config.protocol_max());
  f["software.version"] = software_version();
  f["protocol.verify"] = std::to_string(kVerifyProtocol);
  // Public keys only, as fingerprints; a key file that cannot be read is a fact too.
  auto fp = [](const std::string& path) -> std::string {
    if (path.empty()) return "(none)";
    auto k = replicator::read_key_file(path, false);
    return k ? key_fingerprint(*k) : "(unreadable: " + path + ")";
  };
  f["key.public"] = fp(config.security.public_key_file);
  f["key.peer_public"] = fp(config.security.peer_public_key_file);
  auto c = source.connection();
  if (!c) return c.status();
  try {
    auto v = schema::installed_version(**c, "catalog");
    f["catalog.version"] = v ? std::to_string(*v) : "(none)";
    pqxx::read_transaction tx(**c);
    auto r = tx.exec(
        "SELECT datcollate || '/' || datctype, current_setting('server_version_num')::int / 10000, "
        "current_setting('track_commit_timestamp'), pg_encoding_to_char(encoding) "
        "FROM pg_database WHERE datname = current_database()");
    f["database.collation"] = r[0][0].as<std::string>();
    f["database.encoding"] = r[0][3].as<std::string>();
    f["postgresql.major"] = r[0][1].as<std::string>();
    f["postgresql.track_commit_timestamp"] = r[0][2].as<std::string>();
  } catch (const std::exception& e) {
    return unavailable(std::string("could not read this node's database facts: ") + e.what());
  }
  auto tables = source.tables();
  if (!tables) return tables.status();
  for (const auto& t : *tables) {
    std::vector<std::string> cols;
    for (size_t i = 0; i < t.columns.size(); ++i)
      cols.push_back(t.columns[i] + " " + t.column_types[i]);
    f["table." + t.relation] = join(cols, ", ") + "; key (" + join(t.key_columns, ", ") + ")";
  }
  return Facts(f.begin(), f.end());
}

}  // namespace mpf::server::verify
