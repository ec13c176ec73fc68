// One node's side of verify over its own database: answers the narrowing core's requests
// (summarize key ranges, list key hashes), fetches whole rows for a repair, and collects the
// configuration facts `check` compares.
//
// Row hash: the first 64 bits of md5 of ROW(columns in catalog order)::text, with the text
// output pinned (DateStyle ISO, IntervalStyle postgres, extra_float_digits 3, TimeZone UTC,
// bytea hex), so equal rows hash equal on both nodes whatever their servers' defaults. Keys go
// back to SQL as literals cast to the key columns' types, and ranges are row comparisons on the
// primary key, so every query is an index range scan bounded by LIMIT.
//
// Thread safety: none; one instance per thread (it owns one connection).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <pqxx/connection>

#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/verify/check_facts.hpp>
#include <mpf/server/verify/verify_codec.hpp>

namespace mpf::server::verify {

class PgVerifySource {
 public:
  explicit PgVerifySource(std::string conninfo);
  ~PgVerifySource();

  // The replicated tables as the catalog records them (active ones, in table id order).
  Result<std::vector<replicator::TableDef>> tables();
  Result<std::vector<Summary>> summarize(const std::string& relation,
                                         const std::vector<SummarizeRequest>& requests);
  Result<std::vector<RowList>> rows(const std::string& relation,
                                    const std::vector<RowsRequest>& requests);
  Result<std::vector<FetchedRow>> fetch(const std::string& relation, const std::vector<Key>& keys);
  // pg_class.reltuples: for progress only.
  Result<uint64_t> estimated_rows(const std::string& relation);

  // The connection (opened on first use), for the repair's writes. nullptr when it fails.
  Result<pqxx::connection*> connection();

 private:
  struct TableSql;
  Result<const TableSql*> table_sql(const std::string& relation);
  void reset();

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
  std::vector<std::unique_ptr<TableSql>> sql_;
};

// This node's facts for `check` (node, peer, ports, key fingerprints, versions, tables).
Result<Facts> local_facts(const Config& config, PgVerifySource& source);

// "fnv64:0123456789abcdef" of a Z85 public key: enough to compare, never the key itself.
std::string key_fingerprint(const std::string& z85);

// The row as text for a repair record or SQL literal list.
std::string text_array_literal(const std::vector<std::optional<std::string>>& values);

}  // namespace mpf::server::verify
