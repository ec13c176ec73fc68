// Net effect of a group of changes applied in one target transaction (docs/design.md §9): per table
// and key only the last change matters, an image to upsert or a delete. Pure.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <mpf/replicator/change.hpp>

namespace mpf::replicator {

struct NetChange {
  Op op = Op::kUpdate;  // kDelete, or kInsert/kUpdate meaning "upsert this image"
  std::vector<Value> key;
  std::vector<Value> image;
  int64_t hlc = 0;
  int64_t seq = 0;
};

class NetEffect {
 public:
  // REQUIRES: changes are added in their commit-consistent order.
  void add(const RowChange& change);
  void clear();
  bool empty() const { return tables_.empty(); }
  size_t changes_added() const { return added_; }
  int64_t max_hlc() const { return max_hlc_; }

  // table_id -> the surviving changes, in first-touched order.
  const std::map<int32_t, std::vector<NetChange>>& tables() const { return tables_; }

 private:
  static std::string key_string(const std::vector<Value>& key);

  std::map<int32_t, std::vector<NetChange>> tables_;
  std::unordered_map<std::string, size_t> index_;  // table/key -> position in tables_[table]
  size_t added_ = 0;
  int64_t max_hlc_ = 0;
};

}  // namespace mpf::replicator
