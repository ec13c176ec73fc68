// SampleRing: the last hour of the backlog and the apply rate, for the status page's charts
// (docs/monitoring.md "The status page"). The daemon records one sample per interval (10 s):
// the backlog as last sampled from the database and the counter of transactions applied here;
// the ring keeps the newest `capacity` (360: one hour) and forgets older ones.
//
// The apply rate of a sample is the counter's increase since the previous sample over the time
// between them, so it is the rate over that interval, not a moment's. No rate for the first
// sample, after a gap longer than 2.5 intervals (the daemon was stalled: the rate would be an
// average over the gap, not this interval's), or when the counter went back (a restart).
//
// Pure: no clock (times are given), no I/O; fixed memory. Not thread-safe: the daemon uses it
// on its io thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace mpf::server {

struct RateSample {
  double t = 0;                      // unix time, seconds
  std::optional<int64_t> backlog;    // transactions waiting for the peer; none when not known
  std::optional<double> apply_rate;  // the peer's transactions applied here per second
};

class SampleRing {
 public:
  static constexpr size_t kDefaultCapacity = 360;
  static constexpr double kDefaultInterval = 10;  // seconds

  explicit SampleRing(size_t capacity = kDefaultCapacity, double interval_s = kDefaultInterval);

  // One sample at time t. A time not after the newest sample's is ignored (a clock stepped
  // back): false then.
  bool record(double t, std::optional<int64_t> backlog, uint64_t applied_total);

  std::vector<RateSample> samples() const;  // oldest first
  size_t size() const { return count_; }
  size_t capacity() const { return slots_.size(); }
  double interval() const { return interval_; }

  // {interval_s, capacity, points: [{t, backlog, apply_rate}, ...]} (null for an unknown value).
  nlohmann::ordered_json to_json() const;

 private:
  std::vector<RateSample> slots_;
  size_t next_ = 0;   // where the next sample goes
  size_t count_ = 0;  // how many slots hold a sample
  double interval_;
  std::optional<double> last_t_;
  uint64_t last_applied_ = 0;
};

}  // namespace mpf::server
