// PeerMonitor: heartbeat schedule, missed answers, ping fallback, witness, clock skew
// (docs/design.md §5, §8). Time is a ManualClock; nothing sleeps.
#include <algorithm>

#include <doctest/doctest.h>

#include <mpf/heartbeat/peer_monitor.hpp>

using namespace std::chrono_literals;
using mpf::ManualClock;
using mpf::heartbeat::HeartbeatAnswer;
using mpf::heartbeat::MonitorAction;
using mpf::heartbeat::MonitorOptions;
using mpf::heartbeat::PeerMonitor;
using mpf::heartbeat::PeerState;
using mpf::heartbeat::WitnessState;
using Kind = MonitorAction::Kind;

namespace {

bool has(const std::vector<MonitorAction>& actions, Kind k) {
  return std::any_of(actions.begin(), actions.end(), [&](const auto& a) { return a.kind == k; });
}

const MonitorAction* find(const std::vector<MonitorAction>& actions, Kind k) {
  for (const auto& a : actions) {
    if (a.kind == k) return &a;
  }
  return nullptr;
}

MonitorOptions options(bool witness = false) {
  MonitorOptions o;
  o.interval = 60s;
  o.timeout = 5s;
  o.max_skew = std::chrono::milliseconds(500);
  o.has_witness = witness;
  return o;
}

// An answer to `seq`, with the peer's clock `skew_us` ahead and a 2 ms round trip.
HeartbeatAnswer answer(uint64_t seq, int64_t skew_us = 0) {
  return HeartbeatAnswer{seq, 1'000'001'000 + skew_us, 1'000'000'000, 1'000'002'000};
}

}  // namespace

TEST_CASE("the first heartbeat goes out at once, the next one interval later") {
  ManualClock clock;
  PeerMonitor m(options());
  auto a = m.tick(clock.now());
  REQUIRE(find(a, Kind::kSendHeartbeat) != nullptr);
  CHECK(find(a, Kind::kSendHeartbeat)->seq == 1);
  clock.advance(59s);
  CHECK_FALSE(has(m.tick(clock.now()), Kind::kSendHeartbeat));
  clock.advance(1s);
  auto b = m.tick(clock.now());
  REQUIRE(find(b, Kind::kSendHeartbeat) != nullptr);
  CHECK(find(b, Kind::kSendHeartbeat)->seq == 2);
}

TEST_CASE("an answer makes the peer up and resets the missed count") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  auto a = m.on_answer(answer(1), clock.now());
  REQUIRE(find(a, Kind::kPeerStateChanged) != nullptr);
  CHECK(find(a, Kind::kPeerStateChanged)->to == PeerState::kUp);
  CHECK(m.snapshot().peer_state == PeerState::kUp);
  CHECK(m.snapshot().missed == 0);
}

TEST_CASE("a missed heartbeat and a ping reply give service down, host up") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  (void)m.on_answer(answer(1), clock.now());
  clock.advance(60s);
  (void)m.tick(clock.now());  // heartbeat 2
  clock.advance(4999ms);
  CHECK_FALSE(has(m.tick(clock.now()), Kind::kPingPeer));
  clock.advance(1ms);
  auto a = m.tick(clock.now());
  CHECK(has(a, Kind::kHeartbeatMissed));
  CHECK(has(a, Kind::kPingPeer));
  CHECK(m.snapshot().peer_state == PeerState::kUp);  // no verdict before the ping's
  auto b = m.on_ping_result(true, clock.now());
  REQUIRE(find(b, Kind::kPeerStateChanged) != nullptr);
  CHECK(m.snapshot().peer_state == PeerState::kServiceDown);
}

TEST_CASE("a missed heartbeat and no ping reply give unreachable") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  clock.advance(5s);
  CHECK(has(m.tick(clock.now()), Kind::kPingPeer));
  (void)m.on_ping_result(false, clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUnreachable);
  CHECK(m.snapshot().last_ping_reply == false);
}

TEST_CASE("the verdict follows the peer: unreachable, then host back, then service back") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  clock.advance(5s);
  (void)m.tick(clock.now());
  (void)m.on_ping_result(false, clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUnreachable);
  clock.advance(55s);
  (void)m.tick(clock.now());  // heartbeat 2
  clock.advance(5s);
  CHECK(has(m.tick(clock.now()), Kind::kPingPeer));  // each miss pings again
  CHECK(m.snapshot().missed == 2);
  (void)m.on_ping_result(true, clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kServiceDown);
  clock.advance(55s);
  (void)m.tick(clock.now());  // heartbeat 3
  (void)m.on_answer(answer(3), clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUp);
  CHECK(m.snapshot().missed == 0);
}

TEST_CASE("an answer that arrives while the ping is out wins over the ping's verdict") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  (void)m.on_answer(answer(1), clock.now());
  clock.advance(60s);
  (void)m.tick(clock.now());
  clock.advance(5s);
  (void)m.tick(clock.now());                  // missed, ping out
  (void)m.on_answer(answer(2), clock.now());  // late answer
  auto a = m.on_ping_result(false, clock.now());
  CHECK_FALSE(has(a, Kind::kPeerStateChanged));
  CHECK(m.snapshot().peer_state == PeerState::kUp);
}

TEST_CASE("a ping sent before the last answer is no verdict, even after a newer miss") {
  // Found by the deterministic simulation (tests/sim): a driver that stalled handled, in order,
  // a late answer, the next missed heartbeat and then the old ping's "no reply" and the old
  // witness reply, and failed over on them.
  ManualClock clock;
  PeerMonitor m(options(true));
  (void)m.tick(clock.now());  // heartbeat 1
  clock.advance(5s);
  (void)m.tick(clock.now());                  // missed: ping peer and witness
  (void)m.on_answer(answer(1), clock.now());  // the silence is over
  clock.advance(55s);
  (void)m.tick(clock.now());  // heartbeat 2
  clock.advance(5s);
  auto missed = m.tick(clock.now());  // missed again; the old ping is still out: no new one
  CHECK(has(missed, Kind::kHeartbeatMissed));
  CHECK_FALSE(has(missed, Kind::kPingPeer));
  CHECK_FALSE(has(m.on_ping_result(false, clock.now()), Kind::kPeerStateChanged));
  CHECK(m.on_witness_result(true, clock.now()).empty());
  CHECK(m.snapshot().peer_state == PeerState::kUp);
  CHECK(m.snapshot().witness == WitnessState::kUnknown);
  // The next miss pings again, and that verdict counts.
  clock.advance(55s);
  (void)m.tick(clock.now());
  clock.advance(5s);
  CHECK(has(m.tick(clock.now()), Kind::kPingPeer));
  (void)m.on_ping_result(false, clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUnreachable);
}

TEST_CASE("answers to heartbeats never sent, or replayed, are ignored") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  SUBCASE("a future seq") { CHECK(m.on_answer(answer(7), clock.now()).empty()); }
  SUBCASE("seq zero") { CHECK(m.on_answer(answer(0), clock.now()).empty()); }
  SUBCASE("a replay") {
    CHECK_FALSE(m.on_answer(answer(1), clock.now()).empty());
    clock.advance(5s);
    (void)m.tick(clock.now());
    CHECK(m.on_answer(answer(1), clock.now()).empty());
  }
  CHECK(m.snapshot().peer_state != PeerState::kServiceDown);
}

TEST_CASE("no second ping while one is out") {
  ManualClock clock;
  MonitorOptions o = options();
  o.interval = 1s;
  o.timeout = 500ms;
  PeerMonitor m(o);
  (void)m.tick(clock.now());
  clock.advance(500ms);
  CHECK(has(m.tick(clock.now()), Kind::kPingPeer));
  clock.advance(500ms);
  (void)m.tick(clock.now());  // heartbeat 2
  clock.advance(500ms);
  auto a = m.tick(clock.now());
  CHECK(has(a, Kind::kHeartbeatMissed));
  CHECK_FALSE(has(a, Kind::kPingPeer));
  CHECK(m.snapshot().missed == 2);
}

TEST_CASE("a witness is pinged with the peer and its verdict recorded") {
  ManualClock clock;
  PeerMonitor m(options(true));
  CHECK(m.snapshot().witness == WitnessState::kUnknown);
  (void)m.tick(clock.now());
  clock.advance(5s);
  auto a = m.tick(clock.now());
  CHECK(has(a, Kind::kPingWitness));
  auto b = m.on_witness_result(true, clock.now());
  REQUIRE(find(b, Kind::kWitnessChanged) != nullptr);
  CHECK(m.snapshot().witness == WitnessState::kReachable);
  CHECK(m.on_witness_result(true, clock.now()).empty());
  (void)m.on_witness_result(false, clock.now());
  CHECK(m.snapshot().witness == WitnessState::kUnreachable);
}

TEST_CASE("the witness's verdict from an earlier silence is forgotten when the peer answers") {
  ManualClock clock;
  PeerMonitor m(options(true));
  (void)m.tick(clock.now());  // heartbeat 1
  clock.advance(5s);
  (void)m.tick(clock.now());  // missed: ping peer and witness
  (void)m.on_witness_result(true, clock.now());
  (void)m.on_ping_result(false, clock.now());
  REQUIRE(m.snapshot().witness == WitnessState::kReachable);
  clock.advance(55s);
  (void)m.tick(clock.now());  // heartbeat 2
  auto a = m.on_answer(answer(2), clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUp);
  REQUIRE(find(a, Kind::kWitnessChanged) != nullptr);
  CHECK(find(a, Kind::kWitnessChanged)->witness_to == WitnessState::kUnknown);
  CHECK(m.snapshot().witness == WitnessState::kUnknown);

  // The next silence: the peer's ping times out before the witness's ping has returned. The
  // snapshot must not say "reachable" (a node cut off from everyone would fail over on it).
  clock.advance(60s);
  (void)m.tick(clock.now());  // heartbeat 3
  clock.advance(5s);
  auto b = m.tick(clock.now());
  CHECK(has(b, Kind::kPingWitness));
  (void)m.on_ping_result(false, clock.now());
  CHECK(m.snapshot().peer_state == PeerState::kUnreachable);
  CHECK(m.snapshot().witness == WitnessState::kUnknown);
  (void)m.on_witness_result(false, clock.now());
  CHECK(m.snapshot().witness == WitnessState::kUnreachable);
}

TEST_CASE("a witness reply that comes after the peer answered is not recorded") {
  ManualClock clock;
  PeerMonitor m(options(true));
  (void)m.tick(clock.now());  // heartbeat 1
  clock.advance(5s);
  (void)m.tick(clock.now());  // missed: ping peer and witness
  clock.advance(1s);
  (void)m.on_answer(answer(1), clock.now());  // late, but an answer: the silence is over
  CHECK(m.on_witness_result(true, clock.now()).empty());
  CHECK(m.snapshot().witness == WitnessState::kUnknown);
}

TEST_CASE("without a witness configured none is pinged") {
  ManualClock clock;
  PeerMonitor m(options(false));
  (void)m.tick(clock.now());
  clock.advance(5s);
  CHECK_FALSE(has(m.tick(clock.now()), Kind::kPingWitness));
  CHECK(m.snapshot().witness == WitnessState::kNone);
}

TEST_CASE("clock skew above max_skew warns once, and once more when it is back") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  auto a = m.on_answer(answer(1, 800'000), clock.now());  // peer 800 ms ahead
  REQUIRE(find(a, Kind::kSkewHigh) != nullptr);
  CHECK(find(a, Kind::kSkewHigh)->skew_ms == 800);
  CHECK(m.snapshot().clock_skew_ms == 800);
  clock.advance(60s);
  (void)m.tick(clock.now());
  CHECK_FALSE(has(m.on_answer(answer(2, -900'000), clock.now()), Kind::kSkewHigh));
  CHECK(m.snapshot().clock_skew_ms == -900);
  clock.advance(60s);
  (void)m.tick(clock.now());
  auto c = m.on_answer(answer(3, 20'000), clock.now());
  CHECK(has(c, Kind::kSkewNormal));
  CHECK(m.snapshot().rtt == std::chrono::microseconds(2000));
}

TEST_CASE("send_soon sends at the next tick whatever the schedule") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  clock.advance(1s);
  CHECK_FALSE(has(m.tick(clock.now()), Kind::kSendHeartbeat));
  m.send_soon();
  CHECK(m.next_deadline() <= clock.now());
  CHECK(has(m.tick(clock.now()), Kind::kSendHeartbeat));
}

TEST_CASE("a skew estimate from a slow round trip does not hide a better one") {
  ManualClock clock;
  PeerMonitor m(options());
  (void)m.tick(clock.now());
  (void)m.on_answer(answer(1, 0), clock.now());  // 2 ms round trip, no skew
  CHECK(m.snapshot().clock_skew_ms == 0);
  clock.advance(60s);
  (void)m.tick(clock.now());
  // A heartbeat that waited 3 s in a queue behind a cut link: answered late, skewed midpoint.
  HeartbeatAnswer late{2, 1'000'000'000 + 2'900'000, 1'000'000'000, 1'003'000'000};
  (void)m.on_answer(late, clock.now());
  CHECK(m.snapshot().clock_skew_ms == 0);
  CHECK(m.snapshot().rtt == std::chrono::microseconds(3'000'000));
}

TEST_CASE(
    "a timeout above the interval still detects a silent peer (the deadline runs from the "
    "first unanswered heartbeat, not the newest)") {
  // Issue #18: interval 500ms, timeout 1s; every new heartbeat used to push the deadline on, so
  // a 10 s cut left the peer "up".
  ManualClock clock;
  MonitorOptions o = options();
  o.interval = 500ms;
  o.timeout = 1s;
  PeerMonitor m(o);
  (void)m.tick(clock.now());
  (void)m.on_answer(answer(1), clock.now());
  int missed_events = 0;
  for (int i = 0; i < 100; ++i) {  // 10 s of silence in 100 ms ticks
    clock.advance(100ms);
    for (const auto& a : m.tick(clock.now())) {
      if (a.kind == Kind::kHeartbeatMissed) ++missed_events;
      if (a.kind == Kind::kPingPeer) (void)m.on_ping_result(false, clock.now());
    }
  }
  CHECK(missed_events >= 8);
  CHECK(m.snapshot().missed >= 8);
  CHECK(m.snapshot().peer_state == PeerState::kUnreachable);
}

TEST_CASE("the first miss comes timeout after the first heartbeat left unanswered") {
  ManualClock clock;
  MonitorOptions o = options();
  o.interval = 500ms;
  o.timeout = 1s;
  PeerMonitor m(o);
  (void)m.tick(clock.now());                  // heartbeat 1 at 0
  (void)m.on_answer(answer(1), clock.now());  // answered
  clock.advance(500ms);
  (void)m.tick(clock.now());  // heartbeat 2 at 0.5 s: unanswered from here on
  clock.advance(500ms);
  (void)m.tick(clock.now());  // heartbeat 3 at 1 s
  clock.advance(499ms);
  CHECK_FALSE(has(m.tick(clock.now()), Kind::kHeartbeatMissed));
  clock.advance(1ms);
  CHECK(has(m.tick(clock.now()), Kind::kHeartbeatMissed));  // 1.5 s = heartbeat 2 + timeout
}

TEST_CASE("the snapshot records when the heartbeat behind the newest answer was sent") {
  ManualClock clock;
  PeerMonitor m(options(true));
  (void)m.tick(clock.now());  // heartbeat 1 at 0
  const auto sent = clock.now();
  clock.advance(2s);
  (void)m.on_answer(answer(1), clock.now());
  REQUIRE(m.snapshot().last_round_trip_sent_at.has_value());
  CHECK(*m.snapshot().last_round_trip_sent_at == sent);
  CHECK(*m.snapshot().last_answer_at == clock.now());
  // A witness reply is recorded with its ping's send time.
  clock.advance(58s);
  (void)m.tick(clock.now());  // heartbeat 2
  clock.advance(5s);
  const auto ping_at = clock.now();
  REQUIRE(has(m.tick(clock.now()), Kind::kPingWitness));
  clock.advance(300ms);
  (void)m.on_witness_result(true, clock.now());
  REQUIRE(m.snapshot().last_witness_reply_sent_at.has_value());
  CHECK(*m.snapshot().last_witness_reply_sent_at == ping_at);
}
