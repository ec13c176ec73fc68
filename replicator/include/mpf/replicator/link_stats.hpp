// Counters a shipper or receiver publishes for status, metrics and benchmarks. Copied out
// under a mutex; cheap to read now and then.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>

namespace mpf::replicator {

struct LinkStats {
  bool connected = false;     // a session is established (handshake done)
  Position acked;             // shipper: last position the peer acknowledged
  Position applied;           // receiver: last position applied here
  uint64_t sessions = 0;      // sessions started (reconnects = sessions - 1)
  uint64_t batches = 0;       // batches sent (shipper) or applied (receiver)
  uint64_t transactions = 0;  // whole transactions sent or applied
  uint64_t changes = 0;
  uint64_t wire_bytes = 0;      // frame bytes sent (shipper) or received (receiver)
  uint64_t dropped_frames = 0;  // receiver: garbage, out-of-order or foreign frames dropped
  std::string last_error;       // empty when healthy
  bool apply_stopped = false;   // receiver: apply stopped on a transaction (ApplyError sent)
  // The replication protocol version of the current (or last) session; 0 before the first.
  uint32_t protocol_version = 0;
  // Receiver: what the peer's latest Hello said about it, accepted or not (0 / "": not yet, or
  // a release that does not send its software version).
  uint32_t peer_min_version = 0;
  uint32_t peer_max_version = 0;
  std::string peer_software;
  int32_t peer_catalog_version = 0;
  // Shipper: the latest moment at which everything this node had committed was acknowledged by
  // the peer (nothing new in the log, nothing in flight). A switchover's drain is over once this
  // passes the moment application writes closed; status reports lag from it.
  std::optional<TimePoint> caught_up_at;
};

}  // namespace mpf::replicator
