// The timing rule of self-fencing (issue #18): an isolated active must close its writes before
// the standby can open its own. Pure arithmetic, shared by the config check (server/), the
// driver and the simulation (tests/sim/) so all three use the same numbers.
//
// With the ICMP witness: a standby promotes automatically only after hearing nothing from the
// active for `standby_window` = interval x missed_heartbeats + timeout (RoleOptions::
// peer_heard_window). Every answer to one of the active's heartbeats proves the standby heard the
// active after that heartbeat was sent, so an active that fences `fence_after` after the send
// time of its newest answered heartbeat closes before the standby can promote, as long as
// fence_after + margin <= standby_window. The margin covers the two steady clocks' drift and the
// time the driver needs to close the login (one ALTER ROLE and the sessions' termination).
//
// With the etcd arbiter: the active holds the leadership key under a lease of `lease_ttl`
// (renewed every interval); etcd expires it lease_ttl after it received the last renewal, which is
// after the renewal was sent, so fence_after + margin <= lease_ttl closes writes before any
// standby's compare-and-swap can succeed.
//
// Lower bound in both modes: confirmations come once per interval (a heartbeat round trip, a
// renewal), so fence_after must exceed interval plus a quarter of the timeout, or an active
// would fence itself with nothing wrong.
#pragma once

#include <algorithm>
#include <optional>
#include <string>

#include <mpf/core/clock.hpp>

namespace mpf::heartbeat {

struct FenceTiming {
  Duration standby_window{};  // the standby's silence before automatic failover
  Duration lease_ttl{};       // the arbiter's lease (whole seconds, as etcd grants them)
  Duration margin{};          // drift and the time to close writes
  Duration min{};             // fence_after must be above this
  Duration max{};             // and at most this
  Duration fence_after{};     // the default
};

inline FenceTiming fence_timing(Duration interval, Duration timeout, int missed_heartbeats,
                                bool arbiter) {
  using namespace std::chrono_literals;
  FenceTiming t;
  t.standby_window = interval * missed_heartbeats + timeout;
  const auto ttl_s = std::chrono::ceil<std::chrono::seconds>(3 * interval);
  t.lease_ttl = std::max<Duration>(2s, ttl_s);
  t.min = interval + timeout / 4;
  if (arbiter) {
    t.margin = std::max<Duration>(100ms, t.lease_ttl / 10);
    t.max = t.lease_ttl - t.margin;
    t.fence_after = std::min<Duration>(t.max, t.lease_ttl * 2 / 3);
  } else {
    t.margin = std::max<Duration>(100ms, t.standby_window / 10);
    t.max = t.standby_window - t.margin;
    t.fence_after = t.standby_window - std::max<Duration>(t.margin, timeout / 2);
  }
  return t;
}

// Empty when `fence_after` keeps the order; else why not (for the config's error message).
inline std::optional<std::string> fence_after_problem(Duration fence_after, const FenceTiming& t,
                                                      bool arbiter) {
  auto ms = [](Duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
  };
  if (fence_after > t.max) {
    return arbiter
               ? "failover.fence_after " + ms(fence_after) + " leaves less than the margin of " +
                     ms(t.margin) + " before the arbiter's lease (" + ms(t.lease_ttl) +
                     ") can expire: a standby could take the key while this node still writes"
               : "failover.fence_after " + ms(fence_after) + " leaves less than the margin of " +
                     ms(t.margin) + " before the standby may fail over (heartbeat.interval x " +
                     "failover.missed_heartbeats + heartbeat.timeout = " + ms(t.standby_window) +
                     "): both could take writes";
  }
  if (fence_after <= t.min) {
    return "failover.fence_after " + ms(fence_after) + " is not above heartbeat.interval + " +
           "heartbeat.timeout / 4 = " + ms(t.min) +
           ": the active would fence itself between two heartbeats";
  }
  return std::nullopt;
}

}  // namespace mpf::heartbeat
