// RoleMachine: every row of the transition table (role_machine.cpp), the fencing rule and the
// guards of failover and switchover (docs/design.md §4, §5). Time is a ManualClock.
#include <algorithm>

#include <doctest/doctest.h>

#include <mpf/heartbeat/role_machine.hpp>

using namespace std::chrono_literals;
using mpf::ManualClock;
using mpf::Position;
using mpf::heartbeat::CommandContext;
using mpf::heartbeat::Decision;
using mpf::heartbeat::MonitorSnapshot;
using mpf::heartbeat::PeerState;
using mpf::heartbeat::PeerView;
using mpf::heartbeat::PersistedRole;
using mpf::heartbeat::Role;
using mpf::heartbeat::RoleAction;
using mpf::heartbeat::RoleMachine;
using mpf::heartbeat::RoleOptions;
using mpf::heartbeat::WitnessState;
using Kind = RoleAction::Kind;

namespace {

bool has(const Decision& d, Kind k) {
  return std::any_of(d.actions.begin(), d.actions.end(),
                     [&](const auto& a) { return a.kind == k; });
}

const RoleAction* find(const Decision& d, Kind k) {
  for (const auto& a : d.actions) {
    if (a.kind == k) return &a;
  }
  return nullptr;
}

RoleOptions opts(std::string node = "b", std::string peer = "a") {
  RoleOptions o;
  o.node = std::move(node);
  o.peer = std::move(peer);
  o.start_grace = 10s;
  o.switchover_timeout = 30s;
  o.handover_timeout = 10s;
  o.handover_resend = 100ms;
  return o;
}

PersistedRole persisted(Role role, mpf::Epoch epoch) {
  PersistedRole p;
  p.initialized = true;
  p.role = role;
  p.epoch = epoch;
  return p;
}

MonitorSnapshot monitor(PeerState s, int missed = 0, WitnessState w = WitnessState::kNone) {
  MonitorSnapshot m;
  m.peer_state = s;
  m.missed = missed;
  m.witness = w;
  return m;
}

PeerView peer(Role role, mpf::Epoch epoch, std::string node = "a") {
  return PeerView{std::move(node), role, epoch};
}

// The peer answered a heartbeat sent at `sent`: a round trip (what confirms a fenced active).
MonitorSnapshot round_trip(mpf::TimePoint sent, PeerState s = PeerState::kUp) {
  MonitorSnapshot m = monitor(s);
  m.last_round_trip_sent_at = sent;
  return m;
}

// A machine already settled in `role` at `epoch`; an active one confirmed by a standby peer's
// answer (a persisted active starts fenced).
RoleMachine settled(Role role, mpf::Epoch epoch, ManualClock& clock, RoleOptions o = opts()) {
  RoleMachine m(o, persisted(role, epoch), clock.now());
  (void)m.start(clock.now());
  if (m.role() == Role::kStarting) {
    (void)m.on_peer(peer(Role::kStandby, epoch, o.peer), round_trip(clock.now()), clock.now());
  }
  REQUIRE(m.role() == role);
  if (role == Role::kActive) REQUIRE(m.writable());
  return m;
}

// Runs a promotion to its end: the persist succeeds.
Decision finish_promotion(RoleMachine& m, ManualClock& clock) {
  REQUIRE(m.role() == Role::kPromoting);
  return m.on_persisted(true, "", clock.now());
}

}  // namespace

TEST_CASE("a brand-new node with the default initial role becomes standby, epoch 0") {
  ManualClock clock;
  RoleMachine m(opts(), PersistedRole{}, clock.now());
  auto d = m.start(clock.now());
  CHECK(m.role() == Role::kStandby);
  CHECK(d.reason == "initial_role_standby");
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.initialized);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 0);
  CHECK(has(d, Kind::kCloseWrites));
  CHECK_FALSE(m.writable());
}

TEST_CASE("a brand-new node with initial_role active persists epoch 1 before opening writes") {
  ManualClock clock;
  RoleOptions o = opts();
  o.initial_role = Role::kActive;
  RoleMachine m(o, PersistedRole{}, clock.now());
  auto d = m.start(clock.now());
  CHECK(m.role() == Role::kPromoting);
  CHECK_FALSE(has(d, Kind::kOpenWrites));
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.role == Role::kActive);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 1);
  auto e = finish_promotion(m, clock);
  CHECK(m.role() == Role::kActive);
  CHECK(e.reason == "initial_role_active");
  CHECK(has(e, Kind::kOpenWrites));
  CHECK(has(e, Kind::kRunPromoteHook));
  CHECK(m.epoch() == 1);
}

TEST_CASE("a brand-new node whose initial promotion cannot be persisted closes writes") {
  // Found by the deterministic simulation (tests/sim): a new database's login is writable, and
  // the failed initial promotion left it so on a standby.
  ManualClock clock;
  RoleOptions o = opts();
  o.initial_role = Role::kActive;
  RoleMachine m(o, PersistedRole{}, clock.now());
  (void)m.start(clock.now());
  auto d = m.on_persisted(false, "connection refused", clock.now());
  CHECK(d.reason == "persist_failed_initial");
  CHECK(m.role() == Role::kStandby);
  CHECK(has(d, Kind::kCloseWrites));
  CHECK(has(d, Kind::kRunDemoteHook));
  CHECK_FALSE(has(d, Kind::kOpenWrites));
}

TEST_CASE("a persisted role rules over node.initial_role") {
  ManualClock clock;
  RoleOptions o = opts();
  o.initial_role = Role::kActive;
  RoleMachine m(o, persisted(Role::kStandby, 4), clock.now());
  (void)m.start(clock.now());
  CHECK(m.role() == Role::kStandby);
  CHECK(m.epoch() == 4);
}

TEST_CASE("a node that was active closes writes at start and waits for word of the peer") {
  ManualClock clock;
  RoleMachine m(opts(), persisted(Role::kActive, 3), clock.now());
  auto d = m.start(clock.now());
  CHECK(m.role() == Role::kStarting);
  CHECK(has(d, Kind::kCloseWrites));  // the previous run left the login writable
  CHECK_FALSE(has(d, Kind::kOpenWrites));
  CHECK_FALSE(m.writable());
  SUBCASE("the peer answers as standby: active again, writes open") {
    clock.advance(10ms);
    auto e = m.on_peer(peer(Role::kStandby, 3), round_trip(clock.now()), clock.now());
    CHECK(m.role() == Role::kActive);
    CHECK_FALSE(m.fenced());
    CHECK(has(e, Kind::kOpenWrites));
    CHECK(has(e, Kind::kRunPromoteHook));
  }
  SUBCASE("the peer was promoted meanwhile: step down and adopt its epoch") {
    auto e = m.on_peer(peer(Role::kActive, 4), monitor(PeerState::kUp), clock.now());
    CHECK(m.role() == Role::kStandby);
    CHECK(e.reason == "peer_active_higher_epoch");
    CHECK(has(e, Kind::kCloseWrites));
    CHECK(has(e, Kind::kRunDemoteHook));
    CHECK(m.epoch() == 4);
  }
  SUBCASE("the peer is unreachable: active but fenced (issue #18), until the peer's word") {
    auto e = m.on_monitor(monitor(PeerState::kUnreachable, 1), clock.now());
    CHECK(m.role() == Role::kActive);
    CHECK(m.fenced());
    CHECK(m.fenced_reason() == "restart_unconfirmed");
    CHECK_FALSE(m.writable());
    CHECK_FALSE(has(e, Kind::kOpenWrites));
    CHECK(has(e, Kind::kRunDemoteHook));
    // The peer's beat alone (no round trip) is no confirmation: it may not hear this node.
    clock.advance(5s);
    CHECK_FALSE(has(m.on_peer(peer(Role::kStandby, 3), monitor(PeerState::kUp), clock.now()),
                    Kind::kOpenWrites));
    CHECK(m.fenced());
    auto f = m.on_peer(peer(Role::kStandby, 3), round_trip(clock.now()), clock.now());
    CHECK(f.fence_changed);
    CHECK(has(f, Kind::kOpenWrites));
    CHECK(m.writable());
  }
  SUBCASE("unreachable, and the peer was promoted higher meanwhile: steps down when it hears") {
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 1), clock.now());
    REQUIRE(m.fenced());
    clock.advance(30s);
    auto e = m.on_peer(peer(Role::kActive, 4), round_trip(clock.now()), clock.now());
    CHECK(m.role() == Role::kStandby);
    CHECK_FALSE(m.fenced());
    CHECK_FALSE(has(e, Kind::kOpenWrites));
  }
  SUBCASE("no word at all within the grace: active, fenced") {
    clock.advance(9s);
    (void)m.tick(clock.now());
    CHECK(m.role() == Role::kStarting);
    clock.advance(1s);
    auto e = m.tick(clock.now());
    CHECK(m.role() == Role::kActive);
    CHECK(m.fenced());
    CHECK_FALSE(has(e, Kind::kOpenWrites));
  }
}

TEST_CASE("a standby or standalone node settles at once on start") {
  ManualClock clock;
  RoleMachine s(opts(), persisted(Role::kStandby, 2), clock.now());
  auto d = s.start(clock.now());
  CHECK(s.role() == Role::kStandby);
  CHECK(has(d, Kind::kRunDemoteHook));  // a stale shared address is removed
  PersistedRole p = persisted(Role::kStandalone, 2);
  RoleMachine a(opts(), p, clock.now());
  auto e = a.start(clock.now());
  CHECK(a.role() == Role::kStandalone);
  CHECK(has(e, Kind::kPauseReplication));
  CHECK(a.writable());
}

TEST_CASE("manual failover on a standby promotes above every epoch it has seen") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 2, clock);
  (void)m.on_peer(peer(Role::kActive, 5), monitor(PeerState::kUp), clock.now());
  CHECK(m.epoch() == 5);  // adopted
  auto d = m.failover(CommandContext{}, monitor(PeerState::kUnreachable, 3), clock.now());
  CHECK(d.accepted);
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 6);
  CHECK_FALSE(has(d, Kind::kOpenWrites));  // not before the epoch is durable
  auto e = finish_promotion(m, clock);
  CHECK(e.reason == "operator_failover");
  CHECK(m.role() == Role::kActive);
  CHECK(m.epoch() == 6);
}

TEST_CASE("manual failover is refused while the peer is up and active, unless forced") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 1, clock);
  (void)m.on_peer(peer(Role::kActive, 1), monitor(PeerState::kUp), clock.now());
  auto d = m.failover(CommandContext{}, monitor(PeerState::kUp), clock.now());
  CHECK_FALSE(d.accepted);
  CHECK(d.message.find("up and active") != std::string::npos);
  CHECK(m.role() == Role::kStandby);
  SUBCASE("service down counts as not up") {
    CHECK(m.failover(CommandContext{}, monitor(PeerState::kServiceDown, 1), clock.now()).accepted);
  }
  SUBCASE("--force") {
    CommandContext force;
    force.force = true;
    CHECK(m.failover(force, monitor(PeerState::kUp), clock.now()).accepted);
    CHECK(m.role() == Role::kPromoting);
  }
}

TEST_CASE("manual failover is refused when the definitions differ, unless forced") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 1, clock);
  CommandContext ctx;
  ctx.definitions_match = false;
  auto d = m.failover(ctx, monitor(PeerState::kUnreachable, 2), clock.now());
  CHECK_FALSE(d.accepted);
  CHECK(d.message.find("mpfailover check") != std::string::npos);
  ctx.force = true;
  CHECK(m.failover(ctx, monitor(PeerState::kUnreachable, 2), clock.now()).accepted);
}

TEST_CASE("manual failover is refused on an active, standalone or transitional node") {
  ManualClock clock;
  auto a = settled(Role::kActive, 1, clock);
  CHECK_FALSE(a.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now()).accepted);
  auto s = settled(Role::kStandalone, 1, clock);
  CHECK(s.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now())
            .message.find("join") != std::string::npos);
  auto p = settled(Role::kStandby, 1, clock);
  (void)p.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now());
  CHECK_FALSE(p.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now()).accepted);
}

TEST_CASE("a failed persist leaves the node standby with the error shown") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 1, clock);
  (void)m.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now());
  auto d = m.on_persisted(false, "connection refused", clock.now());
  CHECK(d.reason == "persist_failed");
  CHECK(m.role() == Role::kStandby);
  CHECK(m.epoch() == 1);
  CHECK(m.last_error().find("connection refused") != std::string::npos);
  CHECK_FALSE(has(d, Kind::kOpenWrites));
}

TEST_CASE("fencing: two actives that meet keep exactly one, the same on both sides") {
  ManualClock clock;
  SUBCASE("the higher epoch wins") {
    auto a = settled(Role::kActive, 3, clock, opts("a", "b"));
    auto b = settled(Role::kActive, 4, clock, opts("b", "a"));
    (void)a.on_peer(peer(Role::kActive, 4, "b"), monitor(PeerState::kUp), clock.now());
    (void)b.on_peer(peer(Role::kActive, 3, "a"), monitor(PeerState::kUp), clock.now());
    CHECK(a.role() == Role::kStandby);
    CHECK(b.role() == Role::kActive);
    CHECK(a.epoch() == 4);
  }
  SUBCASE("an epoch tie goes to the name that sorts last") {
    auto a = settled(Role::kActive, 4, clock, opts("a", "b"));
    auto b = settled(Role::kActive, 4, clock, opts("b", "a"));
    auto da = a.on_peer(peer(Role::kActive, 4, "b"), monitor(PeerState::kUp), clock.now());
    auto db = b.on_peer(peer(Role::kActive, 4, "a"), monitor(PeerState::kUp), clock.now());
    CHECK(a.role() == Role::kStandby);
    CHECK(b.role() == Role::kActive);
    CHECK(da.reason == "peer_active_higher_epoch");
    CHECK(has(db, Kind::kSendHeartbeatSoon));
  }
}

TEST_CASE("a standby adopts a higher epoch it sees, but not a standalone peer's") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 1, clock);
  auto d = m.on_peer(peer(Role::kStandby, 3), monitor(PeerState::kUp), clock.now());
  CHECK(m.epoch() == 3);
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.role == Role::kStandby);
  (void)m.on_peer(peer(Role::kStandalone, 9), monitor(PeerState::kUp), clock.now());
  CHECK(m.epoch() == 3);
}

TEST_CASE("automatic failover needs missed heartbeats, a failed ping and a reachable witness") {
  ManualClock clock;
  RoleOptions o = opts();
  o.automatic_failover = true;
  o.missed_heartbeats = 3;
  auto m = settled(Role::kStandby, 2, clock, o);
  (void)m.on_peer(peer(Role::kActive, 2), monitor(PeerState::kUp), clock.now());
  SUBCASE("too few missed") {
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 2, WitnessState::kReachable), clock.now());
    CHECK(m.role() == Role::kStandby);
  }
  SUBCASE("ping answers: service down, host up") {
    (void)m.on_monitor(monitor(PeerState::kServiceDown, 5, WitnessState::kReachable), clock.now());
    CHECK(m.role() == Role::kStandby);
  }
  SUBCASE("witness unreachable: maybe this node is the one cut off") {
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 5, WitnessState::kUnreachable),
                       clock.now());
    CHECK(m.role() == Role::kStandby);
  }
  SUBCASE("no witness configured") {
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 5, WitnessState::kNone), clock.now());
    CHECK(m.role() == Role::kStandby);
  }
  SUBCASE("the active peer's beats still arrive (a one-way cut): no promotion") {
    // Found by the simulation (tests/sim): b's heartbeats to a were lost, a's beats to b arrived,
    // and b promoted beside a live active.
    clock.advance(o.peer_heard_window - 1ms);
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 5, WitnessState::kReachable), clock.now());
    CHECK(m.role() == Role::kStandby);
    clock.advance(1ms);
    (void)m.on_monitor(monitor(PeerState::kUnreachable, 6, WitnessState::kReachable), clock.now());
    CHECK(m.role() == Role::kPromoting);
  }
  SUBCASE("all three: promote") {
    clock.advance(o.peer_heard_window);
    auto d =
        m.on_monitor(monitor(PeerState::kUnreachable, 3, WitnessState::kReachable), clock.now());
    CHECK(d.reason == "automatic_failover");
    CHECK(m.role() == Role::kPromoting);
    (void)finish_promotion(m, clock);
    CHECK(m.epoch() == 3);
  }
}

TEST_CASE("automatic failover is off by default") {
  ManualClock clock;
  auto m = settled(Role::kStandby, 2, clock);
  (void)m.on_peer(peer(Role::kActive, 2), monitor(PeerState::kUp), clock.now());
  (void)m.on_monitor(monitor(PeerState::kUnreachable, 10, WitnessState::kReachable), clock.now());
  CHECK(m.role() == Role::kStandby);
}

TEST_CASE("switchover: demote, drain, hand over, and the peer promotes at epoch + 1") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
  auto b = settled(Role::kStandby, 5, clock, opts("b", "a"));
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), monitor(PeerState::kUp), clock.now());
  (void)b.on_peer(peer(Role::kActive, 5, "a"), monitor(PeerState::kUp), clock.now());

  auto d = a.switchover(monitor(PeerState::kUp), clock.now());
  REQUIRE(d.accepted);
  CHECK(a.role() == Role::kDemoting);
  CHECK(has(d, Kind::kCloseWrites));
  CHECK(has(d, Kind::kWatchDrain));
  CHECK_FALSE(a.writable());

  auto e = a.on_backlog_drained(Position{40, 900}, clock.now());
  CHECK(a.role() == Role::kStandby);
  CHECK(has(e, Kind::kRunDemoteHook));
  // The handed-over epoch is on disk before the handover goes out (a crash must not forget it).
  REQUIRE(find(e, Kind::kPersist) != nullptr);
  CHECK(find(e, Kind::kPersist)->persist.epoch == 6);
  CHECK(find(e, Kind::kPersist)->persist.role == Role::kStandby);
  CHECK(find(e, Kind::kPersist) < find(e, Kind::kSendHandover));
  const auto* handover = find(e, Kind::kSendHandover);
  REQUIRE(handover != nullptr);
  CHECK(handover->epoch == 6);
  CHECK(handover->position == Position{40, 900});

  // b has not applied everything yet: refused, and a resends.
  auto not_yet = b.on_handover(peer(Role::kStandby, 5, "a"), 6, Position{40, 900},
                               Position{40, 800}, clock.now());
  CHECK_FALSE(not_yet.accepted);
  CHECK(b.role() == Role::kStandby);
  clock.advance(100ms);
  CHECK(has(a.tick(clock.now()), Kind::kSendHandover));
  auto ok = b.on_handover(peer(Role::kStandby, 5, "a"), 6, Position{40, 900}, Position{40, 900},
                          clock.now());
  CHECK(ok.accepted);
  CHECK(b.role() == Role::kPromoting);
  (void)finish_promotion(b, clock);
  CHECK(b.role() == Role::kActive);
  CHECK(b.epoch() == 6);
  // A resend that crossed the promotion changes nothing.
  CHECK(b.on_handover(peer(Role::kStandby, 5, "a"), 6, Position{40, 900}, Position{40, 900},
                      clock.now())
            .actions.empty());

  auto done = a.on_peer(peer(Role::kActive, 6, "b"), monitor(PeerState::kUp), clock.now());
  CHECK(done.message.find("switchover complete") != std::string::npos);
  CHECK(a.operation().empty());
  CHECK(a.epoch() == 6);
}

TEST_CASE("a switchover whose drain times out reopens writes on the active") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), monitor(PeerState::kUp), clock.now());
  (void)a.switchover(monitor(PeerState::kUp), clock.now());
  clock.advance(29s);
  (void)a.tick(clock.now());
  CHECK(a.role() == Role::kDemoting);
  clock.advance(1s);
  auto d = a.tick(clock.now());
  CHECK(a.role() == Role::kActive);
  CHECK(d.reason == "switchover_timeout");
  CHECK(has(d, Kind::kOpenWrites));
  CHECK(a.last_error().find("aborted") != std::string::npos);
}

TEST_CASE("a handover the peer never takes leaves no active, and says so") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), monitor(PeerState::kUp), clock.now());
  (void)a.switchover(monitor(PeerState::kUp), clock.now());
  (void)a.on_backlog_drained(Position{1, 1}, clock.now());
  clock.advance(10s);
  auto d = a.tick(clock.now());
  CHECK(a.role() == Role::kStandby);
  CHECK(a.last_error().find("no node is active") != std::string::npos);
  CHECK(a.operation().empty());
}

TEST_CASE("a failover after a handover goes above the handed epoch, heard of or not") {
  // Found by the deterministic simulation (tests/sim): the peer took epoch 6, this node never
  // heard; a failover at 6 made two actives in one epoch.
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), monitor(PeerState::kUp), clock.now());
  (void)a.switchover(monitor(PeerState::kUp), clock.now());
  (void)a.on_backlog_drained(Position{1, 1}, clock.now());
  clock.advance(10s);
  (void)a.tick(clock.now());
  REQUIRE(a.role() == Role::kStandby);
  auto d = a.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now());
  REQUIRE(d.accepted);
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 7);
}

TEST_CASE("a failover after a handover and a restart still goes above the handed epoch") {
  // The simulation's crash variant: the old active restarts from what it persisted.
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), monitor(PeerState::kUp), clock.now());
  (void)a.switchover(monitor(PeerState::kUp), clock.now());
  auto e = a.on_backlog_drained(Position{1, 1}, clock.now());
  REQUIRE(find(e, Kind::kPersist) != nullptr);
  auto restarted =
      settled(Role::kStandby, find(e, Kind::kPersist)->persist.epoch, clock, opts("a", "b"));
  auto d = restarted.failover(CommandContext{}, monitor(PeerState::kUnreachable), clock.now());
  REQUIRE(d.accepted);
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 7);
}

TEST_CASE("a persist that fails outside a promotion is written again until it lands") {
  ManualClock clock;
  RoleOptions o = opts();
  auto m = settled(Role::kStandby, 2, clock, o);
  auto d = m.on_peer(peer(Role::kActive, 4), monitor(PeerState::kUp), clock.now());
  REQUIRE(find(d, Kind::kPersist) != nullptr);
  CHECK(find(d, Kind::kPersist)->persist.epoch == 4);
  (void)m.on_persisted(false, "connection lost", clock.now());
  CHECK(m.last_error().find("retrying") != std::string::npos);
  CHECK(find(m.tick(clock.now()), Kind::kPersist) == nullptr);  // not at once
  clock.advance(o.persist_retry);
  auto retry = m.tick(clock.now());
  REQUIRE(find(retry, Kind::kPersist) != nullptr);
  CHECK(find(retry, Kind::kPersist)->persist.epoch == 4);
  (void)m.on_persisted(true, "", clock.now());
  clock.advance(o.persist_retry);
  CHECK(find(m.tick(clock.now()), Kind::kPersist) == nullptr);  // landed: no more retries
}

TEST_CASE("switchover guards") {
  ManualClock clock;
  SUBCASE("active with an unreachable peer refuses") {
    auto a = settled(Role::kActive, 1, clock);
    (void)a.on_peer(peer(Role::kStandby, 1), monitor(PeerState::kUp), clock.now());
    CHECK_FALSE(a.switchover(monitor(PeerState::kUnreachable, 1), clock.now()).accepted);
    CHECK(a.role() == Role::kActive);
  }
  SUBCASE("on the standby it asks the active peer") {
    auto b = settled(Role::kStandby, 1, clock);
    (void)b.on_peer(peer(Role::kActive, 1), monitor(PeerState::kUp), clock.now());
    auto d = b.switchover(monitor(PeerState::kUp), clock.now());
    CHECK(d.accepted);
    CHECK(has(d, Kind::kSendSwitchoverRequest));
    CHECK(b.role() == Role::kStandby);
  }
  SUBCASE("the active honours the standby's request") {
    auto a = settled(Role::kActive, 1, clock);
    auto d = a.on_switchover_request(peer(Role::kStandby, 1), monitor(PeerState::kUp), clock.now());
    CHECK(d.reason == "switchover_request");
    CHECK(a.role() == Role::kDemoting);
  }
  SUBCASE("a standby refuses a stale handover") {
    auto b = settled(Role::kStandby, 7, clock);
    CHECK_FALSE(b.on_handover(peer(Role::kActive, 6), 7, {}, {}, clock.now()).accepted);
  }
}

TEST_CASE("standalone and join") {
  ManualClock clock;
  SUBCASE("a standby leaves: writes open, replication paused; join closes writes again") {
    auto b = settled(Role::kStandby, 2, clock);
    auto d = b.standalone(clock.now());
    CHECK(b.role() == Role::kStandalone);
    CHECK(has(d, Kind::kOpenWrites));
    CHECK(has(d, Kind::kPauseReplication));
    CHECK_FALSE(b.replicating());
    REQUIRE(find(d, Kind::kPersist) != nullptr);
    CHECK(find(d, Kind::kPersist)->persist.standalone_from == Role::kStandby);
    auto j = b.join(clock.now());
    CHECK(b.role() == Role::kStandby);
    CHECK(has(j, Kind::kCloseWrites));
    CHECK(has(j, Kind::kResumeReplication));
    CHECK(b.epoch() == 2);
  }
  SUBCASE("an active node leaves and rejoins as active; fencing decides on contact") {
    auto a = settled(Role::kActive, 2, clock);
    auto d = a.standalone(clock.now());
    CHECK_FALSE(has(d, Kind::kOpenWrites));  // they were open already
    (void)a.on_peer(peer(Role::kActive, 3), monitor(PeerState::kUp), clock.now());
    CHECK(a.role() == Role::kStandalone);  // no fencing while out of the pair
    auto j = a.join(clock.now());
    CHECK(a.role() == Role::kActive);
    // Back in the pair fenced until confirmed (issue #18): the peer may be newer.
    CHECK(a.fenced());
    CHECK(a.fenced_reason() == "join_unconfirmed");
    CHECK(has(j, Kind::kCloseWrites));
    CHECK_FALSE(a.writable());
    (void)a.on_peer(peer(Role::kActive, 3), monitor(PeerState::kUp), clock.now());
    CHECK(a.role() == Role::kStandby);
  }
  SUBCASE("join on a node in the pair is refused") {
    auto a = settled(Role::kActive, 2, clock);
    CHECK_FALSE(a.join(clock.now()).accepted);
    (void)a.standalone(clock.now());
    CHECK_FALSE(a.standalone(clock.now()).accepted);
  }
}

TEST_CASE("role names round-trip") {
  for (Role r : {Role::kStarting, Role::kStandby, Role::kPromoting, Role::kActive, Role::kDemoting,
                 Role::kStandalone}) {
    CHECK(mpf::heartbeat::role_from_string(mpf::heartbeat::to_string(r)) == r);
  }
  CHECK_FALSE(mpf::heartbeat::role_from_string("leader"));
}

// --- issue #18: self-fencing, maintenance, the no-active settle rule, the arbiter -------------

namespace {

RoleOptions fencing_opts(std::string node = "a", std::string peer_name = "b") {
  RoleOptions o = opts(std::move(node), std::move(peer_name));
  o.automatic_failover = true;
  o.fence_after = 2s;
  o.settle_no_active = 15s;
  o.peer_heard_window = 3500ms;
  return o;
}

}  // namespace

TEST_CASE(
    "self-fencing: an active nothing confirmed for fence_after closes writes, and reopens "
    "on a round trip with a standby peer") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, fencing_opts());
  // Round trips every second keep it open.
  for (int i = 0; i < 5; ++i) {
    clock.advance(1s);
    auto d = a.tick(round_trip(clock.now() - 10ms), clock.now());
    CHECK_FALSE(has(d, Kind::kCloseWrites));
  }
  CHECK(a.writable());
  // Silence: the last round trip's heartbeat went out at `last`.
  const auto last = clock.now() - 10ms;
  clock.advance(1980ms);
  CHECK_FALSE(has(a.tick(round_trip(last), clock.now()), Kind::kCloseWrites));
  clock.advance(10ms);
  auto d = a.tick(round_trip(last, PeerState::kUnreachable), clock.now());
  CHECK(d.fence_changed);
  CHECK(has(d, Kind::kCloseWrites));
  CHECK(has(d, Kind::kRunDemoteHook));
  CHECK(a.role() == Role::kActive);
  CHECK(a.fenced());
  CHECK(a.fenced_reason() == "peer_and_witness_silent");
  CHECK_FALSE(a.writable());
  // An answer to a heartbeat sent BEFORE the fence is no confirmation.
  (void)a.on_peer(peer(Role::kStandby, 5, "b"), round_trip(last), clock.now());
  CHECK(a.fenced());
  // The peer still active at a lower epoch (it promoted, then heard us): not yet.
  clock.advance(1s);
  (void)a.on_peer(peer(Role::kActive, 4, "b"), round_trip(clock.now()), clock.now());
  CHECK(a.fenced());
  // A round trip begun after the fence, the peer standby at this epoch: open again.
  clock.advance(1s);
  auto e = a.on_peer(peer(Role::kStandby, 5, "b"), round_trip(clock.now()), clock.now());
  CHECK(e.fence_changed);
  CHECK(has(e, Kind::kOpenWrites));
  CHECK(has(e, Kind::kRunPromoteHook));
  CHECK(a.writable());
}

TEST_CASE("self-fencing: a witness reply keeps an active whose peer is gone open") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, fencing_opts());
  for (int i = 0; i < 10; ++i) {
    clock.advance(1s);
    MonitorSnapshot m = monitor(PeerState::kUnreachable, i + 1, WitnessState::kReachable);
    m.last_witness_reply_sent_at = clock.now() - 300ms;
    CHECK_FALSE(has(a.tick(m, clock.now()), Kind::kCloseWrites));
  }
  CHECK(a.writable());
}

TEST_CASE(
    "self-fencing: a standby above this epoch (it heard a newer active) makes a fenced "
    "active step down") {
  ManualClock clock;
  auto a = settled(Role::kActive, 5, clock, fencing_opts());
  clock.advance(3s);
  (void)a.tick(monitor(PeerState::kUnreachable), clock.now());
  REQUIRE(a.fenced());
  clock.advance(1s);
  auto d = a.on_peer(peer(Role::kStandby, 7, "b"), round_trip(clock.now()), clock.now());
  CHECK(a.role() == Role::kStandby);
  CHECK(d.reason == "peer_higher_epoch");
  CHECK(a.epoch() == 7);
}

TEST_CASE("self-fencing is off without fence_after, and paused in maintenance mode") {
  ManualClock clock;
  SUBCASE("off") {
    auto a = settled(Role::kActive, 5, clock, opts("a", "b"));
    clock.advance(1h);
    CHECK_FALSE(has(a.tick(monitor(PeerState::kUnreachable), clock.now()), Kind::kCloseWrites));
    CHECK(a.writable());
  }
  SUBCASE("maintenance") {
    auto a = settled(Role::kActive, 5, clock, fencing_opts());
    auto d = a.set_maintenance(true, clock.now());
    REQUIRE(find(d, Kind::kPersist) != nullptr);
    CHECK(find(d, Kind::kPersist)->persist.maintenance);
    CHECK(a.maintenance());
    clock.advance(1h);
    CHECK_FALSE(has(a.tick(monitor(PeerState::kUnreachable), clock.now()), Kind::kCloseWrites));
    CHECK(a.writable());
    // Off again: nothing confirmed it meanwhile, so it fences at once (the standby may resume
    // failover at the same instant).
    auto e = a.set_maintenance(false, clock.now());
    CHECK_FALSE(find(e, Kind::kPersist)->persist.maintenance);
    clock.advance(10ms);
    CHECK(has(a.tick(monitor(PeerState::kUnreachable), clock.now()), Kind::kCloseWrites));
  }
}

TEST_CASE("maintenance mode pauses automatic failover") {
  ManualClock clock;
  RoleOptions o = fencing_opts("b", "a");
  o.peer_heard_window = 1s;
  auto b = settled(Role::kStandby, 3, clock, o);
  (void)b.on_peer(peer(Role::kActive, 3), monitor(PeerState::kUp), clock.now());
  (void)b.set_maintenance(true, clock.now());
  clock.advance(10s);
  auto silent = monitor(PeerState::kUnreachable, 5, WitnessState::kReachable);
  CHECK(b.on_monitor(silent, clock.now()).actions.empty());
  CHECK(b.role() == Role::kStandby);
  // Off: the silence window counts from now, then failover resumes.
  (void)b.set_maintenance(false, clock.now());
  (void)b.on_monitor(silent, clock.now());
  CHECK(b.role() == Role::kStandby);
  clock.advance(1s);
  (void)b.on_monitor(silent, clock.now());
  CHECK(b.role() == Role::kPromoting);
}

TEST_CASE("two standbys that talk with no active settle: the higher (epoch, name) promotes") {
  // Issue #18: a switchover interrupted by a crash left both standby until an operator acted.
  ManualClock clock;
  auto a = settled(Role::kStandby, 6, clock, fencing_opts("a", "b"));  // handed over epoch 6
  auto b = settled(Role::kStandby, 5, clock, fencing_opts("b", "a"));
  for (int i = 0; i < 14; ++i) {
    clock.advance(1s);
    // Each hears the other's current epoch (b adopts the handed epoch 6 from a's word).
    (void)a.on_peer(peer(Role::kStandby, b.epoch(), "b"), round_trip(clock.now()), clock.now());
    (void)b.on_peer(peer(Role::kStandby, a.epoch(), "a"), round_trip(clock.now()), clock.now());
    CHECK_FALSE(a.tick(clock.now()).to);
    CHECK_FALSE(b.tick(clock.now()).to);
  }
  clock.advance(2s);
  (void)a.on_peer(peer(Role::kStandby, b.epoch(), "b"), round_trip(clock.now()), clock.now());
  (void)b.on_peer(peer(Role::kStandby, a.epoch(), "a"), round_trip(clock.now()), clock.now());
  auto da = a.tick(clock.now());
  auto db = b.tick(clock.now());
  // b adopted the handed epoch 6 from a's word; on the tie the name decides: b.
  CHECK(b.epoch() == 6);
  CHECK(db.reason == "no_active_peer");
  CHECK(b.role() == Role::kPromoting);
  REQUIRE(find(db, Kind::kPersist) != nullptr);
  CHECK(find(db, Kind::kPersist)->persist.epoch == 7);
  CHECK(a.role() == Role::kStandby);
  CHECK_FALSE(da.to);
}

TEST_CASE("a brand-new pair of standbys (epoch 0) waits for the operator") {
  ManualClock clock;
  auto a = settled(Role::kStandby, 0, clock, fencing_opts("a", "b"));
  for (int i = 0; i < 60; ++i) {
    clock.advance(1s);
    (void)a.on_peer(peer(Role::kStandby, 0, "b"), round_trip(clock.now()), clock.now());
    CHECK_FALSE(a.tick(clock.now()).to);
  }
  CHECK(a.role() == Role::kStandby);
}

TEST_CASE("with the arbiter a promotion opens writes only after the compare-and-swap") {
  ManualClock clock;
  RoleOptions o = fencing_opts("b", "a");
  o.arbiter = true;
  auto b = settled(Role::kStandby, 3, clock, o);
  auto d = b.failover(CommandContext{}, monitor(PeerState::kUnreachable, 3), clock.now());
  REQUIRE(d.accepted);
  auto e = finish_promotion(b, clock);
  CHECK(b.role() == Role::kPromoting);
  CHECK_FALSE(has(e, Kind::kOpenWrites));
  REQUIRE(find(e, Kind::kArbiterAcquire) != nullptr);
  CHECK(find(e, Kind::kArbiterAcquire)->epoch == 4);
  CHECK(find(e, Kind::kArbiterAcquire)->replace_node.empty());
  SUBCASE("granted") {
    mpf::heartbeat::ArbiterWord w;
    w.holds = true;
    w.sent_at = clock.now();
    auto f = b.on_arbiter_acquired(w, "", clock.now());
    CHECK(b.role() == Role::kActive);
    CHECK(has(f, Kind::kOpenWrites));
    CHECK(b.writable());
    // Renewals keep it open; none for fence_after fences it even though... nothing else counts.
    clock.advance(1s);
    w.sent_at = clock.now();
    (void)b.on_arbiter(w, clock.now());
    clock.advance(1s);
    CHECK_FALSE(has(b.tick(round_trip(clock.now()), clock.now()), Kind::kCloseWrites));
    clock.advance(1s);
    auto g = b.tick(round_trip(clock.now()), clock.now());  // the peer's round trips do not count
    CHECK(has(g, Kind::kCloseWrites));
    CHECK(b.fenced_reason() == "arbiter_unconfirmed");
    CHECK(has(g, Kind::kArbiterAcquire));
    w.sent_at = clock.now();
    CHECK(has(b.on_arbiter_acquired(w, "", clock.now()), Kind::kOpenWrites));
  }
  SUBCASE("refused: the peer's lease is alive") {
    mpf::heartbeat::ArbiterWord w;
    w.holder = "a";
    w.holder_epoch = 3;
    auto f = b.on_arbiter_acquired(w, "key held by a", clock.now());
    CHECK(b.role() == Role::kStandby);
    CHECK(f.reason == "arbiter_refused");
    CHECK_FALSE(has(f, Kind::kOpenWrites));
    CHECK(b.last_error().find("refused by the arbiter") != std::string::npos);
  }
}

TEST_CASE("with the arbiter a restarted active reopens only when it holds the key again") {
  ManualClock clock;
  RoleOptions o = fencing_opts();
  o.arbiter = true;
  RoleMachine a(o, persisted(Role::kActive, 5), clock.now());
  (void)a.start(clock.now());
  // Even a standby peer's round trip does not reopen it: the arbiter decides.
  auto d = a.on_peer(peer(Role::kStandby, 5, "b"), round_trip(clock.now()), clock.now());
  CHECK(a.role() == Role::kActive);
  CHECK(a.fenced());
  REQUIRE(find(d, Kind::kArbiterAcquire) != nullptr);
  CHECK(find(d, Kind::kArbiterAcquire)->replace_node == "a");
  CHECK(find(d, Kind::kArbiterAcquire)->replace_epoch == 5);
  SUBCASE("the key is b's at epoch 6: step down") {
    mpf::heartbeat::ArbiterWord w;
    w.holder = "b";
    w.holder_epoch = 6;
    auto e = a.on_arbiter_acquired(w, "held", clock.now());
    CHECK(a.role() == Role::kStandby);
    CHECK(a.epoch() == 6);
    CHECK_FALSE(has(e, Kind::kOpenWrites));
  }
  SUBCASE("etcd unreachable: stays fenced, asks again") {
    mpf::heartbeat::ArbiterWord w;
    (void)a.on_arbiter_acquired(w, "connection refused", clock.now());
    CHECK(a.fenced());
    clock.advance(1s);
    CHECK(has(a.tick(clock.now()), Kind::kArbiterAcquire));
  }
}
