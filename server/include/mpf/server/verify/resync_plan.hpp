// `mpfailover resync`: the pure arithmetic of the copy (chunk budgets, where this node's own
// change log resumes, when catch-up is done). No database, no sockets, no clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mpf/core/position.hpp>

namespace mpf::server::verify {

// Bounds one snapshot chunk: at most `max_rows` rows and, past the first row, at most
// `max_bytes` of values, so a chunk's frame stays under the channel's frame limit whatever the
// rows hold (a single row larger than the budget still goes, alone).
class ChunkBudget {
 public:
  ChunkBudget(size_t max_rows, size_t max_bytes) : max_rows_(max_rows), max_bytes_(max_bytes) {}
  // Whether a row of `bytes` may join the chunk; counts it when it may.
  bool take(size_t bytes) {
    if (rows_ > 0 && (rows_ >= max_rows_ || bytes_ + bytes > max_bytes_)) return false;
    ++rows_;
    bytes_ += bytes;
    return true;
  }
  bool full() const { return rows_ >= max_rows_ || bytes_ >= max_bytes_; }
  size_t rows() const { return rows_; }
  size_t bytes() const { return bytes_; }

 private:
  size_t max_rows_;
  size_t max_bytes_;
  size_t rows_ = 0;
  size_t bytes_ = 0;
};

// The active's snapshot boundary: the snapshot was recorded as tick `tick` of the active's
// change stream, whose window `tick` (transactions visible in it and not in tick - 1) has its
// last change number `window_max_seq` (0 when the window is empty). Every transaction of the
// snapshot is at or before the returned position, every later one after it.
inline Position snapshot_position(int64_t tick, int64_t window_max_seq) {
  return Position{tick, window_max_seq > 0 ? window_max_seq : 0};
}

// The ticks this node's own log restarts from after the copy, all with the copy's snapshot, as
// the inclusive range [first, last]. The active resumes this node's stream just after
// `peer_applied` (its applied position for this node), so windows peer_applied.tick onwards must
// be empty up to the last tick, and every later change land after it. A reader resuming after
// (t, s) reads window t (between ticks t-1 and t), after 0/0 window 1 (after tick 0). Tick ids
// never go below `newest_local_tick`: the shipper's reader remembers the newest tick it saw, and
// a renumbering downwards would make it read windows whose ticks do not exist yet as empty ones,
// losing their changes.
struct TickRange {
  int64_t first = 0;
  int64_t last = 0;
  bool operator==(const TickRange&) const = default;
};
inline TickRange resume_ticks(Position peer_applied, int64_t newest_local_tick) {
  const int64_t first = peer_applied.tick > 0 ? peer_applied.tick - 1 : 0;
  const int64_t last =
      peer_applied.tick > newest_local_tick ? peer_applied.tick : newest_local_tick;
  return TickRange{first, last > first ? last : first};
}

// Catch-up after the copy is done when nothing of the active waits for this node, or the
// oldest waiting change is younger than `live_ms` (replication is keeping up with the writes).
inline bool caught_up(uint64_t waiting_transactions, uint64_t oldest_age_ms, uint64_t live_ms) {
  return waiting_transactions == 0 || oldest_age_ms < live_ms;
}

}  // namespace mpf::server::verify
