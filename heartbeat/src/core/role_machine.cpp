// NOTES: the role state machine.
//
// Every role change goes through change(), which accepts it only if (from, event, to) is a row
// of kTransitions below; anything else is refused and logged by the driver, never done quietly.
//
//  from        event                     to          what happens
//  ----------  ------------------------  ----------  -------------------------------------------
//  starting    initial_role_standby      standby     brand-new node: persist standby, epoch 0
//  starting    initial_role_active       promoting   brand-new node: persist active, epoch 1
//  starting    start_settled             active      persisted active, and no active peer with a
//                                                    higher (epoch, name) answered before the
//                                                    grace ran out: open writes, promote hook
//  starting    start_settled             standby     persisted standby: close writes, demote hook
//  starting    start_settled             standalone  persisted standalone: writes open, no repl.
//  starting    peer_active_higher_epoch  standby     persisted active but the peer won meanwhile
//  standby     operator_failover         promoting   `mpfailover failover` (refused while the
//                                                    peer is up and active, unless --force)
//  standby     automatic_failover        promoting   failover.automatic: missed heartbeats,
//                                                    peer unreachable by ping, witness reachable
//  standby     handover                  promoting   the active peer drained and handed over
//  promoting   persisted                 active      new epoch durable: open writes, promote hook
//  promoting   persist_failed            standby     nothing changed on disk: stay standby
//  promoting   persist_failed_initial    standby     brand-new node: close writes, demote hook
//  active      peer_active_higher_epoch  standby     fencing: close writes, demote hook, persist
//  active      operator_switchover       demoting    close writes, wait for the drain
//  active      switchover_request        demoting    same, asked by the standby peer
//  demoting    backlog_drained           standby     demote hook, persist, hand over (epoch + 1)
//  demoting    switchover_timeout        active      the drain took too long: writes open again
//  demoting    peer_active_higher_epoch  standby     fencing, as from active
//  active      operator_standalone       standalone  leave the pair: replication paused
//  standby     operator_standalone       standalone  leave the pair: writes open
//  standalone  operator_join             active      back to the role it left (fencing decides)
//  standalone  operator_join             standby     back to standby: writes closed again
//
// Fencing rank: (epoch, node name) — the higher epoch wins; on a tie the node whose name sorts
// last wins (as last-writer-wins breaks timestamp ties). Both nodes compute the same answer from
// the same two pairs, so exactly one stays active once they talk. A standby adopts a higher epoch
// it sees, so its next promotion goes above every epoch the pair has used; a node that hands over
// at epoch e persists e as its own epoch first, so it promotes above e even if it never heard
// that the peer took it, crash or not. Automatic failover also needs silence from the peer: a
// standby still receiving the active peer's beats (a one-way cut) does not promote.
#include <algorithm>
#include <array>

#include <mpf/core/status.hpp>
#include <mpf/heartbeat/role_machine.hpp>

namespace mpf::heartbeat {

struct RoleMachine::Transition {
  Role from;
  std::string_view event;
  Role to;
};

namespace {

using R = Role;
constexpr std::array<RoleMachine::Transition, 22> kTransitions{{
    {R::kStarting, "initial_role_standby", R::kStandby},
    {R::kStarting, "initial_role_active", R::kPromoting},
    {R::kStarting, "start_settled", R::kActive},
    {R::kStarting, "start_settled", R::kStandby},
    {R::kStarting, "start_settled", R::kStandalone},
    {R::kStarting, "peer_active_higher_epoch", R::kStandby},
    {R::kStandby, "operator_failover", R::kPromoting},
    {R::kStandby, "automatic_failover", R::kPromoting},
    {R::kStandby, "handover", R::kPromoting},
    {R::kPromoting, "persisted", R::kActive},
    {R::kPromoting, "persist_failed", R::kStandby},
    {R::kActive, "peer_active_higher_epoch", R::kStandby},
    {R::kActive, "operator_switchover", R::kDemoting},
    {R::kActive, "switchover_request", R::kDemoting},
    {R::kDemoting, "backlog_drained", R::kStandby},
    {R::kDemoting, "switchover_timeout", R::kActive},
    {R::kDemoting, "peer_active_higher_epoch", R::kStandby},
    {R::kActive, "operator_standalone", R::kStandalone},
    {R::kStandby, "operator_standalone", R::kStandalone},
    {R::kStandalone, "operator_join", R::kActive},
    {R::kStandalone, "operator_join", R::kStandby},
    // A promotion that started from a brand-new node's initial role and failed.
    {R::kPromoting, "persist_failed_initial", R::kStandby},
}};

RoleAction act(RoleAction::Kind k) { return RoleAction{k, {}, 0, {}}; }

RoleAction persist(const PersistedRole& p) {
  RoleAction a{RoleAction::Kind::kPersist, p, 0, {}};
  return a;
}

std::string duration_text(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

std::string_view to_string(Role r) {
  switch (r) {
    case Role::kStarting:
      return "starting";
    case Role::kStandby:
      return "standby";
    case Role::kPromoting:
      return "promoting";
    case Role::kActive:
      return "active";
    case Role::kDemoting:
      return "demoting";
    case Role::kStandalone:
      return "standalone";
  }
  return "starting";
}

std::optional<Role> role_from_string(std::string_view s) {
  for (Role r : {Role::kStarting, Role::kStandby, Role::kPromoting, Role::kActive, Role::kDemoting,
                 Role::kStandalone}) {
    if (to_string(r) == s) return r;
  }
  return std::nullopt;
}

RoleMachine::RoleMachine(RoleOptions options, PersistedRole persisted, TimePoint now)
    : options_(std::move(options)), persisted_(persisted), started_at_(now) {
  MPF_ASSERT(persisted_.role == Role::kActive || persisted_.role == Role::kStandby ||
                 persisted_.role == Role::kStandalone,
             "a persisted role is active, standby or standalone");
}

Decision RoleMachine::change(Role to, std::string reason) {
  const bool allowed = std::any_of(kTransitions.begin(), kTransitions.end(), [&](const auto& t) {
    return t.from == role_ && t.event == reason && t.to == to;
  });
  if (!allowed) {
    Decision d = refuse("transition " + std::string(to_string(role_)) + " -> " +
                        std::string(to_string(to)) + " on " + reason + " is not in the table");
    d.reason = "transition_refused";
    return d;
  }
  Decision d;
  d.from = role_;
  d.to = to;
  d.reason = std::move(reason);
  role_ = to;
  d.actions.push_back(act(RoleAction::Kind::kSendHeartbeatSoon));
  return d;
}

Decision RoleMachine::refuse(std::string message) {
  Decision d;
  d.accepted = false;
  d.message = std::move(message);
  return d;
}

bool RoleMachine::peer_wins(const PeerView& peer) const {
  if (peer.epoch != persisted_.epoch) return peer.epoch > persisted_.epoch;
  return peer.node > options_.node;
}

std::string RoleMachine::operation() const {
  if (role_ == Role::kDemoting) return "switchover: draining the backlog to the peer";
  if (role_ == Role::kPromoting)
    return "promotion: persisting epoch " + std::to_string(promoting_epoch_);
  if (handover_deadline_) {
    return "switchover: waiting for the peer to become active at epoch " +
           std::to_string(handover_epoch_);
  }
  return "";
}

Decision RoleMachine::begin_promotion(Epoch epoch, std::string reason, TimePoint now) {
  (void)now;
  const Role from = role_;
  Decision d = change(Role::kPromoting, reason);
  if (!d.accepted) return d;
  promoting_epoch_ = epoch;
  promoting_reason_ = std::move(reason);
  promoting_from_ = from;
  PersistedRole p = persisted_;
  p.initialized = true;
  p.role = Role::kActive;
  p.epoch = epoch;
  d.actions.push_back(persist(p));
  persist_in_flight_ = true;
  d.message = "promoting to active at epoch " + std::to_string(epoch);
  return d;
}

Decision RoleMachine::step_down(const PeerView& peer, std::string reason) {
  Decision d = change(Role::kStandby, std::move(reason));
  if (!d.accepted) return d;
  switchover_deadline_.reset();
  persisted_.role = Role::kStandby;
  persisted_.epoch = std::max(persisted_.epoch, peer.epoch);
  persisted_.initialized = true;
  d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
  d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
  d.actions.push_back(persist(persisted_));
  d.message = "peer \"" + peer.node + "\" is active at epoch " + std::to_string(peer.epoch) +
              ": stepping down to standby";
  return d;
}

Decision RoleMachine::start(TimePoint now) {
  MPF_ASSERT(role_ == Role::kStarting, "start() once");
  if (!persisted_.initialized) {
    if (options_.initial_role == Role::kActive) {
      return begin_promotion(std::max<Epoch>(persisted_.epoch, 0) + 1, "initial_role_active", now);
    }
    Decision d = change(Role::kStandby, "initial_role_standby");
    persisted_.initialized = true;
    persisted_.role = Role::kStandby;
    d.actions.push_back(persist(persisted_));
    d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
    d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
    d.message = "brand-new node: standby until an operator runs `mpfailover failover` on one node";
    return d;
  }
  // Only a node that was active waits: it must not take the shared address back from a peer
  // that was promoted while it was away.
  if (persisted_.role == Role::kActive) {
    Decision d;
    d.message = "was active at epoch " + std::to_string(persisted_.epoch) +
                ": waiting for the peer's word before taking writes";
    return d;
  }
  return settle_start(nullptr, now);
}

Decision RoleMachine::settle_start(const MonitorSnapshot* monitor, TimePoint now) {
  (void)monitor;
  (void)now;
  if (persisted_.role == Role::kActive && peer_ && peer_->role == Role::kActive &&
      peer_wins(*peer_)) {
    return step_down(*peer_, "peer_active_higher_epoch");
  }
  Decision d = change(persisted_.role, "start_settled");
  switch (persisted_.role) {
    case Role::kActive:
      d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
      d.actions.push_back(act(RoleAction::Kind::kRunPromoteHook));
      break;
    case Role::kStandby:
      d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
      d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
      break;
    default:
      d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
      d.actions.push_back(act(RoleAction::Kind::kPauseReplication));
      break;
  }
  return d;
}

Decision RoleMachine::failover(const CommandContext& ctx, const MonitorSnapshot& monitor,
                               TimePoint now) {
  switch (role_) {
    case Role::kActive:
      return refuse("node \"" + options_.node + "\" is already active (epoch " +
                    std::to_string(persisted_.epoch) + ")");
    case Role::kStandalone:
      return refuse("node \"" + options_.node +
                    "\" is standalone: run `mpfailover join` first, then fail over");
    case Role::kStandby:
      break;
    default:
      return refuse("node \"" + options_.node + "\" is " + std::string(to_string(role_)) +
                    ": try again when it has settled");
  }
  const bool peer_active = peer_ && peer_->role == Role::kActive;
  if (!ctx.force && monitor.peer_state == PeerState::kUp && peer_active) {
    return refuse("peer \"" + options_.peer + "\" is up and active (epoch " +
                  std::to_string(peer_->epoch) +
                  "): use `mpfailover switchover` for a planned move, or --force to promote "
                  "anyway (the peer steps down when it sees the higher epoch)");
  }
  if (!ctx.force && !ctx.definitions_match) {
    return refuse("this node's catalog or replicated tables differ from peer \"" + options_.peer +
                  "\"'s last known definitions: run `mpfailover check`, or --force");
  }
  // Above the epoch this node last handed over too: after a switchover whose end it never heard
  // of, the peer may be active at handover_epoch_ (two actives in one epoch otherwise).
  const Epoch peer_epoch = peer_ ? peer_->epoch : 0;
  return begin_promotion(std::max({persisted_.epoch, peer_epoch, handover_epoch_}) + 1,
                         "operator_failover", now);
}

Decision RoleMachine::switchover(const MonitorSnapshot& monitor, TimePoint now) {
  const bool peer_up = monitor.peer_state == PeerState::kUp && peer_.has_value();
  if (role_ == Role::kStandby) {
    if (!peer_up || peer_->role != Role::kActive) {
      return refuse("a switchover needs the peer up and active; peer \"" + options_.peer +
                    "\" is " + std::string(to_string(monitor.peer_state)) +
                    (peer_ ? ", " + std::string(to_string(peer_->role)) : std::string()) +
                    " (use `mpfailover failover` when the peer is gone)");
    }
    Decision d;
    d.actions.push_back(act(RoleAction::Kind::kSendSwitchoverRequest));
    d.message = "asked the active peer \"" + options_.peer + "\" to hand over to this node";
    return d;
  }
  if (role_ != Role::kActive) {
    return refuse("node \"" + options_.node + "\" is " + std::string(to_string(role_)) +
                  ": a switchover starts on an active or standby node");
  }
  if (!peer_up || peer_->role != Role::kStandby) {
    return refuse("a switchover needs a standby peer that answers; peer \"" + options_.peer +
                  "\" is " + std::string(to_string(monitor.peer_state)) +
                  (peer_ ? ", " + std::string(to_string(peer_->role)) : std::string()));
  }
  Decision d = change(Role::kDemoting, "operator_switchover");
  switchover_deadline_ = now + options_.switchover_timeout;
  d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
  d.actions.push_back(act(RoleAction::Kind::kWatchDrain));
  d.message = "writes closed; draining the backlog to \"" + options_.peer + "\"";
  return d;
}

Decision RoleMachine::on_switchover_request(const PeerView& peer, const MonitorSnapshot& monitor,
                                            TimePoint now) {
  peer_ = peer;
  peer_heard_at_ = now;
  if (role_ == Role::kDemoting) return Decision{};  // already under way
  Decision d = switchover(monitor, now);
  if (d.accepted && d.to) d.reason = "switchover_request";
  return d;
}

Decision RoleMachine::standalone(TimePoint now) {
  (void)now;
  if (role_ != Role::kActive && role_ != Role::kStandby) {
    return refuse("node \"" + options_.node + "\" is " + std::string(to_string(role_)) +
                  ": only an active or standby node can leave the pair");
  }
  const Role from = role_;
  Decision d = change(Role::kStandalone, "operator_standalone");
  persisted_.role = Role::kStandalone;
  persisted_.standalone_from = from;
  d.actions.push_back(persist(persisted_));
  d.actions.push_back(act(RoleAction::Kind::kPauseReplication));
  if (from == Role::kStandby) d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
  d.message = "left the pair: writes open, replication paused; `mpfailover join` rejoins as " +
              std::string(to_string(from));
  return d;
}

Decision RoleMachine::join(TimePoint now) {
  (void)now;
  if (role_ != Role::kStandalone) {
    return refuse("node \"" + options_.node + "\" is " + std::string(to_string(role_)) +
                  ", not standalone: nothing to join");
  }
  const Role to = persisted_.standalone_from;
  Decision d = change(to, "operator_join");
  persisted_.role = to;
  d.actions.push_back(persist(persisted_));
  d.actions.push_back(act(RoleAction::Kind::kResumeReplication));
  if (to == Role::kStandby) d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
  d.message = "rejoined the pair as " + std::string(to_string(to)) +
              "; changes made meanwhile drain and reconcile both ways";
  return d;
}

Decision RoleMachine::on_peer(const PeerView& peer, const MonitorSnapshot& monitor, TimePoint now) {
  peer_ = peer;
  peer_heard_at_ = now;
  if (role_ == Role::kStarting && persisted_.initialized) return settle_start(&monitor, now);
  Decision d;
  if (handover_deadline_ && peer.role == Role::kActive && peer.epoch >= handover_epoch_) {
    handover_deadline_.reset();
    d.message = "switchover complete: \"" + peer.node + "\" is active at epoch " +
                std::to_string(peer.epoch);
  }
  const bool fenced_role = role_ == Role::kActive || role_ == Role::kDemoting;
  if (fenced_role && peer.role == Role::kActive) {
    if (peer_wins(peer)) return step_down(peer, "peer_active_higher_epoch");
    d.actions.push_back(act(RoleAction::Kind::kSendHeartbeatSoon));  // tell it to step down
    return d;
  }
  if (role_ == Role::kStandby && peer.epoch > persisted_.epoch && peer.role != Role::kStandalone) {
    persisted_.epoch = peer.epoch;
    d.actions.push_back(persist(persisted_));
  }
  return d;
}

Decision RoleMachine::on_monitor(const MonitorSnapshot& monitor, TimePoint now) {
  if (role_ == Role::kStarting && persisted_.initialized &&
      (monitor.peer_state == PeerState::kServiceDown ||
       monitor.peer_state == PeerState::kUnreachable)) {
    return settle_start(&monitor, now);
  }
  // The peer's own beats still arriving mean it is alive and active: only this node's frames to
  // it are lost (a one-way cut). Promoting then would make two actives for as long as the cut
  // lasts; found by the simulation (tests/sim, "still hears the active peer's beats").
  const bool peer_heard_lately =
      peer_heard_at_ && now - *peer_heard_at_ < options_.peer_heard_window;
  if (role_ == Role::kStandby && options_.automatic_failover && peer_ &&
      peer_->role == Role::kActive && monitor.missed >= options_.missed_heartbeats &&
      monitor.peer_state == PeerState::kUnreachable &&
      monitor.witness == WitnessState::kReachable && !peer_heard_lately) {
    return begin_promotion(std::max({persisted_.epoch, peer_->epoch, handover_epoch_}) + 1,
                           "automatic_failover", now);
  }
  return Decision{};
}

Decision RoleMachine::on_handover(const PeerView& peer, Epoch epoch, Position position,
                                  Position applied, TimePoint now) {
  peer_ = peer;
  peer_heard_at_ = now;
  if ((role_ == Role::kPromoting && promoting_epoch_ == epoch) ||
      (role_ == Role::kActive && persisted_.epoch == epoch)) {
    return Decision{};  // a resend of the handover under way
  }
  if (role_ != Role::kStandby) {
    return refuse("handover refused: node \"" + options_.node + "\" is " +
                  std::string(to_string(role_)));
  }
  if (epoch <= persisted_.epoch) {
    return refuse("handover refused: epoch " + std::to_string(epoch) + " is not above " +
                  std::to_string(persisted_.epoch));
  }
  if (applied < position) {
    return refuse("handover not yet: applied " + applied.to_string() + " of \"" + peer.node +
                  "\"'s changes, which end at " + position.to_string());
  }
  return begin_promotion(epoch, "handover", now);
}

Decision RoleMachine::on_persisted(bool ok, const std::string& error, TimePoint now) {
  if (!persist_in_flight_ || role_ != Role::kPromoting) {
    if (ok) {
      persist_retry_at_.reset();
    } else {
      // What the node knows (an adopted or handed-over epoch, a demotion) must reach the disk:
      // a restart that forgot a higher epoch could reuse it in a later failover (found by the
      // simulation). Retried from tick() until it lands; the newest state is what is written.
      last_error_ = "could not persist role: " + error + " (retrying)";
      persist_retry_at_ = now + options_.persist_retry;
    }
    return Decision{};
  }
  persist_in_flight_ = false;
  if (!ok) {
    last_error_ = "promotion to epoch " + std::to_string(promoting_epoch_) +
                  " failed: could not persist it: " + error;
    Decision d =
        change(Role::kStandby,
               promoting_from_ == Role::kStarting ? "persist_failed_initial" : "persist_failed");
    if (promoting_from_ == Role::kStarting) {
      // A brand-new database leaves the application's login writable: fence it as
      // initial_role_standby does (a standby promoting had its writes closed already).
      d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
      d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
    }
    d.message = last_error_;
    return d;
  }
  persisted_.initialized = true;
  persisted_.role = Role::kActive;
  persisted_.epoch = promoting_epoch_;
  Decision d = change(Role::kActive, "persisted");
  d.reason = promoting_reason_;
  d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
  d.actions.push_back(act(RoleAction::Kind::kRunPromoteHook));
  d.message = "active at epoch " + std::to_string(persisted_.epoch);
  last_error_.clear();
  return d;
}

Decision RoleMachine::on_backlog_drained(Position last, TimePoint now) {
  if (role_ != Role::kDemoting) return Decision{};
  Decision d = change(Role::kStandby, "backlog_drained");
  switchover_deadline_.reset();
  persisted_.role = Role::kStandby;
  handover_epoch_ = persisted_.epoch + 1;
  // The handed-over epoch is persisted before the handover goes out: a node that crashes before
  // hearing the peer take it must still fail over above it, or two actives share one epoch
  // (found by the simulation; the in-memory handover_epoch_ alone is lost in a crash).
  persisted_.epoch = handover_epoch_;
  d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
  d.actions.push_back(persist(persisted_));
  handover_position_ = last;
  handover_deadline_ = now + options_.handover_timeout;
  handover_sent_at_ = now;
  d.actions.push_back(RoleAction{RoleAction::Kind::kSendHandover, {}, handover_epoch_, last});
  d.message = "backlog drained at " + last.to_string() + "; handing over to \"" + options_.peer +
              "\" at epoch " + std::to_string(handover_epoch_);
  return d;
}

Decision RoleMachine::tick(TimePoint now) {
  if (persist_retry_at_ && now >= *persist_retry_at_ && role_ != Role::kPromoting &&
      role_ != Role::kStarting) {
    persist_retry_at_.reset();
    Decision d;
    d.actions.push_back(persist(persisted_));
    return d;
  }
  if (role_ == Role::kStarting && persisted_.initialized &&
      now - started_at_ >= options_.start_grace) {
    return settle_start(nullptr, now);
  }
  if (role_ == Role::kDemoting && switchover_deadline_ && now >= *switchover_deadline_) {
    switchover_deadline_.reset();
    last_error_ = "switchover aborted: the backlog did not drain within " +
                  duration_text(options_.switchover_timeout) + "; writes are open again here";
    Decision d = change(Role::kActive, "switchover_timeout");
    d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
    d.message = last_error_;
    return d;
  }
  if (handover_deadline_) {
    if (now >= *handover_deadline_) {
      handover_deadline_.reset();
      last_error_ = "peer \"" + options_.peer + "\" did not become active at epoch " +
                    std::to_string(handover_epoch_) + " within " +
                    duration_text(options_.handover_timeout) +
                    ": no node is active; run `mpfailover failover` on the node that should be";
      Decision d;
      d.message = last_error_;
      return d;
    }
    if (now - handover_sent_at_ >= options_.handover_resend) {
      handover_sent_at_ = now;
      Decision d;
      d.actions.push_back(
          RoleAction{RoleAction::Kind::kSendHandover, {}, handover_epoch_, handover_position_});
      return d;
    }
  }
  return Decision{};
}

}  // namespace mpf::heartbeat
