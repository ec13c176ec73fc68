// RoleMachine: which role this node plays, and how it moves between roles safely.
//
// Pure and deterministic (STYLE.md §2): events and the current time in, a Decision out (the next
// role, actions for the driver, a reason to log). The transition table and the rules are in
// role_machine.cpp, next to the code; the driver (server/src/node_driver.cpp) performs the
// actions (persist role and epoch in PostgreSQL, open or close application writes, run the
// shared-address hooks, send messages to the peer) and feeds their outcome back as events.
//
// Safety (NOTES.md §4): a promotion is persisted with its new epoch before writes open; a node
// that sees an active peer with a higher (epoch, node name) steps down; a switchover demotes the
// old active before the new one promotes, so there is a moment with no active node but never
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
  };
  Kind kind;
  PersistedRole persist;  // kPersist
  Epoch epoch = 0;        // kSendHandover
  Position position;      // kSendHandover

  bool operator==(const RoleAction&) const = default;
};

struct Decision {
  bool accepted = true;      // false: an operator command or peer request was refused
  std::string message;       // the refusal, or what happens now (for the CLI and the log)
  std::optional<Role> from;  // set when the role changed
  std::optional<Role> to;
  std::string reason;  // snake_case reason for RoleChanged log lines
  std::vector<RoleAction> actions;
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

  // SIGHUP changed failover.automatic: applies from the monitor's next verdict.
  void set_automatic_failover(bool on) { options_.automatic_failover = on; }

  Role role() const { return role_; }
  Epoch epoch() const { return persisted_.epoch; }
  const PersistedRole& persisted() const { return persisted_; }
  const std::optional<PeerView>& last_peer() const { return peer_; }
  // True while the node should take application writes (active or standalone).
  bool writable() const { return role_ == Role::kActive || role_ == Role::kStandalone; }
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
};

}  // namespace mpf::heartbeat
