// The default campaign: a nemesis that fires random faults and operator commands at random
// times for a while, composed as FoundationDB's tests/fast/CycleTest.toml composes a workload
// with faults; then every fault stops and the liveness check runs (World's invariants run
// after every event throughout).
//
// In the campaign: every network fault, crashes of the daemon and of the host, slow and failed
// persists, clock jumps, and the operator's `switchover`, `failover` (without --force) and
// `standalone` followed by `join`. Not in it: `failover --force` — it promotes over an active
// peer on purpose, so "never two actives" holds only after heal by design; targeted tests cover
// it (sim_scenarios_test.cpp).
#include <algorithm>
#include <memory>

#include "sim/sim.hpp"

namespace mpf::sim {

using namespace std::chrono_literals;

namespace {

class Nemesis {
 public:
  Nemesis(World& w, TimePoint end) : w_(w), end_(end) {}

  void start() { schedule(); }

 private:
  void schedule() {
    Duration gap = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(std::exponential_distribution<double>(1.0 / 6.0)(w_.rng())));
    if (w_.uniform() < 0.15) gap += w_.uniform(30s, 90s);  // a quiet spell: let the pair settle
    if (w_.now() + gap >= end_) return;
    w_.after(gap, [this] {
      fire();
      schedule();
    });
  }

  // Undo after a random while, unless the faults have stopped (stop_faults healed it already).
  void later(Duration lo, Duration hi, std::function<void()> fn) {
    w_.after(w_.uniform(lo, hi), [this, fn = std::move(fn)] {
      if (w_.now() < end_) fn();
    });
  }

  int any_node() { return w_.uniform() < 0.5 ? 0 : 1; }
  CutMode any_cut() { return w_.uniform() < 0.5 ? CutMode::kDrop : CutMode::kClog; }

  void fire() {
    struct Choice {
      int weight;
      void (Nemesis::*fn)();
    };
    static constexpr Choice kChoices[] = {
        {10, &Nemesis::loss},        {4, &Nemesis::duplicate},      {4, &Nemesis::reorder},
        {4, &Nemesis::delay_spike},  {8, &Nemesis::partition},      {6, &Nemesis::one_way},
        {4, &Nemesis::port_block},   {4, &Nemesis::link_down},      {6, &Nemesis::witness_loss},
        {3, &Nemesis::swizzle},      {8, &Nemesis::daemon_crash},   {4, &Nemesis::host_crash},
        {6, &Nemesis::slow_persist}, {3, &Nemesis::failed_persist}, {2, &Nemesis::clock_jump},
        {7, &Nemesis::switchover},   {3, &Nemesis::failover},       {2, &Nemesis::standalone},
        {6, &Nemesis::arbiter_cut},  {3, &Nemesis::arbiter_loss},   {2, &Nemesis::maintenance},
    };
    int total = 0;
    for (const auto& c : kChoices) total += c.weight;
    int r = static_cast<int>(w_.rng()() % static_cast<uint64_t>(total));
    for (const auto& c : kChoices) {
      if (r < c.weight) {
        (this->*c.fn)();
        return;
      }
      r -= c.weight;
    }
  }

  void loss() {
    const int f = any_node();
    w_.link(f, 1 - f).drop = 0.05 + 0.45 * w_.uniform();
    later(1s, 30s, [this, f] { w_.link(f, 1 - f).drop = 0; });
  }
  void duplicate() {
    const int f = any_node();
    w_.link(f, 1 - f).duplicate = 0.1 + 0.4 * w_.uniform();
    later(1s, 30s, [this, f] { w_.link(f, 1 - f).duplicate = 0; });
  }
  void reorder() {
    const int f = any_node();
    w_.link(f, 1 - f).reorder = 0.1 + 0.4 * w_.uniform();
    later(1s, 30s, [this, f] { w_.link(f, 1 - f).reorder = 0; });
  }
  void delay_spike() {
    const int f = any_node();
    w_.fault(Fault::kDelaySpike);
    w_.link(f, 1 - f).extra_delay = w_.uniform(10ms, 2s);
    later(1s, 20s, [this, f] { w_.link(f, 1 - f).extra_delay = Duration::zero(); });
  }
  void partition() {
    w_.fault(Fault::kPartition);
    w_.partition(any_cut());
    later(1s, 60s, [this] {
      w_.heal(0, 1);
      w_.heal(1, 0);
    });
  }
  void one_way() {
    const int f = any_node();
    w_.fault(Fault::kOneWayPartition);
    w_.cut(f, 1 - f, any_cut());
    later(1s, 60s, [this, f] { w_.heal(f, 1 - f); });
  }
  void port_block() {
    w_.fault(Fault::kPortBlock);
    w_.partition(CutMode::kDrop, /*icmp_too=*/false);
    later(1s, 60s, [this] {
      w_.heal(0, 1);
      w_.heal(1, 0);
    });
  }
  void link_down() {
    const int n = any_node();
    w_.fault(Fault::kLinkDown);
    w_.partition(any_cut());
    w_.set_witness(n, false);
    w_.set_arbiter_reachable(n, false);  // cut off from everyone: the arbiter too
    w_.trace(std::string(n == 0 ? "a" : "b") + " LinkDown");
    later(1s, 60s, [this, n] {
      w_.heal(0, 1);
      w_.heal(1, 0);
      w_.set_witness(n, true);
      w_.set_arbiter_reachable(n, true);
    });
  }
  void witness_loss() {
    const int n = any_node();
    w_.fault(Fault::kWitnessLoss);
    w_.set_witness(n, false);
    w_.trace(std::string(n == 0 ? "a" : "b") + " WitnessLost");
    later(1s, 60s, [this, n] { w_.set_witness(n, true); });
  }
  void swizzle() {
    // contrib/Joshua's swizzle: clog the links one by one, then heal them in random order.
    w_.fault(Fault::kSwizzle);
    std::vector<int> links{0, 1, 2, 3};  // a->b, b->a, a-witness, b-witness
    std::shuffle(links.begin(), links.end(), w_.rng());
    Duration t{0};
    for (int l : links) {
      t += w_.uniform(100ms, 3s);
      w_.after(t, [this, l] {
        if (w_.now() >= end_) return;
        if (l < 2) {
          w_.cut(l, 1 - l, CutMode::kClog);
        } else {
          w_.set_witness(l - 2, false);
        }
      });
    }
    std::shuffle(links.begin(), links.end(), w_.rng());
    for (int l : links) {
      t += w_.uniform(100ms, 5s);
      w_.after(t, [this, l] {
        if (w_.now() >= end_) return;
        if (l < 2) {
          w_.heal(l, 1 - l);
        } else {
          w_.set_witness(l - 2, true);
        }
      });
    }
  }
  void daemon_crash() {
    const int n = any_node();
    if (!w_.node(n).running()) return;
    w_.fault(Fault::kDaemonCrash);
    w_.crash_daemon(n);
    later(200ms, 30s, [this, n] { w_.restart_daemon(n); });
  }
  void host_crash() {
    const int n = any_node();
    if (!w_.host_up(n)) return;
    w_.fault(Fault::kHostCrash);
    w_.crash_host(n);
    later(2s, 60s, [this, n] { w_.boot_host(n); });
  }
  void slow_persist() { w_.node(any_node()).store().next_persist_delay = w_.uniform(50ms, 6s); }
  void failed_persist() { w_.node(any_node()).store().fail_persists = 1; }
  void clock_jump() {
    const int n = any_node();
    w_.fault(Fault::kClockJump);
    w_.jump_clock(n, w_.uniform(-3s, 3s));
  }
  // Issue #18: the arbiter out of a node's reach (the active's: it must fence before its lease
  // expires; the standby's: it cannot promote), and lost requests or answers.
  void arbiter_cut() {
    if (!w_.config().arbiter) return;
    const int n = any_node();
    w_.fault(Fault::kArbiterCut);
    w_.set_arbiter_reachable(n, false);
    w_.trace(std::string(n == 0 ? "a" : "b") + " ArbiterCut");
    later(1s, 40s, [this, n] { w_.set_arbiter_reachable(n, true); });
  }
  void arbiter_loss() {
    if (!w_.config().arbiter) return;
    const int n = any_node();
    w_.arbiter_loss(n) = 0.1 + 0.5 * w_.uniform();
    later(1s, 30s, [this, n] { w_.arbiter_loss(n) = 0; });
  }
  // Planned work: both nodes in maintenance for a while (automatic failover and self-fencing
  // paused), then out again.
  void maintenance() {
    w_.node(0).command("maintenance on");
    w_.node(1).command("maintenance on");
    later(1s, 30s, [this] {
      w_.node(0).command("maintenance off");
      w_.node(1).command("maintenance off");
    });
  }
  void switchover() { w_.node(any_node()).command("switchover"); }
  void failover() { w_.node(any_node()).command("failover"); }
  void standalone() {
    const int n = any_node();
    w_.node(n).command("standalone");
    later(1s, 60s, [this, n] { w_.node(n).command("join"); });
  }

  World& w_;
  TimePoint end_;
};

}  // namespace

CampaignResult run_campaign(uint64_t seed, Duration length) {
  std::mt19937_64 config_rng(seed ^ 0x9e3779b97f4a7c15ULL);
  SimConfig config = random_config(config_rng);
  config.inject = break_from_env();
  World w(seed, config);
  Nemesis nemesis(w, w.now() + length);
  nemesis.start();
  w.run_for(length);
  w.settle_and_check_liveness();
  CampaignResult r;
  r.violations = w.violations();
  r.counters = w.counters();
  r.trace = w.trace_tail();
  r.config = "interval " + std::to_string(config.interval.count() / 1000000) + "ms, timeout " +
             std::to_string(config.timeout.count() / 1000000) + "ms, ping_timeout " +
             std::to_string(config.ping_timeout.count() / 1000000) + "ms, automatic " +
             (config.automatic_failover ? "on" : "off") + ", witness " +
             (config.witness ? "yes" : "no") + ", missed " +
             std::to_string(config.missed_heartbeats) + ", start " +
             (config.brand_new ? "brand-new" : "initialized") + ", arbiter " +
             (config.arbiter ? "etcd" : "none") + ", drift " + std::to_string(config.drift_ppm[0]) +
             "/" + std::to_string(config.drift_ppm[1]) + " ppm";
  return r;
}

}  // namespace mpf::sim
