// Targeted deterministic scenarios: one story each, on the same simulated pair as the campaign
// (sim.hpp), with the invariants checked after every event as there.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "sim/sim.hpp"

using namespace std::chrono_literals;
using mpf::heartbeat::PeerState;
using mpf::heartbeat::Role;
using mpf::sim::CutMode;
using mpf::sim::Fault;
using mpf::sim::SimConfig;
using mpf::sim::World;

namespace {

constexpr int kA = 0;
constexpr int kB = 1;

SimConfig config(bool automatic = true) {
  SimConfig c;
  c.interval = 1s;
  c.timeout = 500ms;
  c.ping_timeout = 300ms;
  c.automatic_failover = automatic;
  c.witness = true;
  c.missed_heartbeats = 3;
  c.switchover_timeout = 10s;
  return c;
}

// No invariant broke; on a failure, the story so far.
void expect_clean(const World& w) {
  CAPTURE(w.seed());
  if (!w.violations().empty()) {
    std::fprintf(stderr, "sim scenario (seed %llu) failed; last steps:\n%s\n",
                 static_cast<unsigned long long>(w.seed()), w.trace_tail().c_str());
  }
  for (const auto& v : w.violations()) FAIL_CHECK(v);
}

bool settled(World& w, int active) {
  const auto& x = w.node(active);
  const auto& y = w.node(1 - active);
  return x.role() == Role::kActive && y.role() == Role::kStandby && x.epoch() == y.epoch() &&
         x.store().writes_open && !y.store().writes_open;
}

}  // namespace

TEST_CASE("an initialized pair settles with a active and b standby at epoch 1") {
  World w(1, config());
  w.run_for(10s);
  CHECK(settled(w, kA));
  CHECK(w.node(kA).epoch() == 1);
  expect_clean(w);
}

TEST_CASE("brand-new nodes settle with the initial_role active node active at epoch 1") {
  SimConfig c = config();
  c.brand_new = true;
  c.b_boot_delay = 2s;
  World w(2, c);
  w.run_for(10s);
  CHECK(settled(w, kA));
  CHECK(w.node(kA).epoch() == 1);
  expect_clean(w);
}

TEST_CASE("a cut with the witness reachable from b promotes b and a steps down on heal") {
  for (const CutMode mode : {CutMode::kDrop, CutMode::kClog}) {
    CAPTURE(static_cast<int>(mode));
    World w(3, config());
    w.run_for(5s);
    REQUIRE(settled(w, kA));
    w.partition(mode);  // both still reach the witness
    REQUIRE(w.run_until([&] { return w.node(kB).role() == Role::kActive; }, 10s));
    CHECK(w.node(kB).epoch() == 2);
    // Until heal a is active too, in the older epoch: what the product allows (README), and
    // exactly what the invariant forbids in the same epoch.
    CHECK(w.node(kA).role() == Role::kActive);
    CHECK(w.node(kA).epoch() == 1);
    w.run_for(20s);
    w.heal_all();
    CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
    CHECK(w.node(kA).epoch() == 2);
    CHECK(w.counters().automatic_failovers == 1);
    CHECK(w.counters().step_downs == 1);
    expect_clean(w);
  }
}

TEST_CASE("a cut that leaves b without the witness never promotes b") {
  World w(4, config());
  w.run_for(5s);
  w.partition(CutMode::kDrop);
  w.set_witness(kB, false);
  w.run_for(60s);
  CHECK(w.node(kB).role() == Role::kStandby);
  CHECK(w.node(kB).monitor()->snapshot().peer_state == PeerState::kUnreachable);
  CHECK(w.counters().automatic_failovers == 0);
  w.heal_all();
  CHECK(w.settle_and_check_liveness());
  CHECK(settled(w, kA));
  expect_clean(w);
}

TEST_CASE("a crash of the active daemon (host still pings) never leads to automatic failover") {
  World w(5, config());
  w.run_for(5s);
  w.crash_daemon(kA);
  w.run_for(60s);
  CHECK(w.node(kB).role() == Role::kStandby);
  CHECK(w.node(kB).monitor()->snapshot().peer_state == PeerState::kServiceDown);
  CHECK(w.counters().automatic_failovers == 0);
  // Back, a waits for b's word (b is standby), then takes writes again at its epoch.
  w.restart_daemon(kA);
  CHECK(w.node(kA).role() == Role::kStarting);
  CHECK(w.run_until([&] { return settled(w, kA); }, 5s));
  CHECK(w.node(kA).epoch() == 1);
  expect_clean(w);
}

TEST_CASE(
    "a crash of the active host with the witness reachable fails over, and the old active "
    "steps down when it comes back") {
  World w(6, config());
  w.run_for(5s);
  w.crash_host(kA);
  REQUIRE(w.run_until([&] { return w.node(kB).role() == Role::kActive; }, 10s));
  CHECK(w.node(kB).epoch() == 2);
  w.run_for(30s);
  w.boot_host(kA);  // persisted active at epoch 1, writes still open in its database...
  // ...closed at once by the starting daemon (issue #18), before it hears anything.
  w.run_for(20ms);
  CHECK_FALSE(w.node(kA).store().writes_open);
  CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
  CHECK(w.node(kA).epoch() == 2);
  expect_clean(w);
}

TEST_CASE("a switchover moves the active role to the standby with no loss") {
  for (const int from : {kA, kB}) {
    CAPTURE(from);
    World w(7, config());
    w.run_for(5s);
    const auto d = w.node(from).command("switchover");
    REQUIRE(d);
    CHECK(d->accepted);
    CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
    CHECK(w.node(kB).epoch() == 2);
    CHECK(w.node(kB).store().applied == w.node(kA).store().committed);
    expect_clean(w);
  }
}

TEST_CASE("a switchover during message loss ends with exactly one active") {
  for (uint64_t seed = 100; seed < 140; ++seed) {
    CAPTURE(seed);
    World w(seed, config(/*automatic=*/seed % 2 == 0));
    w.run_for(5s);
    const double loss = 0.2 + 0.6 * w.uniform();
    w.link(kA, kB).drop = loss;
    w.link(kB, kA).drop = loss;
    w.link(kA, kB).reorder = 0.2;
    w.link(kB, kA).duplicate = 0.2;
    w.run_for(w.uniform(0s, 3s));
    w.node(w.uniform() < 0.5 ? kA : kB).command("switchover");
    w.run_for(w.uniform(1s, 30s));
    CHECK(w.settle_and_check_liveness());
    expect_clean(w);
  }
}

TEST_CASE("a slow persist during promotion does not open writes early") {
  World w(8, config(/*automatic=*/false));
  w.run_for(5s);
  w.crash_host(kA);
  w.run_for(5s);
  w.node(kB).store().next_persist_delay = 3s;
  const auto d = w.node(kB).command("failover");
  REQUIRE(d);
  CHECK(d->accepted);
  w.run_for(1s);
  CHECK(w.node(kB).blocked());
  CHECK(w.node(kB).role() == Role::kPromoting);
  CHECK_FALSE(w.node(kB).store().writes_open);
  CHECK(w.node(kB).store().persisted.epoch == 1);
  w.run_for(3s);
  CHECK(w.node(kB).role() == Role::kActive);
  CHECK(w.node(kB).store().writes_open);
  CHECK(w.node(kB).store().persisted.epoch == 2);
  CHECK(w.counters().fault(Fault::kSlowPersist) == 1);
  expect_clean(w);
}

TEST_CASE("a promotion whose persist fails leaves the standby fenced at its old epoch") {
  World w(9, config(/*automatic=*/false));
  w.run_for(5s);
  w.crash_host(kA);
  w.run_for(5s);
  w.node(kB).store().fail_persists = 1;
  const auto d = w.node(kB).command("failover");
  REQUIRE(d);
  CHECK(w.node(kB).role() == Role::kStandby);
  CHECK_FALSE(w.node(kB).store().writes_open);
  CHECK(w.node(kB).epoch() == 1);
  // The operator tries again once the database is back.
  REQUIRE(w.node(kB).command("failover"));
  CHECK(w.node(kB).role() == Role::kActive);
  CHECK(w.node(kB).epoch() == 2);
  expect_clean(w);
}

TEST_CASE(
    "a crash in the middle of a slow promotion persist restarts in whichever role was "
    "committed") {
  int committed = 0;
  for (uint64_t seed = 200; seed < 216; ++seed) {
    CAPTURE(seed);
    World w(seed, config(/*automatic=*/false));
    w.run_for(5s);
    w.crash_host(kA);
    w.run_for(5s);
    w.node(kB).store().next_persist_delay = 2s;
    w.node(kB).command("failover");
    w.run_for(1s);
    w.crash_daemon(kB);
    committed += w.node(kB).store().persisted.role == Role::kActive;
    w.restart_daemon(kB);
    CHECK(w.settle_and_check_liveness());
    expect_clean(w);
  }
  CHECK(committed > 0);
  CHECK(committed < 16);
}

TEST_CASE(
    "a forced failover over a live active gives two actives in different epochs only "
    "until they talk") {
  World w(10, config(/*automatic=*/false));
  w.run_for(5s);
  const auto refused = w.node(kB).command("failover");
  REQUIRE(refused);
  CHECK_FALSE(refused->accepted);  // the peer is up and active
  w.partition(CutMode::kClog);
  w.run_for(5s);
  const auto forced = w.node(kB).command("failover", /*force=*/true);
  REQUIRE(forced);
  CHECK(forced->accepted);
  CHECK(w.node(kB).role() == Role::kActive);
  CHECK(w.node(kA).role() == Role::kActive);
  CHECK(w.node(kB).epoch() == 2);
  w.run_for(10s);
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
  expect_clean(w);
}

TEST_CASE("a forced failover while the peer is heard steps the old active down at once") {
  World w(11, config(/*automatic=*/false));
  w.run_for(5s);
  REQUIRE(w.node(kB).command("failover", /*force=*/true));
  CHECK(w.run_until([&] { return settled(w, kB); }, 3s));
  CHECK(w.node(kA).epoch() == 2);
  expect_clean(w);
}

TEST_CASE("standalone and join take a node out of the pair and back") {
  World w(12, config());
  w.run_for(5s);
  REQUIRE(w.node(kB).command("standalone"));
  CHECK(w.node(kB).role() == Role::kStandalone);
  CHECK(w.node(kB).store().writes_open);
  CHECK(w.node(kB).replication_paused());
  w.run_for(30s);
  CHECK(w.node(kA).role() == Role::kActive);  // a standalone peer is not a failover reason
  REQUIRE(w.node(kB).command("join"));
  CHECK(w.run_until([&] { return settled(w, kA); }, 3s));
  expect_clean(w);
}

TEST_CASE("swizzle: links clogged one by one and healed in random order end with one active") {
  for (uint64_t seed = 300; seed < 340; ++seed) {
    CAPTURE(seed);
    World w(seed, config());
    w.run_for(5s);
    std::vector<int> order{0, 1, 2, 3};
    std::shuffle(order.begin(), order.end(), w.rng());
    for (int l : order) {
      if (l < 2) {
        w.cut(l, 1 - l, CutMode::kClog);
      } else {
        w.set_witness(l - 2, false);
      }
      w.run_for(w.uniform(100ms, 4s));
    }
    std::shuffle(order.begin(), order.end(), w.rng());
    for (int l : order) {
      if (l < 2) {
        w.heal(l, 1 - l);
      } else {
        w.set_witness(l - 2, true);
      }
      w.run_for(w.uniform(100ms, 6s));
    }
    CHECK(w.settle_and_check_liveness());
    expect_clean(w);
  }
}

// Found by the simulation (docs/design.md §4, "Fencing"): after a switchover whose handover landed
// on b but whose confirmation never came back, a reports "no node is active; run `mpfailover
// failover`". Run on a, that failover used to promote a to epoch 2, the epoch a had just handed
// to b: two actives in one epoch, and on heal the name, not the newer promotion, decided.
TEST_CASE(
    "a failover after a handover that b took but a never heard of goes above the handed "
    "epoch") {
  World w(13, config(/*automatic=*/false));
  w.run_for(5s);
  REQUIRE(w.node(kA).command("switchover"));
  REQUIRE(w.run_until([&] { return w.node(kB).role() == Role::kActive; }, 5s));
  w.partition(CutMode::kDrop);  // before b's first beat as active reaches a
  CHECK(w.node(kA).role_machine()->last_peer()->role == Role::kStandby);
  w.run_for(20s);  // a's handover times out: "no node is active"
  REQUIRE(w.node(kA).role() == Role::kStandby);
  const auto d = w.node(kA).command("failover");
  REQUIRE(d);
  CHECK(d->accepted);
  CHECK(w.node(kA).epoch() == 3);
  w.run_for(5s);
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kA); }, 5s));  // the newer promotion stays
  expect_clean(w);
}

// Found by the simulation: a brand-new node whose node.initial_role promotion cannot be
// persisted went to standby with its application login still writable (a new database's
// default), since only the initial_role_standby path closed writes.
TEST_CASE(
    "a brand-new node whose first promotion cannot be persisted is a standby with writes "
    "closed") {
  SimConfig c = config(/*automatic=*/false);
  c.brand_new = true;
  c.b_boot_delay = 1s;
  World w(14, c);
  w.node(kA).crash();
  w.node(kA).store() = mpf::sim::Store{};  // as brand-new as before the boot in World()
  w.node(kA).store().fail_persists = 1;
  w.restart_daemon(kA);
  CHECK(w.node(kA).role() == Role::kStandby);
  CHECK_FALSE(w.node(kA).store().writes_open);
  w.run_for(5s);
  expect_clean(w);
}

// Under a one-way cut (b's frames to a lost, a's to b arriving) b's heartbeats go unanswered
// while a's beats keep saying "active": promoting would make two actives (different epochs) for
// as long as the cut lasts. RoleOptions::peer_heard_window keeps b standby.
TEST_CASE("a standby that still hears the active peer's beats never fails over automatically") {
  SimConfig c = config();
  c.strict_hearing = true;
  World w(15, c);
  w.run_for(5s);
  w.cut(kB, kA, CutMode::kDrop);
  w.run_for(30s);
  CHECK(w.node(kB).role() == Role::kStandby);
  expect_clean(w);
}

// --- issue #18: self-fencing, the arbiter, restarts while cut off, interrupted switchovers ----

namespace {

SimConfig arbiter_config(bool witness = false) {
  SimConfig c = config();
  c.arbiter = true;
  c.witness = witness;
  c.drift_ppm = {400, -400};
  return c;
}

// Runs until `pred` or `limit`, checking after every event that writes are never open on both
// nodes at once; returns whether `pred` held.
bool run_one_writer(World& w, const std::function<bool()>& pred, mpf::Duration limit) {
  bool two = false;
  const bool held = w.run_until(
      [&] {
        two |= w.node(kA).store().writes_open && w.node(kB).store().writes_open;
        return pred();
      },
      limit);
  CHECK_FALSE(two);
  return held;
}

}  // namespace

TEST_CASE("ICMP witness: an isolated active closes its writes before the standby opens its own") {
  World w(30, config());
  w.run_for(5s);
  REQUIRE(settled(w, kA));
  // a loses every link: the peer and the witness. b still reaches the witness.
  w.partition(CutMode::kDrop);
  w.set_witness(kA, false);
  CHECK(run_one_writer(
      w, [&] { return w.node(kB).store().writes_open; }, 15s));
  CHECK(w.node(kB).role() == Role::kActive);
  CHECK(w.node(kA).role() == Role::kActive);
  CHECK(w.node(kA).role_machine()->fenced());
  CHECK(w.node(kA).role_machine()->fenced_reason() == "peer_and_witness_silent");
  CHECK(w.counters().self_fences == 1);
  // Healed, a hears b active at epoch 2 and steps down.
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
  expect_clean(w);
}

TEST_CASE("ICMP witness: without self-fencing (MPF_SIM_BREAK=no_self_fence) the invariant fails") {
  SimConfig c = config();
  c.inject = mpf::sim::Break::kNoSelfFence;
  World w(30, c);
  w.run_for(5s);
  w.partition(CutMode::kDrop);
  w.set_witness(kA, false);
  w.run_for(15s);
  CHECK(w.node(kA).store().writes_open);
  CHECK(w.node(kB).store().writes_open);
  CHECK(w.counters().two_writer_episodes == 1);
}

TEST_CASE(
    "ICMP witness: a cut both nodes survive with the witness still gives two writers "
    "(what an ICMP ping cannot decide; the arbiter does)") {
  World w(31, config());
  w.run_for(5s);
  w.partition(CutMode::kDrop);
  w.run_for(15s);
  CHECK(w.node(kB).store().writes_open);
  CHECK(w.node(kA).store().writes_open);  // a still reaches the witness: no fence
  CHECK(w.counters().two_writer_episodes == 1);
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
  expect_clean(w);
}

TEST_CASE(
    "issue #18: an active restarted while cut off comes back fenced, not writable at its "
    "old epoch, and steps down when it hears the peer promoted higher") {
  World w(32, config());
  w.run_for(5s);
  w.partition(CutMode::kDrop);  // both reach the witness: b promotes at epoch 2
  REQUIRE(w.run_until([&] { return w.node(kB).role() == Role::kActive; }, 15s));
  w.crash_daemon(kA);
  w.run_for(1s);
  w.restart_daemon(kA);
  w.run_for(20ms);
  CHECK_FALSE(w.node(kA).store().writes_open);  // closed at once at start
  w.run_for(30s);
  CHECK(w.node(kA).role() == Role::kActive);
  CHECK(w.node(kA).role_machine()->fenced());
  CHECK(w.node(kA).role_machine()->fenced_reason() == "restart_unconfirmed");
  CHECK_FALSE(w.node(kA).store().writes_open);
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kB); }, 5s));
  CHECK(w.node(kA).epoch() == 2);
  expect_clean(w);
}

TEST_CASE("issue #18: a switchover interrupted by a crash settles without an operator") {
  uint64_t needed_rule = 0;
  for (uint64_t seed = 40; seed < 48; ++seed) {
    CAPTURE(seed);
    World w(seed, config());
    w.run_for(5s);
    REQUIRE(settled(w, kA));
    w.node(kB).store().next_persist_delay = 3s;  // b's promotion persist is slow...
    REQUIRE(w.node(kA).command("switchover"));
    w.run_for(1s);
    w.crash_daemon(kB);  // ...and b's daemon dies in it (committed or not: a coin)
    w.run_for(500ms);
    w.restart_daemon(kB);
    // Nobody runs `mpfailover failover`: within the bound one node is active, the other standby.
    CHECK(w.run_until(
        [&] {
          return (settled(w, kA) || settled(w, kB)) &&
                 w.node(kA).monitor()->snapshot().peer_state == PeerState::kUp;
        },
        40s));
    needed_rule += w.counters().no_active_promotions;
    CHECK(w.counters().end_operator_failovers == 0);
    expect_clean(w);
  }
  // In some seeds the crash left both standby, and the no-active rule settled them.
  CHECK(needed_rule > 0);
}

TEST_CASE("etcd arbiter: a cut between the nodes, both reaching etcd, never gives two writers") {
  World w(34, arbiter_config());
  w.run_for(5s);
  REQUIRE(settled(w, kA));
  REQUIRE(w.arbiter_value().has_value());
  CHECK(w.arbiter_value()->node == "a");
  w.partition(CutMode::kDrop);
  run_one_writer(
      w, [] { return false; }, 30s);
  // b tried (automatic failover) and the compare-and-swap refused it: a's lease is alive.
  CHECK(w.counters().arbiter_refusals >= 1);
  CHECK(w.node(kA).store().writes_open);
  CHECK(w.node(kB).role() == Role::kStandby);
  // Each refused attempt persisted its epoch first (a restart must never reuse it): b's standby
  // epoch is above a's, which fencing allows (only actives are ranked).
  CHECK(w.node(kB).epoch() > w.node(kA).epoch());
  w.heal_all();
  w.run_for(5s);
  CHECK(w.node(kA).role() == Role::kActive);
  CHECK(w.node(kA).store().writes_open);
  CHECK(w.node(kB).role() == Role::kStandby);
  CHECK_FALSE(w.node(kB).store().writes_open);
  expect_clean(w);
}

TEST_CASE(
    "etcd arbiter: an active cut from everyone fences before its lease expires; the "
    "standby takes the key after") {
  World w(35, arbiter_config());
  w.run_for(5s);
  REQUIRE(settled(w, kA));
  w.partition(CutMode::kDrop);
  w.set_arbiter_reachable(kA, false);
  CHECK(run_one_writer(
      w, [&] { return w.node(kB).store().writes_open; }, 30s));
  CHECK(w.node(kA).role_machine()->fenced());
  CHECK(w.node(kA).role_machine()->fenced_reason() == "arbiter_unconfirmed");
  CHECK(w.arbiter_value()->node == "b");
  w.heal_all();
  CHECK(w.run_until([&] { return settled(w, kB); }, 10s));
  expect_clean(w);
}

TEST_CASE(
    "etcd arbiter: etcd out of the active's reach fences it (the peer's word does not "
    "count), and it reopens when etcd is back") {
  World w(36, arbiter_config());
  w.run_for(5s);
  w.set_arbiter_reachable(kA, false);
  CHECK(w.run_until([&] { return w.node(kA).role_machine()->fenced(); }, 5s));
  CHECK_FALSE(w.node(kA).store().writes_open);
  w.run_for(10s);
  CHECK(w.node(kB).role() == Role::kStandby);  // it hears a: no failover
  w.set_arbiter_reachable(kA, true);
  CHECK(w.run_until([&] { return settled(w, kA); }, 5s));
  expect_clean(w);
}

TEST_CASE(
    "etcd arbiter: without the compare-and-swap (MPF_SIM_BREAK=arbiter_no_cas) the "
    "two-writer invariant fails") {
  SimConfig c = arbiter_config();
  c.inject = mpf::sim::Break::kArbiterNoCas;
  World w(34, c);
  w.run_for(5s);
  w.partition(CutMode::kDrop);
  w.run_for(30s);
  CHECK_FALSE(w.violations().empty());
}

TEST_CASE("maintenance mode pauses automatic failover and self-fencing") {
  World w(37, config());
  w.run_for(5s);
  REQUIRE(w.node(kA).command("maintenance on"));
  REQUIRE(w.node(kB).command("maintenance on"));
  w.partition(CutMode::kDrop);
  w.set_witness(kA, false);
  w.run_for(30s);
  CHECK(w.node(kB).role() == Role::kStandby);
  CHECK(w.node(kA).store().writes_open);
  CHECK_FALSE(w.node(kA).role_machine()->fenced());
  CHECK(w.node(kA).store().persisted.maintenance);
  w.heal_all();
  REQUIRE(w.node(kA).command("maintenance off"));
  REQUIRE(w.node(kB).command("maintenance off"));
  w.run_for(10s);
  CHECK(settled(w, kA));
  expect_clean(w);
}
