// Last writer wins (docs/design.md §4): the order of two versions of one row made on different
// nodes. Pure. A tie in timestamp is broken by node name, so both nodes pick the same winner.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>

namespace mpf::replicator {

struct RowVersion {
  int64_t hlc = 0;     // commit timestamp, microseconds since the Unix epoch
  std::string origin;  // node name
};

// True when `incoming` must replace `existing`.
inline bool later_wins(const RowVersion& incoming, const RowVersion& existing) {
  return std::tie(incoming.hlc, incoming.origin) > std::tie(existing.hlc, existing.origin);
}

}  // namespace mpf::replicator
