// A position in one node's change stream.
//
// Positions come from the reader's snapshot windows (docs/design.md §1): `tick` numbers the window
// in which a source transaction became visible, `seq` is that transaction's last change number.
// Ordering by (tick, seq) is commit-consistent: a transaction that touched a row after another
// committed always sorts after it. Stored with the applied data on the target (docs/design.md §2).
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace mpf {

struct Position {
  int64_t tick = 0;
  int64_t seq = 0;

  auto operator<=>(const Position&) const = default;
  bool is_zero() const { return tick == 0 && seq == 0; }
  std::string to_string() const { return std::to_string(tick) + "/" + std::to_string(seq); }
};

using NodeName = std::string;
using Epoch = int64_t;

}  // namespace mpf
