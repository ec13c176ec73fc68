// The deterministic simulation of the pair's roles and liveness (docs/design.md §12).
//
// Two nodes run the real PeerMonitor and RoleMachine (heartbeat core) in one thread on one
// simulated clock. Everything the daemon's edge does around them is simulated here:
// - SimNode mirrors server/src/node_driver.cpp (NodeDriver) action by action: the same handling
//   of every MonitorAction and RoleAction, in the same order, with the same feedback events
//   (a persist answered with on_persisted inside the action list, a changed verdict fed to
//   on_monitor after the list, answers built from the status published at the end of apply()).
//   The mapping is listed atop sim.cpp; a change to NodeDriver must be mirrored there.
// - The network carries real encoded heartbeat frames (heartbeat codec) per direction with
//   delay, loss, duplication, reordering, cuts that drop or clog (hold, then deliver in order),
//   one-way cuts; ICMP is separate (a crashed daemon's host still answers pings; a blocked port
//   2008 leaves ICMP through); each node reaches the witness or not.
// - Each node has a durable Store (what PostgreSQL holds: persisted role and epoch, the
//   application login's write setting, positions); a crash loses everything else, and the
//   daemon starts again through RoleMachine::start as mpfailoverd does.
// - One std::mt19937_64 seeded by the test drives every choice; nothing reads the wall clock.
//
// Not simulated: the replication sessions (shipper/receiver) — their logic is still in I/O
// classes; a drain is modelled as "caught up while both directions of port 2008 pass" —, hooks
// (they never change the role), set_writes failures, PostgreSQL being down.
//
// Thread safety: none; everything runs on the test's thread.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/heartbeat/arbiter_value.hpp>
#include <mpf/heartbeat/fence_timing.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>
#include <mpf/heartbeat/peer_monitor.hpp>
#include <mpf/heartbeat/role_machine.hpp>

namespace mpf::sim {

using heartbeat::Role;

// Faults, counted when they take effect (FoundationDB's CODE_PROBE): a campaign in which a kind
// that must fire did not is a failed campaign, not a quiet success.
enum class Fault {
  kDrop,        // a frame lost to random loss
  kDuplicate,   // a frame delivered twice
  kReorder,     // a frame held back behind later ones
  kDelaySpike,  // a direction's delay raised for a while
  kPartition,   // both directions of port 2008 and ICMP cut (each node still reaches the witness)
  kOneWayPartition,    // one direction cut
  kPortBlock,          // port 2008 cut both ways, ICMP passes (looks like "service down")
  kLinkDown,           // a node cut off from everyone, witness included
  kWitnessLoss,        // a node no longer reaches the witness
  kSwizzle,            // links clogged one by one, healed in random order
  kClogDelivered,      // a frame held by a clogged link delivered late
  kDaemonCrash,        // mpfailoverd killed: in-memory state lost, host still pings
  kHostCrash,          // the whole host down: no pings, no frames
  kSlowPersist,        // a persist that blocked the driver for a while
  kFailedPersist,      // a persist that failed
  kPersistCutByCrash,  // a crash in the middle of a slow persist (committed or not: a coin)
  kClockJump,          // a node's wall clock jumped (only the skew estimate sees it)
  kArbiterCut,         // a node cut off from the arbiter (etcd) for a while
  kArbiterLoss,        // a request to the arbiter, or its answer, lost
  kSelfFence,          // an active fenced itself (nothing confirmed it for fence_after)
  kCount
};
std::string_view to_string(Fault f);

// Bugs injected into the simulated driver on purpose (MPF_SIM_BREAK=<name>), to watch the
// invariants catch them (docs/design.md §12: a test must be able to fail).
enum class Break {
  kNone,
  kSkipCloseWrites,         // "skip_close_writes": kCloseWrites does nothing
  kOpenBeforePersist,       // "open_before_persist": a promotion opens writes before persisting
  kWitnessAlwaysReachable,  // "witness_always_reachable": witness pings always reply
  kNoSelfFence,             // "no_self_fence": failover.fence_after = 0 (self-fencing off)
  kArbiterNoCas,            // "arbiter_no_cas": the arbiter grants every acquire (no CAS)
};
Break break_from_env();

struct SimConfig {
  // Heartbeat and failover configuration, as mpfailoverd's config gives them to NodeDriver.
  Duration interval = std::chrono::seconds(1);
  Duration timeout = std::chrono::milliseconds(500);
  Duration ping_timeout = std::chrono::milliseconds(300);
  std::chrono::milliseconds max_skew{500};
  bool witness = true;  // heartbeat.witness configured
  bool automatic_failover = false;
  int missed_heartbeats = 3;
  Duration switchover_timeout = std::chrono::seconds(10);
  // Start: brand-new nodes (a's node.initial_role active) or an initialized pair (a active at
  // epoch 1, b standby at epoch 1).
  bool brand_new = false;
  Duration b_boot_delay{0};
  // Network defaults (per direction).
  Duration base_delay = std::chrono::microseconds(300);
  Duration jitter = std::chrono::microseconds(200);
  // The stronger "hears an active peer" rule as a violation (see World::check_promotion).
  bool strict_hearing = true;
  Break inject = Break::kNone;
  // heartbeat.arbiter = etcd: a simulated linearizable store with leases (World's arbiter).
  bool arbiter = false;
  Duration arbiter_delay = std::chrono::milliseconds(1);  // one way, plus jitter
  // Each node's steady clock runs this many parts per million fast (negative: slow) against the
  // simulated time, which is also the arbiter's clock (its leases expire by it).
  std::array<int, 2> drift_ppm{0, 0};
};

// The arbiter's answer to one request (as EtcdArbiter's EtcdAnswer).
struct ArbiterReply {
  bool reached = false;  // false: lost or cut (the driver's request timed out)
  bool holds = false;
  std::optional<std::string> holder;
  Epoch holder_epoch = 0;
  int64_t lease = 0;  // the node's lease after the request (0: none)
};

// A random configuration for one campaign seed.
SimConfig random_config(std::mt19937_64& rng);

// What PostgreSQL holds for one node: survives daemon and host crashes.
struct Store {
  heartbeat::PersistedRole persisted;
  bool writes_open = true;  // brand-new: the application's login is writable by default
  int64_t committed = 0;    // this node's own transactions (the replication model)
  int64_t applied = 0;      // how far the peer's transactions are applied here
  // Ground truth kept with the node (not in PostgreSQL): did this node ever hear its peer, and
  // was its last promotion made without ever having heard it (see World::check_now).
  bool heard_peer = false;
  bool last_promotion_blind = false;
  // Armed faults for the next persists.
  Duration next_persist_delay{0};
  int fail_persists = 0;
};

enum class CutMode { kOpen, kDrop, kClog };

// One direction of port 2008 between the nodes.
struct Link {
  CutMode mode = CutMode::kOpen;
  bool icmp = true;  // ICMP echo passes this direction
  double drop = 0, duplicate = 0, reorder = 0;
  Duration extra_delay{0};
  std::deque<std::function<void()>> held;  // clogged: deliveries waiting for the heal
};

class World;

// The simulated mpfailoverd: NodeDriver's glue around the real cores.
class SimNode {
 public:
  SimNode(World& world, int id);

  void boot();   // NodeDriver::start
  void crash();  // everything in memory is lost; a slow persist in flight commits or not

  bool running() const { return running_; }
  uint64_t incarnation() const { return incarnation_; }
  bool blocked() const { return blocked_; }
  bool quiescent() const { return running_ && !blocked_ && stack_.empty(); }
  Role role() const { return role_ ? role_->role() : Role::kStarting; }
  // This node's steady clock (drifting against the simulated time by drift_ppm).
  TimePoint now() const;
  Epoch epoch() const { return role_ ? role_->epoch() : store_.persisted.epoch; }
  const heartbeat::RoleMachine* role_machine() const { return role_.get(); }
  const heartbeat::PeerMonitor* monitor() const { return monitor_.get(); }
  Store& store() { return store_; }
  const Store& store() const { return store_; }
  const std::string& name() const { return name_; }
  bool promoting_from_standby() const { return promoting_from_standby_; }

  // Driver-thread work (ticks, socket reads, ping results, operator commands): deferred while a
  // slow persist blocks the thread, dropped when the daemon is gone.
  void run_on_driver(std::function<void()> fn);
  void tick();
  // Port 2008 delivered a frame from the peer; `sender` is the incarnation that sent it.
  void on_frame(const std::string& frame, uint64_t sender);

  // Operator commands through the control socket (NodeDriver::handle); nullopt when the daemon
  // is not running.
  std::optional<heartbeat::Decision> command(const std::string& cmd, bool force = false);

  // The shipper's view (replication model): driven by World::replicate.
  void replication_step(int64_t acked, bool caught_up);
  bool replication_paused() const { return paused_; }

 private:
  friend class World;
  void post(std::function<void()> fn);                  // onto the driver's queue (io_context)
  void then(std::vector<std::function<void()>> steps);  // next on the queue, in this order
  void pump();                                          // run the queue until empty or blocked
  void step_action();
  void schedule_tick();
  heartbeat::NodeStatus my_status() const;
  void publish_status();
  void send_beat(uint64_t seq, heartbeat::Command command, Epoch epoch, Position position);
  void on_answer_frame(const heartbeat::HeartbeatMessage& m);
  void on_peer_message(const heartbeat::HeartbeatMessage& m);
  void apply_monitor(const std::vector<heartbeat::MonitorAction>& actions);
  void apply(const heartbeat::Decision& d, const char* trigger);
  void run_stack();
  void finish_slow_persist(uint64_t incarnation, bool ok);
  void write_store(const heartbeat::PersistedRole& p);
  void persisted(bool ok);
  void set_writes(bool writable);
  void watch_drain();
  // NodeDriver's arbiter edge (arbiter_acquire, arbiter_tick, on_arbiter_answer).
  void arbiter_acquire(const heartbeat::RoleAction& a);
  void arbiter_tick();
  void on_arbiter_answer(const ArbiterReply& r, bool acquire, Epoch epoch, TimePoint sent_at);

  World& w_;
  int id_;
  std::string name_, peer_name_;
  Store store_;

  bool running_ = false;
  uint64_t incarnation_ = 0;
  std::unique_ptr<heartbeat::PeerMonitor> monitor_;
  std::unique_ptr<heartbeat::RoleMachine> role_;
  heartbeat::NodeStatus published_;
  std::string command_note_;
  std::optional<TimePoint> drain_watch_since_;
  bool paused_ = false;
  Position acked_;
  std::optional<TimePoint> caught_up_at_;
  bool peer_ping_in_flight_ = false;
  bool witness_ping_in_flight_ = false;
  int witness_replies_pending_ = 0;
  bool witness_any_reply_ = false;
  bool promoting_from_standby_ = false;

  // apply()'s action lists, resumable: a slow persist blocks the driver in the middle of one
  // (NodeDriver persists synchronously on its io thread).
  struct Frame {
    std::vector<heartbeat::RoleAction> actions;
    size_t next = 0;
  };
  std::vector<Frame> stack_;
  bool blocked_ = false;
  std::optional<heartbeat::PersistedRole> persist_in_flight_;
  std::deque<std::function<void()>> work_;
  bool pumping_ = false;
  bool forced_command_ = false;  // the command being applied is `failover --force`
  // The arbiter edge (EtcdArbiter's lease_, NodeDriver's arbiter_*).
  int64_t lease_ = 0;
  std::optional<TimePoint> arbiter_renew_at_;
  std::optional<Epoch> arbiter_held_;
  bool arbiter_in_flight_ = false;

  // Ground truth for the invariants.
  std::optional<TimePoint> last_answer_at_;  // a fresh answer (higher seq than any before)
  uint64_t max_answer_seq_ = 0;
  struct PingRecord {
    TimePoint issued{};
    bool replied = false;
  };
  std::optional<PingRecord> last_peer_ping_, last_witness_ping_;
  std::optional<TimePoint> heard_active_at_;  // a frame from the peer saying it is active
};

struct Counters {
  std::array<uint64_t, static_cast<size_t>(Fault::kCount)> faults{};
  uint64_t automatic_failovers = 0;
  uint64_t operator_failovers = 0;
  uint64_t forced_failovers = 0;
  uint64_t handovers = 0;  // promotions by handover: completed switchovers
  uint64_t switchover_requests = 0;
  uint64_t step_downs = 0;
  uint64_t standalones = 0;
  uint64_t promoted_while_hearing_active = 0;
  uint64_t end_operator_failovers = 0;
  uint64_t blind_same_epoch = 0;  // same-epoch actives from a promotion that never heard the peer
  uint64_t self_fences = 0;       // an active closed its writes on its own
  uint64_t unfences = 0;          // and opened them again on a confirmation
  uint64_t no_active_promotions = 0;  // two standbys settled on their own (no_active_peer)
  uint64_t arbiter_refusals = 0;      // promotions the arbiter's compare-and-swap refused
  // Episodes with writes open on two running nodes: with the ICMP witness, expected under a
  // cut between the nodes that both survive with the witness (what an ICMP witness cannot
  // decide); with the arbiter, a violation.
  uint64_t two_writer_episodes = 0;
  // Episodes with writes open on a node whose daemon is down (killed while active) while the
  // other node takes writes: nothing runs to close them (docs/fencing.md, limits).
  uint64_t down_daemon_overlaps = 0;
  uint64_t frames = 0;
  Duration simulated{0};

  Counters& operator+=(const Counters& o);
  uint64_t fault(Fault f) const { return faults[static_cast<size_t>(f)]; }
};

class World {
 public:
  World(uint64_t seed, SimConfig config);
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  uint64_t seed() const { return seed_; }
  const SimConfig& config() const { return config_; }
  TimePoint now() const { return now_; }
  std::mt19937_64& rng() { return rng_; }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  Duration uniform(Duration lo, Duration hi);
  SimNode& node(int i) { return *nodes_[i]; }
  const SimNode& node(int i) const { return *nodes_[i]; }
  Link& link(int from, int to) { return links_[from][to]; }
  Counters& counters() { return counters_; }

  // Events. `node` events run on that node's driver thread (see SimNode::run_on_driver) and
  // vanish with its incarnation; plain events always run.
  void at(TimePoint when, std::function<void()> fn);
  void after(Duration d, std::function<void()> fn) { at(now_ + d, std::move(fn)); }
  void at_driver(TimePoint when, int node, std::function<void()> fn);
  bool step();  // one event; false when none is left
  void run_for(Duration d);
  // Runs until pred() holds (checked after every event) or `limit` passes; true if it held.
  bool run_until(const std::function<bool()>& pred, Duration limit);

  // The network and the hosts.
  // `reply_to`: the incarnation of the daemon whose connection carries this frame back (an
  // answer to a beat); 0 means the destination's current one.
  void send(int from, int to, std::string frame, uint64_t reply_to = 0);
  void ping_peer(int from, std::function<void(bool)> done);
  void ping_witness(int from, std::function<void(bool)> done);
  bool host_up(int n) const { return host_up_[n]; }
  void set_witness(int n, bool reachable) { witness_ok_[n] = reachable; }
  bool witness_reachable(int n) const { return witness_ok_[n]; }
  void cut(int from, int to, CutMode mode, bool icmp_too = true);
  void heal(int from, int to);
  void partition(CutMode mode, bool icmp_too = true);  // both directions
  void heal_all();
  void crash_daemon(int n);
  void restart_daemon(int n);
  void crash_host(int n);
  void boot_host(int n);  // the daemon starts with the host
  int64_t wall_us(int n) const;
  void jump_clock(int n, Duration d) { wall_offset_[n] += d; }

  // The arbiter: a linearizable store with leases, reached over a path per node that can be cut
  // or lose requests. `op` runs atomically at the arbiter when the request arrives; `done` runs
  // on the node's driver with the answer, or with reached = false after the request timeout.
  enum class ArbiterOp { kAcquire, kRenew, kRelease };
  void arbiter_call(int n, ArbiterOp op, Epoch epoch, std::optional<heartbeat::LeaderValue> replace,
                    bool force, int64_t lease, std::function<void(ArbiterReply)> done);
  void set_arbiter_reachable(int n, bool ok) { arbiter_ok_[n] = ok; }
  double& arbiter_loss(int n) { return arbiter_loss_[n]; }
  const std::optional<heartbeat::LeaderValue>& arbiter_value() { return arbiter_expire(), key_; }

  // The application: commits a transaction on every node whose login is writable.
  void app_write();
  // The replication model: while both directions of port 2008 pass, both daemons run and
  // neither side is paused, each node's changes reach the peer and are acknowledged.
  void replicate();

  // Invariants. Violations are collected; tests CHECK that there are none.
  void fault(Fault f) { ++counters_.faults[static_cast<size_t>(f)]; }
  void violation(const std::string& what);
  const std::vector<std::string>& violations() const { return violations_; }
  void check_now();      // continuous checks, after every event
  void check_writers();  // issue #18: never writes open on two nodes (see sim.cpp)
  void check_epoch_persisted(int n, Epoch before, Epoch after);
  void check_promotion(int n, const heartbeat::Decision& d, bool forced);
  // After the faults stopped and both nodes run and talk: within a bounded simulated time,
  // exactly one active and one standby at the same epoch. Returns false (and records a
  // violation) otherwise. Runs an operator failover if the pair settled with no active node,
  // the state NodeDriver reports as "run `mpfailover failover`" (a handover that never landed).
  bool settle_and_check_liveness();
  void stop_faults();  // heal everything, restart what is down, join standalone nodes

  // A short log of what happened (role changes, faults, commands), printed with a failure.
  void trace(const std::string& line);
  std::string trace_tail(size_t lines = 80) const;
  std::string describe() const;  // the nodes' state now

 private:
  struct Event {
    TimePoint at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct Wire {
    int from = 0, to = 0;
    std::string frame;
    uint64_t to_incarnation = 0;    // the connection it travels on ends with this daemon
    uint64_t from_incarnation = 0;  // an answer goes back on the beat's connection
  };
  void deliver(Wire w, Duration delay);
  void arrive(const Wire& w);
  void release(int from, int to);
  bool icmp_path(int from, int to) const;
  void app_loop();
  void replication_loop();

  uint64_t seed_;
  SimConfig config_;
  std::mt19937_64 rng_;
  TimePoint now_{};
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::array<std::unique_ptr<SimNode>, 2> nodes_;
  std::array<std::array<Link, 2>, 2> links_;
  std::array<bool, 2> host_up_{true, true};
  std::array<bool, 2> witness_ok_{true, true};
  std::array<Duration, 2> wall_offset_{};
  // The arbiter's state.
  void arbiter_expire();
  ArbiterReply arbiter_apply(int n, ArbiterOp op, Epoch epoch,
                             const std::optional<heartbeat::LeaderValue>& replace, bool force,
                             int64_t lease);
  std::optional<heartbeat::LeaderValue> key_;
  int64_t key_lease_ = 0;
  std::map<int64_t, TimePoint> leases_;  // id -> expiry (simulated time)
  int64_t next_lease_ = 1;
  std::array<bool, 2> arbiter_ok_{true, true};
  std::array<double, 2> arbiter_loss_{0, 0};
  // Two-writer bookkeeping (check_now).
  std::array<std::optional<TimePoint>, 2> writes_opened_at_;
  std::array<std::optional<TimePoint>, 2> isolated_since_;
  bool two_writers_ = false;
  bool down_overlap_ = false;
  Counters counters_;
  std::vector<std::string> violations_;
  std::vector<std::string> violation_kinds_;
  bool blind_tie_ = false;
  std::deque<std::string> trace_;
  bool trace_all_ = false;
};

// One seed of the default campaign: random faults and operator commands for `length` of
// simulated time, then stop_faults() and the liveness check.
struct CampaignResult {
  std::vector<std::string> violations;
  Counters counters;
  std::string trace;
  std::string config;
};
CampaignResult run_campaign(uint64_t seed, Duration length);

}  // namespace mpf::sim
