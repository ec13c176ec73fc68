// What the capture log holds and the reader returns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <mpf/core/position.hpp>

namespace mpf::replicator {

// A column value in PostgreSQL's text form; nullopt is SQL NULL.
using Value = std::optional<std::string>;

// A replicated table as the capture trigger was generated for it.
struct TableDef {
  int32_t table_id = 0;
  std::string relation;  // schema-qualified: "public.users"
  std::vector<std::string> key_columns;
  std::vector<std::string> columns;
  std::vector<std::string> column_types;  // format_type() text, e.g. "timestamp with time zone"
};

enum class Op : char { kInsert = 'I', kUpdate = 'U', kDelete = 'D' };

struct RowChange {
  int32_t table_id = 0;
  Op op = Op::kInsert;
  int64_t seq = 0;           // change number on the origin
  int64_t hlc = 0;           // conflict timestamp, microseconds since the Unix epoch
  std::vector<Value> key;    // key_columns order
  std::vector<Value> image;  // columns order; empty for deletes
};

// One source transaction, or one part of a transaction too large to hold at once. Parts of a
// transaction come in order, share its position, and the one with `last` set completes it.
struct TxChunk {
  Position position;
  uint64_t txid = 0;
  std::string origin;
  int64_t total_changes = 0;  // in the whole transaction
  int32_t part = 0;
  bool last = true;
  std::vector<RowChange> changes;
};

struct ChangeBatch {
  std::vector<TxChunk> chunks;

  size_t change_count() const {
    size_t n = 0;
    for (const auto& c : chunks) n += c.changes.size();
    return n;
  }
  bool empty() const { return chunks.empty(); }
};

}  // namespace mpf::replicator
