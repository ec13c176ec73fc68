// RoleMachine: which role this node plays, and how it moves between roles safely.
//
// Pure and deterministic (docs/design.md §8): events and the current time in, a Decision out (the
// next role, actions for the driver, a reason to log). The transition table and the rules are in
// role_machine.cpp, next to the code; the driver (server/src/node_driver.cpp) performs the
// actions (persist role and epoch in PostgreSQL, open or close application writes, run the
// shared-address hooks, send messages to the peer) and feeds their outcome back as events.
//
// Safety (docs/design.md §4): a promotion is persisted with its new epoch before writes open; a
// node that sees an active peer with a higher (epoch, node name) steps down; a switchover demotes
// the old active before the new one promotes, so there is a moment with no active node but never
// two once the nodes can talk.
//
// Thread safety: none; one driver thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>
#include <mpf/heartbeat/peer_monitor.hpp>

namespace mpf::heartbeat {

enum class Role {
  kStarting,    // daemon start: waiting for the first word about the peer before acting
  kStandby,     // applies the peer's changes; application writes closed
  kPromoting,   // becoming active: the new role and epoch are being persisted
  kActive,      // takes application writes; holds the shared address
  kDemoting,    // switchover: application writes closed, backlog draining to the peer
  kStandalone,  // out of the pair on purpose: writes open, no replication either way
};

// "starting", "standby", "promoting", "active", "demoting", "standalone".
std::string_view to_string(Role r);
std::optional<Role> role_from_string(std::string_view s);

// What PostgreSQL holds for this node (mpfailover.node). initialized = false on a brand-new
// node: node.initial_role decides once, then the persisted role rules.
struct PersistedRole {
  bool initialized = false;
  Role role = Role::kStandby;  // kActive, kStandby or kStandalone
  Epoch epoch = 0;
  Role standalone_from = Role::kStandby;  // the role `join` returns to
  // `mpfailover maintenance on`: automatic failover, self-fencing and the no-active settle rule
  // paused for planned work (survives restarts).
  bool maintenance = false;
};

// The peer as its latest heartbeat or answer described it.
struct PeerView {
  std::string node;
  Role role = Role::kStandby;
  Epoch epoch = 0;
};

struct RoleOptions {
  std::string node;  // this node's name: breaks epoch ties
  std::string peer;
  Role initial_role = Role::kStandby;  // node.initial_role, for a brand-new node only
  bool automatic_failover = false;
  int missed_heartbeats = 3;  // failover.missed_heartbeats
  Duration start_grace = std::chrono::seconds(15);
  Duration switchover_timeout = std::chrono::seconds(30);
  Duration handover_timeout = std::chrono::seconds(10);
  Duration handover_resend = std::chrono::milliseconds(100);
  // A standby that heard from the peer within this window does not fail over automatically,
  // whatever its own heartbeats' fate (one-way cut). The driver sets heartbeat.interval +
  // heartbeat.timeout: under a full cut the last word is older than that by the time
  // failover.missed_heartbeats have gone unanswered.
  Duration peer_heard_window = std::chrono::seconds(70);
  // A failed persist outside a promotion is written again after this long, until it lands.
  Duration persist_retry = std::chrono::seconds(1);
  // Self-fencing (failover.fence_after): an active whose role nothing confirmed for this long
  // closes writes. Zero: off (without failover.automatic no peer promotes on its own). What
  // confirms: a heartbeat round trip with the peer (counted from the heartbeat's send time) or,
  // with the ICMP witness, a witness reply (counted from the ping's send time); with the
  // arbiter, only a lease renewal the arbiter granted (counted from the request's send time).
  Duration fence_after = Duration::zero();
  // heartbeat.arbiter = etcd: the arbiter alone confirms an active's role (see on_arbiter).
  bool arbiter = false;
  // Both nodes standby and talking for this long (after the pair had an active, epoch >= 1): the
  // higher (epoch, name) promotes, so an interrupted switchover settles without an operator.
  Duration settle_no_active = std::chrono::seconds(15);
  // A fenced active asks the arbiter for the key again this often.
  Duration arbiter_retry = std::chrono::seconds(1);
};

// What the arbiter said about the leadership key (heartbeat.arbiter = etcd).
struct ArbiterWord {
  bool holds = false;                 // this node holds the key at its epoch, lease alive
  TimePoint sent_at{};                // when the request that proved it was sent
  std::optional<std::string> holder;  // another node holding the key
  Epoch holder_epoch = 0;
};

struct RoleAction {
  enum class Kind {
    kPersist,                // store role/epoch/standalone_from; answer with on_persisted
    kOpenWrites,             // application login writable again
    kCloseWrites,            // application login read-only, its sessions ended
    kRunPromoteHook,         // hooks.on_promote (shared address up, gratuitous ARP)
    kRunDemoteHook,          // hooks.on_demote (shared address down)
    kWatchDrain,             // report on_backlog_drained once nothing is left to ship
    kSendHandover,           // tell the peer: take over at `epoch`, my changes end at `position`
    kSendSwitchoverRequest,  // ask the active peer to hand over to this node
    kPauseReplication,
    kResumeReplication,
    kSendHeartbeatSoon,  // news for the peer: do not wait for the next interval
    kArbiterAcquire,     // arbiter: take the leadership key at `epoch` (compare-and-swap);
                         // answer with on_arbiter_acquired
  };
  Kind kind;
  PersistedRole persist;  // kPersist
  Epoch epoch = 0;        // kSendHandover, kArbiterAcquire
  Position position;      // kSendHandover
  // kArbiterAcquire: the key may also be taken over from this holder (node, epoch): the peer
  // that handed over, or this node's own key from before a restart. Empty: only an absent key.
  std::string replace_node;
  Epoch replace_epoch = 0;
  bool force = false;  // kArbiterAcquire for `failover --force`: put whatever the key holds

  bool operator==(const RoleAction&) const = default;
};

struct Decision {
  bool accepted = true;      // false: an operator command or peer request was refused
  std::string message;       // the refusal, or what happens now (for the CLI and the log)
  std::optional<Role> from;  // set when the role changed
  std::optional<Role> to;
  std::string reason;  // snake_case reason for RoleChanged log lines
  std::vector<RoleAction> actions;
  bool fence_changed = false;  // fenced() flipped: the driver logs FenceChanged
};

// What an operator command knows when it is given.
struct CommandContext {
  bool force = false;
  bool definitions_match = true;  // catalog and replicated tables equal the peer's last known
};

class RoleMachine {
 public:
  RoleMachine(RoleOptions options, PersistedRole persisted, TimePoint now);

  // Actions to take at start-up (persisting a brand-new node's first role).
  Decision start(TimePoint now);

  // Operator commands.
  Decision failover(const CommandContext& ctx, const MonitorSnapshot& monitor, TimePoint now);
  Decision switchover(const MonitorSnapshot& monitor, TimePoint now);
  Decision standalone(TimePoint now);
  Decision join(TimePoint now);

  // The peer spoke (heartbeat or answer): fencing, epoch adoption, handover completion.
  Decision on_peer(const PeerView& peer, const MonitorSnapshot& monitor, TimePoint now);
  // The monitor's verdict moved (missed heartbeats, ping, witness): start-up, automatic failover.
  Decision on_monitor(const MonitorSnapshot& monitor, TimePoint now);
  // The peer, active, asks this standby to take over: `epoch` is the new epoch, `position` the
  // end of the peer's changes; `applied` is how far this node has applied them.
  Decision on_handover(const PeerView& peer, Epoch epoch, Position position, Position applied,
                       TimePoint now);
  // The peer, standby, asks this active node to hand over (switchover run on the standby).
  Decision on_switchover_request(const PeerView& peer, const MonitorSnapshot& monitor,
                                 TimePoint now);

  // Outcomes of actions.
  Decision on_persisted(bool ok, const std::string& error, TimePoint now);
  Decision on_backlog_drained(Position last, TimePoint now);
  Decision tick(TimePoint now);
  // Same, with the monitor's latest snapshot (round trips and witness replies for self-fencing).
  Decision tick(const MonitorSnapshot& monitor, TimePoint now);

  // `mpfailover maintenance on|off`.
  Decision set_maintenance(bool on, TimePoint now);
  bool maintenance() const { return persisted_.maintenance; }

  // The arbiter renewed (or refused) this node's hold of the leadership key.
  Decision on_arbiter(const ArbiterWord& word, TimePoint now);
  // The compare-and-swap of a promotion (kArbiterAcquire) came back.
  Decision on_arbiter_acquired(const ArbiterWord& word, const std::string& detail, TimePoint now);

  // SIGHUP changed failover.automatic: applies from the monitor's next verdict.
  void set_automatic_failover(bool on) { options_.automatic_failover = on; }

  Role role() const { return role_; }
  Epoch epoch() const { return persisted_.epoch; }
  const PersistedRole& persisted() const { return persisted_; }
  const std::optional<PeerView>& last_peer() const { return peer_; }
  // True while the node should take application writes (active and not fenced, or standalone).
  bool writable() const {
    return (role_ == Role::kActive && !fenced()) || role_ == Role::kStandalone;
  }
  // An active whose writes are closed until the peer or the arbiter confirms its epoch.
  bool fenced() const { return !fenced_reason_.empty(); }
  // "restart_unconfirmed", "peer_and_witness_silent", "peer_silent", "arbiter_unconfirmed".
  const std::string& fenced_reason() const { return fenced_reason_; }
  // Replication runs except while standalone.
  bool replicating() const { return role_ != Role::kStandalone; }
  const std::string& last_error() const { return last_error_; }
  // A switchover or handover under way (for status).
  std::string operation() const;

  struct Transition;  // one row of the table in role_machine.cpp

 private:
  Decision change(Role to, std::string reason);
  Decision refuse(std::string message);
  Decision step_down(const PeerView& peer, std::string reason);
  Decision begin_promotion(Epoch epoch, std::string reason, TimePoint now);
  Decision settle_start(const MonitorSnapshot* monitor, TimePoint now);
  bool peer_wins(const PeerView& peer) const;
  void observe(const MonitorSnapshot& monitor);
  Decision fence(std::string reason, TimePoint now);
  Decision unfence(std::string why, TimePoint now);
  RoleAction acquire_action(Epoch epoch, TimePoint now);
  Decision finish_promotion_open(TimePoint now);
  bool peer_confirms() const;
  Decision check_fence(TimePoint now);
  Decision check_no_active(TimePoint now);

  RoleOptions options_;
  PersistedRole persisted_;
  Role role_ = Role::kStarting;
  std::optional<PeerView> peer_;
  std::optional<TimePoint> peer_heard_at_;     // the peer's latest word of any kind
  std::optional<TimePoint> persist_retry_at_;  // a failed persist is written again then
  std::string last_error_;
  TimePoint started_at_;
  // kPromoting: what is being persisted and why.
  Epoch promoting_epoch_ = 0;
  std::string promoting_reason_;
  Role promoting_from_ = Role::kStandby;
  // kDemoting: until when the drain may take.
  std::optional<TimePoint> switchover_deadline_;
  // After handing over: keep asking the peer until it is active at handover_epoch_.
  std::optional<TimePoint> handover_deadline_;
  TimePoint handover_sent_at_{};
  Epoch handover_epoch_ = 0;
  Position handover_position_;
  // A promotion decided while a persist is still outstanding waits for it.
  bool persist_in_flight_ = false;
  // Self-fencing: why writes are closed on this active (empty: not fenced), since when, and the
  // latest confirmations (send times: the peer or the witness heard this node after them).
  std::string fenced_reason_;
  TimePoint fenced_at_{};
  std::optional<TimePoint> round_trip_sent_;
  std::optional<TimePoint> witness_reply_sent_;
  std::optional<TimePoint> arbiter_sent_;
  std::optional<TimePoint> both_standby_since_;
  // kPromoting with the arbiter: the CAS must succeed before writes open.
  bool acquire_pending_ = false;
  std::optional<TimePoint> arbiter_acquire_at_;  // the last kArbiterAcquire asked
  bool forced_promotion_ = false;
  // Promotion or reopening: confirmed at that instant (self-fencing counts from it at least).
  std::optional<TimePoint> confirmed_floor_;
  std::optional<MonitorSnapshot> last_monitor_;
};

}  // namespace mpf::heartbeat
