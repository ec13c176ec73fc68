// PeerMonitor: is the peer alive, and if not, is its service down or its host unreachable?
//
// Pure and deterministic (docs/design.md §5, §8): fed with events and the current time, it returns
// what to do (send a heartbeat, ping the peer or the witness) and what changed. The driver
// (server/src/node_driver.cpp) owns the sockets, the ICMP pinger and the timers.
//
// Rules:
// - A heartbeat goes out every `interval` (the first at once). An answer to the newest
//   heartbeat, or to an older one still in flight, proves the peer's service is up.
// - No answer within `timeout` of sending counts one missed heartbeat and pings the peer (and
//   the witness, if configured). The deadline runs from the first heartbeat sent after the last
//   answer (or after the last miss), not from the newest one: with `timeout` above `interval` a
//   newer heartbeat must not push the deadline forward for ever (it did: a 10 s cut went
//   unnoticed with interval 500ms, timeout 1s). A ping reply while heartbeats go unanswered means
//   "service down, host up"; no ping reply means "unreachable". Every further missed heartbeat
//   pings again, so the verdict follows the peer.
// - The witness's verdict holds for one silence: an answer from the peer sets it back to
//   unknown, and a witness reply that comes after the peer answered is ignored, so a failover
//   decision never rests on a witness pinged during an earlier partition. The same holds for
//   the peer's ping: a result for a ping sent before the last answer is no verdict.
// - Clock skew is estimated from each answer as peer_wall - (sent_wall + received_wall) / 2;
//   of the last 8 estimates, the one with the shortest round trip is reported.
//
// Thread safety: none; one driver thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <mpf/core/clock.hpp>

namespace mpf::heartbeat {

enum class PeerState { kUnknown, kUp, kServiceDown, kUnreachable };
enum class WitnessState { kNone, kUnknown, kReachable, kUnreachable };

// "unknown", "up", "service_down", "unreachable": the names status --json uses.
std::string_view to_string(PeerState s);
// "none", "unknown", "reachable", "unreachable".
std::string_view to_string(WitnessState s);

struct MonitorOptions {
  Duration interval = std::chrono::seconds(60);
  Duration timeout = std::chrono::seconds(10);  // answer deadline for one heartbeat
  std::chrono::milliseconds max_skew{500};      // above it: a warning
  bool has_witness = false;
};

struct MonitorAction {
  enum class Kind {
    kSendHeartbeat,     // send heartbeat number `seq` to the peer
    kPingPeer,          // ICMP echo to the peer; answer with on_ping_result
    kPingWitness,       // ICMP echo to the witness; answer with on_witness_result
    kHeartbeatMissed,   // log: `missed` heartbeats in a row went unanswered
    kPeerStateChanged,  // log: from -> to
    kWitnessChanged,    // log: witness from -> to
    kSkewHigh,          // log: |clock_skew| went above max_skew
    kSkewNormal,        // log: back below
  };
  Kind kind;
  uint64_t seq = 0;
  int missed = 0;
  PeerState from = PeerState::kUnknown;
  PeerState to = PeerState::kUnknown;
  WitnessState witness_from = WitnessState::kNone;
  WitnessState witness_to = WitnessState::kNone;
  int64_t skew_ms = 0;

  bool operator==(const MonitorAction&) const = default;
};

// What an answer to a heartbeat carried, with the local wall clock around it (microseconds since
// the Unix epoch). Wall clocks only feed the skew estimate; timing uses the steady TimePoint.
struct HeartbeatAnswer {
  uint64_t seq = 0;
  int64_t peer_wall_us = 0;
  int64_t sent_wall_us = 0;
  int64_t received_wall_us = 0;
};

struct MonitorSnapshot {
  PeerState peer_state = PeerState::kUnknown;
  WitnessState witness = WitnessState::kNone;
  int missed = 0;                           // heartbeats unanswered in a row
  std::optional<TimePoint> last_answer_at;  // when the peer last answered
  std::optional<bool> last_ping_reply;      // the last ping's outcome, if any
  std::optional<int64_t> clock_skew_ms;     // from the last answer
  std::optional<Duration> rtt;              // heartbeat round trip, from the last answer
  bool skew_high = false;
  uint64_t heartbeats_sent = 0;
  // When the heartbeat behind the newest answer was SENT: the peer received something from this
  // node after that instant, so its "last heard" is at least this (self-fencing counts from it).
  std::optional<TimePoint> last_round_trip_sent_at;
  // When the last witness ping that got a reply was sent (self-fencing with the ICMP witness).
  std::optional<TimePoint> last_witness_reply_sent_at;
};

class PeerMonitor {
 public:
  explicit PeerMonitor(MonitorOptions options);

  // Time passes: sends heartbeats when due and detects missed answers.
  std::vector<MonitorAction> tick(TimePoint now);
  // Send a heartbeat at the next tick, whatever the schedule (a switchover wants news now).
  void send_soon();

  std::vector<MonitorAction> on_answer(const HeartbeatAnswer& answer, TimePoint now);
  std::vector<MonitorAction> on_ping_result(bool replied, TimePoint now);
  std::vector<MonitorAction> on_witness_result(bool replied, TimePoint now);

  // SIGHUP changed heartbeat.witness: with none the witness state is "none", with some it is
  // unknown until the next round asks them.
  void set_has_witness(bool has_witness);

  const MonitorSnapshot& snapshot() const { return snap_; }
  // When tick() next has something to do: the driver may sleep until then.
  TimePoint next_deadline() const;

 private:
  void set_state(PeerState to, std::vector<MonitorAction>& out);

  MonitorOptions options_;
  MonitorSnapshot snap_;
  uint64_t last_sent_seq_ = 0;
  uint64_t last_answered_seq_ = 0;
  std::optional<TimePoint> next_send_at_;  // unset: at the first tick
  // The heartbeat whose answer deadline runs: the first one sent after the last answer or miss.
  std::optional<TimePoint> watch_from_;
  uint64_t watch_seq_ = 0;
  // Send times of the latest heartbeats, by seq % size (for last_round_trip_sent_at).
  std::array<std::pair<uint64_t, TimePoint>, 64> sent_at_{};
  std::optional<TimePoint> witness_ping_sent_at_;
  bool pinging_ = false;
  // Answers accepted so far, and their count when the last pings went out: a ping (or witness)
  // result from before an answer belongs to a silence that is over, even if a newer heartbeat
  // has been missed by the time it is handled.
  uint64_t answers_ = 0;
  uint64_t answers_at_ping_ = 0;
  // (round trip µs, skew µs) of the last answers, for the skew filter.
  std::array<std::pair<int64_t, int64_t>, 8> skew_samples_{};
  size_t next_sample_ = 0;
};

}  // namespace mpf::heartbeat
