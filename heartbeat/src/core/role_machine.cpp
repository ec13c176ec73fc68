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
//  standby     no_active_peer            promoting   both standby and talking for
//                                                    settle_no_active (an interrupted switchover):
//                                                    the higher (epoch, name) promotes
//  active      peer_higher_epoch         standby     fenced, and the peer (round trip) is a
//                                                    standby at a higher epoch: it knows of a
//                                                    newer active, so this one is not the highest
//  promoting   arbiter_refused           standby     the arbiter's compare-and-swap failed
//  active      arbiter_refused           standby     fenced, and the arbiter says another node
//                                                    holds the key
//
// Self-fencing is not a role: an active is fenced (writes closed, on_demote run) while nothing
// confirms it still holds the highest epoch, and opens again (on_promote) once something does.
//  - A node that was persisted active closes writes at start and settles fenced
//    ("restart_unconfirmed") unless a heartbeat round trip begun after its start shows a peer
//    that does not outrank it.
//  - With failover.fence_after set (failover.automatic), an active whose last confirmation is
//    older than fence_after fences itself: with the ICMP witness a round trip with the peer or a
//    witness reply confirms ("peer_and_witness_silent": the isolated active closes before the
//    standby, which needs heartbeat.interval x missed + timeout of silence, can open); with the
//    arbiter only a renewal of its lease does ("arbiter_unconfirmed": before the lease can expire
//    and the standby's compare-and-swap can succeed).
//  - Reopening: with the ICMP witness, a round trip begun after the fence whose answer shows a
//    peer that is not active and not above this node's epoch; with the arbiter, holding the key.
//  - Maintenance mode pauses self-fencing, automatic failover and the no-active rule.
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
constexpr std::array<RoleMachine::Transition, 26> kTransitions{{
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
    {R::kStandby, "no_active_peer", R::kPromoting},
    {R::kActive, "peer_higher_epoch", R::kStandby},
    {R::kPromoting, "arbiter_refused", R::kStandby},
    {R::kActive, "arbiter_refused", R::kStandby},
}};

RoleAction act(RoleAction::Kind k) {
  RoleAction a;
  a.kind = k;
  return a;
}

RoleAction persist(const PersistedRole& p) {
  RoleAction a = act(RoleAction::Kind::kPersist);
  a.persist = p;
  return a;
}

RoleAction handover(Epoch epoch, Position position) {
  RoleAction a = act(RoleAction::Kind::kSendHandover);
  a.epoch = epoch;
  a.position = position;
  return a;
}

template <class T>
std::optional<T> latest(std::optional<T> a, std::optional<T> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
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
  forced_promotion_ = false;
  both_standby_since_.reset();
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
  if (fenced()) d.fence_changed = true;
  fenced_reason_.clear();
  acquire_pending_ = false;
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
    // A new database's login is writable: closed before the persist, which may block (found by
    // the simulation campaign: writes open on a brand-new standby beside the active).
    d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
    d.actions.push_back(persist(persisted_));
    d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
    d.message = "brand-new node: standby until an operator runs `mpfailover failover` on one node";
    return d;
  }
  // Only a node that was active waits: it must not take the shared address back from a peer
  // that was promoted while it was away.
  if (persisted_.role == Role::kActive) {
    // Writes close at once: the login was left writable by the previous run, and a peer may
    // have been promoted meanwhile (issue #18: 32 of 32 restarts while cut off took writes again
    // at the old epoch). They open again only on a confirmation (settle_start, unfence).
    Decision d;
    d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
    d.message = "was active at epoch " + std::to_string(persisted_.epoch) +
                ": writes closed until the peer's word or the arbiter confirms the epoch";
    fenced_reason_ = "restart_unconfirmed";
    fenced_at_ = now;
    return d;
  }
  return settle_start(nullptr, now);
}

Decision RoleMachine::settle_start(const MonitorSnapshot* monitor, TimePoint now) {
  if (monitor) observe(*monitor);
  if (persisted_.role == Role::kActive && peer_ && peer_->role == Role::kActive &&
      peer_wins(*peer_)) {
    fenced_reason_.clear();
    return step_down(*peer_, "peer_active_higher_epoch");
  }
  Decision d = change(persisted_.role, "start_settled");
  switch (persisted_.role) {
    case Role::kActive:
      if (peer_confirms()) {
        fenced_reason_.clear();
        d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
        d.actions.push_back(act(RoleAction::Kind::kRunPromoteHook));
      } else {
        // Active, fenced: the shared address this host may still hold goes too.
        d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
        d.message = "active at epoch " + std::to_string(persisted_.epoch) +
                    ", fenced: writes stay closed until the peer's word or the arbiter confirms "
                    "this epoch";
        if (options_.arbiter) d.actions.push_back(acquire_action(persisted_.epoch, now));
      }
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
      if (fenced() && ctx.force) {
        // The operator's judgement: nothing confirmed this epoch, open anyway.
        return unfence("operator ran `mpfailover failover --force`", now);
      }
      if (fenced()) {
        return refuse("node \"" + options_.node + "\" is active at epoch " +
                      std::to_string(persisted_.epoch) + " but fenced (" + fenced_reason_ +
                      "): it reopens when the peer or the arbiter confirms the epoch; --force "
                      "reopens writes now (only if the peer is known not to be active)");
      }
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
  Decision d = begin_promotion(std::max({persisted_.epoch, peer_epoch, handover_epoch_}) + 1,
                               "operator_failover", now);
  forced_promotion_ = ctx.force;
  return d;
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
  // Out of the pair on purpose: writes open, a fence included (the operator's decision).
  if (from == Role::kStandby || fenced()) d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
  if (fenced()) d.fence_changed = true;
  fenced_reason_.clear();
  d.message = "left the pair: writes open, replication paused; `mpfailover join` rejoins as " +
              std::string(to_string(from));
  return d;
}

Decision RoleMachine::join(TimePoint now) {
  if (role_ != Role::kStandalone) {
    return refuse("node \"" + options_.node + "\" is " + std::string(to_string(role_)) +
                  ", not standalone: nothing to join");
  }
  const Role to = persisted_.standalone_from;
  Decision d = change(to, "operator_join");
  persisted_.role = to;
  // Writes close first, before the persist (which may block): back in the pair, a standalone
  // node's open writes would stand beside the active's for as long (found by the campaign).
  d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
  if (to == Role::kActive) {
    // Back as active, but the peer may have been promoted meanwhile (with the arbiter: the key
    // may be the peer's): fenced until the peer's word or the arbiter confirms (found by the
    // long simulation campaign: join reopened beside a newer active).
    fenced_reason_ = "join_unconfirmed";
    fenced_at_ = now;
    d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
  }
  d.actions.push_back(persist(persisted_));
  d.actions.push_back(act(RoleAction::Kind::kResumeReplication));
  if (to == Role::kActive && options_.arbiter) {
    d.actions.push_back(acquire_action(persisted_.epoch, now));
  }
  d.message = "rejoined the pair as " + std::string(to_string(to)) +
              "; changes made meanwhile drain and reconcile both ways";
  return d;
}

Decision RoleMachine::on_peer(const PeerView& peer, const MonitorSnapshot& monitor, TimePoint now) {
  peer_ = peer;
  peer_heard_at_ = now;
  observe(monitor);
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
  if (role_ == Role::kActive && fenced() && !options_.arbiter && round_trip_sent_ &&
      *round_trip_sent_ >= fenced_at_ && peer.role == Role::kStandby &&
      peer.epoch > persisted_.epoch) {
    // A standby above this epoch learnt it from a newer active: this node is not the highest.
    return step_down(peer, "peer_higher_epoch");
  }
  if (role_ == Role::kActive && fenced() && peer_confirms()) {
    return unfence("peer \"" + peer.node + "\" answered as " + std::string(to_string(peer.role)) +
                       " at epoch " + std::to_string(peer.epoch),
                   now);
  }
  if (role_ == Role::kStandby && peer.epoch > persisted_.epoch && peer.role != Role::kStandalone) {
    persisted_.epoch = peer.epoch;
    d.actions.push_back(persist(persisted_));
  }
  return d;
}

Decision RoleMachine::on_monitor(const MonitorSnapshot& monitor, TimePoint now) {
  observe(monitor);
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
  // With the arbiter and no witness, the arbiter's compare-and-swap is the tie-breaker.
  const bool witness_ok = monitor.witness == WitnessState::kReachable ||
                          (options_.arbiter && monitor.witness == WitnessState::kNone);
  if (role_ == Role::kStandby && options_.automatic_failover && !persisted_.maintenance && peer_ &&
      peer_->role == Role::kActive && monitor.missed >= options_.missed_heartbeats &&
      monitor.peer_state == PeerState::kUnreachable && witness_ok && !peer_heard_lately) {
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
  if (options_.arbiter && !forced_promotion_) {
    // Every promotion but a forced one is a compare-and-swap on the arbiter's key: writes open
    // only once it succeeded (on_arbiter_acquired).
    acquire_pending_ = true;
    Decision d;
    d.actions.push_back(acquire_action(promoting_epoch_, now));
    d.message =
        "epoch " + std::to_string(promoting_epoch_) + " persisted; taking the arbiter's key";
    return d;
  }
  return finish_promotion_open(now);
}

Decision RoleMachine::finish_promotion_open(TimePoint now) {
  Decision d = change(Role::kActive, "persisted");
  d.reason = promoting_reason_;
  d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
  d.actions.push_back(act(RoleAction::Kind::kRunPromoteHook));
  d.message = "active at epoch " + std::to_string(persisted_.epoch);
  last_error_.clear();
  fenced_reason_.clear();
  confirmed_floor_ = now;
  if (options_.arbiter && forced_promotion_) {
    RoleAction a = acquire_action(persisted_.epoch, now);
    a.force = true;
    d.actions.push_back(a);
  }
  forced_promotion_ = false;
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
  d.actions.push_back(handover(handover_epoch_, last));
  d.message = "backlog drained at " + last.to_string() + "; handing over to \"" + options_.peer +
              "\" at epoch " + std::to_string(handover_epoch_);
  return d;
}

Decision RoleMachine::tick(const MonitorSnapshot& monitor, TimePoint now) {
  observe(monitor);
  return tick(now);
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
    // Writes reopen only if nothing says they must not: a fence from before, or (self-fencing
    // on) no confirmation within fence_after, e.g. a lease that lapsed while demoting (found by
    // the simulation campaign).
    std::optional<TimePoint> since = confirmed_floor_;
    since = options_.arbiter ? latest(since, arbiter_sent_)
                             : latest(since, latest(round_trip_sent_, witness_reply_sent_));
    const bool stale = options_.fence_after > Duration::zero() && !persisted_.maintenance &&
                       (!since || now - *since >= options_.fence_after);
    if (!fenced() && !stale) {
      d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
    } else {
      if (!fenced()) {
        fenced_reason_ = options_.arbiter ? "arbiter_unconfirmed" : "peer_and_witness_silent";
        fenced_at_ = now;
      }
      if (options_.arbiter) d.actions.push_back(acquire_action(persisted_.epoch, now));
      last_error_ += " (fenced: " + fenced_reason_ + ")";
    }
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
      d.actions.push_back(handover(handover_epoch_, handover_position_));
      return d;
    }
  }
  if (Decision d = check_fence(now); !d.actions.empty() || d.to) return d;
  return check_no_active(now);
}

// --- self-fencing, maintenance, the arbiter --------------------------------------------------

void RoleMachine::observe(const MonitorSnapshot& monitor) {
  round_trip_sent_ = latest(round_trip_sent_, monitor.last_round_trip_sent_at);
  witness_reply_sent_ = latest(witness_reply_sent_, monitor.last_witness_reply_sent_at);
  last_monitor_ = monitor;
}

// The peer's word confirms this fenced active: a round trip begun after the fence (the peer
// heard this node since) whose answer shows a peer that is neither active (or about to be) nor
// above this node's epoch. With the arbiter only the arbiter confirms.
bool RoleMachine::peer_confirms() const {
  if (options_.arbiter) return false;
  if (!peer_ || !round_trip_sent_ || *round_trip_sent_ < fenced_at_) return false;
  if (peer_->role == Role::kActive || peer_->role == Role::kPromoting ||
      peer_->role == Role::kDemoting) {
    return false;
  }
  return peer_->epoch <= persisted_.epoch;
}

Decision RoleMachine::fence(std::string reason, TimePoint now) {
  fenced_reason_ = std::move(reason);
  fenced_at_ = now;
  Decision d;
  d.fence_changed = true;
  d.actions.push_back(act(RoleAction::Kind::kCloseWrites));
  d.actions.push_back(act(RoleAction::Kind::kRunDemoteHook));
  d.actions.push_back(act(RoleAction::Kind::kSendHeartbeatSoon));
  d.message = "fenced (" + fenced_reason_ + "): nothing confirmed epoch " +
              std::to_string(persisted_.epoch) + " for " + duration_text(options_.fence_after) +
              "; writes closed until the peer's word or the arbiter confirms it";
  if (options_.arbiter) {
    d.actions.push_back(acquire_action(persisted_.epoch, now));
  }
  return d;
}

Decision RoleMachine::unfence(std::string why, TimePoint now) {
  const std::string was = fenced_reason_;
  fenced_reason_.clear();
  confirmed_floor_ = now;
  Decision d;
  d.fence_changed = true;
  d.actions.push_back(act(RoleAction::Kind::kOpenWrites));
  d.actions.push_back(act(RoleAction::Kind::kRunPromoteHook));
  d.actions.push_back(act(RoleAction::Kind::kSendHeartbeatSoon));
  d.message = "unfenced (was " + was + "): " + why + "; writes open at epoch " +
              std::to_string(persisted_.epoch);
  return d;
}

RoleAction RoleMachine::acquire_action(Epoch epoch, TimePoint now) {
  RoleAction a = act(RoleAction::Kind::kArbiterAcquire);
  a.epoch = epoch;
  arbiter_acquire_at_ = now;
  if (role_ == Role::kPromoting && promoting_reason_ == "handover" && peer_) {
    // The peer handed over at `epoch`: its key (at the epoch before) may be replaced.
    a.replace_node = peer_->node;
    a.replace_epoch = epoch - 1;
  } else if (role_ != Role::kPromoting) {
    a.replace_node = options_.node;  // this node's own key, from before a restart
    a.replace_epoch = persisted_.epoch;
  }
  return a;
}

Decision RoleMachine::check_fence(TimePoint now) {
  if (role_ != Role::kActive) return Decision{};
  if (fenced()) {
    // Fenced with the arbiter: ask for the key again every arbiter_retry.
    if (options_.arbiter &&
        (!arbiter_acquire_at_ || now - *arbiter_acquire_at_ >= options_.arbiter_retry)) {
      Decision d;
      d.actions.push_back(acquire_action(persisted_.epoch, now));
      return d;
    }
    return Decision{};
  }
  if (options_.fence_after <= Duration::zero() || persisted_.maintenance) return Decision{};
  std::optional<TimePoint> since = confirmed_floor_;
  if (options_.arbiter) {
    since = latest(since, arbiter_sent_);
  } else {
    since = latest(since, latest(round_trip_sent_, witness_reply_sent_));
  }
  if (since && now - *since < options_.fence_after) return Decision{};
  return fence(options_.arbiter ? "arbiter_unconfirmed" : "peer_and_witness_silent", now);
}

Decision RoleMachine::check_no_active(TimePoint now) {
  const bool candidate =
      role_ == Role::kStandby && !persisted_.maintenance && !handover_deadline_ && peer_ &&
      peer_->role == Role::kStandby && round_trip_sent_ && peer_heard_at_ &&
      now - *round_trip_sent_ < options_.peer_heard_window + options_.settle_no_active &&
      std::max(persisted_.epoch, peer_->epoch) >= 1;
  if (!candidate) {
    both_standby_since_.reset();
    return Decision{};
  }
  if (!both_standby_since_) both_standby_since_ = now;
  if (now - *both_standby_since_ < options_.settle_no_active || peer_wins(*peer_)) {
    return Decision{};
  }
  both_standby_since_.reset();
  Decision d = begin_promotion(std::max({persisted_.epoch, peer_->epoch, handover_epoch_}) + 1,
                               "no_active_peer", now);
  if (d.accepted) {
    d.message = "no node active for " + duration_text(options_.settle_no_active) +
                " while both talk: " + d.message;
  }
  return d;
}

Decision RoleMachine::set_maintenance(bool on, TimePoint now) {
  (void)now;
  Decision d;
  if (persisted_.maintenance == on) {
    d.message = std::string("maintenance mode is already ") + (on ? "on" : "off");
    return d;
  }
  persisted_.maintenance = on;
  if (role_ != Role::kStarting && role_ != Role::kPromoting) {
    d.actions.push_back(persist(persisted_));
  } else {
    persist_retry_at_ = now;  // written once the role settles (tick's retry)
  }
  // Maintenance ends: an active nothing confirmed meanwhile fences at once (its standby may
  // resume failover at the same instant, and with the arbiter its lease may have expired; found
  // by the long simulation campaign), and a standby counts its silence window from now.
  if (!on) peer_heard_at_ = now;
  d.message = on ? "maintenance mode on: automatic failover and self-fencing paused"
                 : "maintenance mode off: automatic failover and self-fencing resumed";
  return d;
}

Decision RoleMachine::on_arbiter(const ArbiterWord& word, TimePoint now) {
  if (word.holds) {
    arbiter_sent_ = latest(arbiter_sent_, std::optional<TimePoint>(word.sent_at));
    if (role_ == Role::kActive && fenced()) {
      return unfence("the arbiter confirms the key at epoch " + std::to_string(persisted_.epoch),
                     now);
    }
    return Decision{};
  }
  if (word.holder && *word.holder != options_.node && role_ == Role::kActive) {
    const PeerView holder{*word.holder, Role::kActive, word.holder_epoch};
    if (peer_wins(holder)) return step_down(holder, "arbiter_refused");
  }
  return Decision{};
}

Decision RoleMachine::on_arbiter_acquired(const ArbiterWord& word, const std::string& detail,
                                          TimePoint now) {
  if (role_ == Role::kPromoting && acquire_pending_) {
    acquire_pending_ = false;
    if (word.holds) {
      arbiter_sent_ = latest(arbiter_sent_, std::optional<TimePoint>(word.sent_at));
      return finish_promotion_open(now);
    }
    last_error_ = "promotion to epoch " + std::to_string(promoting_epoch_) +
                  " refused by the arbiter: " + detail;
    Decision d = change(Role::kStandby, "arbiter_refused");
    persisted_.role = Role::kStandby;
    persisted_.epoch = std::max(persisted_.epoch, word.holder_epoch);
    d.actions.push_back(persist(persisted_));
    d.message = last_error_;
    return d;
  }
  if (word.holds) return on_arbiter(word, now);
  if (role_ == Role::kActive && word.holder && *word.holder != options_.node) {
    last_error_ = "the arbiter's key is held by \"" + *word.holder + "\" at epoch " +
                  std::to_string(word.holder_epoch) + ": " + detail;
    return on_arbiter(word, now);
  }
  return Decision{};
}

}  // namespace mpf::heartbeat
