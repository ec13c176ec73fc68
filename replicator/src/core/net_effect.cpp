#include <algorithm>

#include <mpf/replicator/net_effect.hpp>

namespace mpf::replicator {

std::string NetEffect::key_string(const std::vector<Value>& key) {
  // Length-prefixed, so ("a,b") and ("a", "b") never collide; NULL is distinct from "".
  std::string out;
  for (const auto& v : key) {
    if (!v) {
      out += "N;";
      continue;
    }
    out += std::to_string(v->size()) + ":" + *v + ";";
  }
  return out;
}

void NetEffect::add(const RowChange& change) {
  ++added_;
  max_hlc_ = std::max(max_hlc_, change.hlc);
  auto& list = tables_[change.table_id];
  const std::string k = std::to_string(change.table_id) + "/" + key_string(change.key);
  NetChange net{change.op, change.key, change.image, change.hlc, change.seq};
  auto it = index_.find(k);
  if (it == index_.end()) {
    index_.emplace(k, list.size());
    list.push_back(std::move(net));
  } else {
    list[it->second] = std::move(net);
  }
}

void NetEffect::clear() {
  tables_.clear();
  index_.clear();
  added_ = 0;
  max_hlc_ = 0;
}

}  // namespace mpf::replicator
