// NOTES: how SimNode mirrors NodeDriver (server/src/node_driver.cpp).
//
//  NodeDriver                                  SimNode
//  ------------------------------------------  ------------------------------------------------
//  start(): load role, PeerMonitor,            boot(): the Store's PersistedRole, the same
//    RoleMachine (start_grace = timeout +        options derived the same way, publish, apply
//    ping_timeout + 500 ms, handover_timeout     (start()), first tick 10 ms later
//    = max(5 s, 3 × timeout)), publish,
//    apply(start()), schedule_tick()
//  io_context (one thread)                     work_ (a queue run by pump()); a slow persist
//                                                blocks it as the synchronous persist blocks
//                                                the io thread
//  tick() every 10 ms: poll socket,            tick(): the same steps, each a queue item so a
//    monitor tick, role tick, watch_drain,       persist blocking in one holds the rest back
//    publish
//  on_port_frame (receiver's port thread):     on_frame(Beat): answered at once from published_
//    answer from published_ + command_note_,     and command_note_ even while the driver is
//    post on_peer_message                        blocked; on_peer_message queued
//  poll_heartbeat_socket: answer from peer,    on_frame(Answer): queued; on_answer (seq != 0),
//    seq != 0 → on_answer, on_peer_message       then on_peer_message as the next item
//  on_peer_message: handover → on_handover     on_peer_message: the same dispatch; `applied`
//    (applied from the database), switchover     from the Store
//    request → on_switchover_request, else
//    on_peer; command_note_ = refusal
//  apply_monitor: send beat, ping peer,        apply_monitor: the same; pings answered by
//    ping witnesses (any reply), log; a          World::ping_* after a round trip or the ping
//    missed/state/witness change → on_monitor    timeout; a ping asked while one is in flight
//                                                fails at once (IcmpPinger's kError)
//  apply(): for each action in order; kPersist apply(): the list becomes a Frame on stack_;
//    synchronous, then apply(on_persisted())     step_action() does one action; on_persisted's
//    before the next action; publish at end      decision is pushed on top (nested, as the
//                                                recursive call); publish when a frame ends
//  set_writes / hooks / drain / pause /        Store::writes_open / trace / drain_watch_since_
//    send_beat(0, command) / send_soon           / paused_ / send_beat / send_soon
//  watch_drain: shipper caught up after the    watch_drain: the same test against the
//    drain started → on_backlog_drained(acked)   replication model's caught_up_at_/acked_
//  handle(): failover (definitions match),     command(): the same calls; an operator's
//    switchover, standalone, join, maintenance   command waits while the driver is blocked
//  tick(): role_->tick(snapshot, now), then    tick(): the same order
//    arbiter_tick()
//  arbiter_acquire / arbiter_tick (renew every arbiter_acquire / arbiter_tick: the same rules;
//    interval while active and not fenced,       EtcdArbiter's request sequence is one atomic
//    release when standby or standalone) /       op at World's arbiter (each of its steps is
//    on_arbiter_answer (on_arbiter_acquired      linearizable and the CAS decides alike); a
//    or on_arbiter)                              lost request answers after the request timeout
//  SteadyClock                                 SimNode::now(): simulated time x (1 + drift)
//
// Not mirrored: logging, metrics, hooks' outcome (they never change the role), set_writes
// failures, the definitions check (always matching here).
#include "sim/sim.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <mpf/core/status.hpp>

namespace mpf::sim {

using heartbeat::Command;
using heartbeat::Decision;
using heartbeat::HeartbeatMessage;
using heartbeat::MonitorAction;
using heartbeat::PeerState;
using heartbeat::RoleAction;
using namespace std::chrono_literals;

namespace {

constexpr auto kTickInterval = 10ms;      // NodeDriver's kTickInterval
constexpr auto kStatementTimeout = 5s;    // NodeDatabase's statement_timeout
constexpr auto kReplicationStep = 20ms;   // the replication model's granularity
constexpr auto kAppWriteInterval = 50ms;  // the application commits this often
constexpr int64_t kWallBaseUs = 1'700'000'000'000'000;
const char* const kNames[2] = {"a", "b"};

std::string ms_text(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
}

std::string time_text(TimePoint t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%10.3f",
                std::chrono::duration<double>(t.time_since_epoch()).count());
  return buf;
}

}  // namespace

std::string_view to_string(Fault f) {
  switch (f) {
    case Fault::kDrop:
      return "drop";
    case Fault::kDuplicate:
      return "duplicate";
    case Fault::kReorder:
      return "reorder";
    case Fault::kDelaySpike:
      return "delay_spike";
    case Fault::kPartition:
      return "partition";
    case Fault::kOneWayPartition:
      return "one_way_partition";
    case Fault::kPortBlock:
      return "port_block";
    case Fault::kLinkDown:
      return "link_down";
    case Fault::kWitnessLoss:
      return "witness_loss";
    case Fault::kSwizzle:
      return "swizzle";
    case Fault::kClogDelivered:
      return "clog_delivered";
    case Fault::kDaemonCrash:
      return "daemon_crash";
    case Fault::kHostCrash:
      return "host_crash";
    case Fault::kSlowPersist:
      return "slow_persist";
    case Fault::kFailedPersist:
      return "failed_persist";
    case Fault::kPersistCutByCrash:
      return "persist_cut_by_crash";
    case Fault::kClockJump:
      return "clock_jump";
    case Fault::kArbiterCut:
      return "arbiter_cut";
    case Fault::kArbiterLoss:
      return "arbiter_loss";
    case Fault::kSelfFence:
      return "self_fence";
    case Fault::kCount:
      break;
  }
  return "?";
}

Break break_from_env() {
  const char* v = std::getenv("MPF_SIM_BREAK");
  if (!v || !*v) return Break::kNone;
  const std::string s(v);
  if (s == "skip_close_writes") return Break::kSkipCloseWrites;
  if (s == "open_before_persist") return Break::kOpenBeforePersist;
  if (s == "witness_always_reachable") return Break::kWitnessAlwaysReachable;
  if (s == "no_self_fence") return Break::kNoSelfFence;
  if (s == "arbiter_no_cas") return Break::kArbiterNoCas;
  std::fprintf(stderr,
               "MPF_SIM_BREAK=\"%s\" is not one of skip_close_writes, "
               "open_before_persist, witness_always_reachable, no_self_fence, arbiter_no_cas\n",
               v);
  std::abort();
}

SimConfig random_config(std::mt19937_64& rng) {
  auto pick = [&](auto... v) {
    const std::array<Duration, sizeof...(v)> all{Duration(v)...};
    return all[rng() % all.size()];
  };
  auto unit = [&] { return std::uniform_real_distribution<double>(0, 1)(rng); };
  SimConfig c;
  c.interval = pick(1s, 2s, 5s);
  c.timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(c.interval * (0.3 + 0.5 * unit()));
  c.ping_timeout = std::chrono::milliseconds(100 + static_cast<int>(unit() * 600));
  c.automatic_failover = unit() < 0.7;
  c.witness = c.automatic_failover || unit() < 0.5;  // the config refuses automatic without one
  c.missed_heartbeats = 1 + static_cast<int>(rng() % 3);
  c.switchover_timeout = pick(3s, 10s, 30s);
  c.brand_new = unit() < 0.3;
  c.b_boot_delay = std::chrono::milliseconds(static_cast<int>(unit() * 3000));
  // Issue #18: half the seeds run with the etcd arbiter; every seed with drifting clocks.
  c.arbiter = unit() < 0.5;
  if (c.arbiter) c.witness = unit() < 0.5;  // the arbiter decides; a witness is optional
  c.arbiter_delay = std::chrono::microseconds(200 + static_cast<int>(unit() * 5000));
  for (auto& d : c.drift_ppm) d = static_cast<int>(unit() * 1000) - 500;
  return c;
}

Counters& Counters::operator+=(const Counters& o) {
  for (size_t i = 0; i < faults.size(); ++i) faults[i] += o.faults[i];
  automatic_failovers += o.automatic_failovers;
  operator_failovers += o.operator_failovers;
  forced_failovers += o.forced_failovers;
  handovers += o.handovers;
  switchover_requests += o.switchover_requests;
  step_downs += o.step_downs;
  standalones += o.standalones;
  promoted_while_hearing_active += o.promoted_while_hearing_active;
  self_fences += o.self_fences;
  unfences += o.unfences;
  no_active_promotions += o.no_active_promotions;
  arbiter_refusals += o.arbiter_refusals;
  two_writer_episodes += o.two_writer_episodes;
  down_daemon_overlaps += o.down_daemon_overlaps;
  end_operator_failovers += o.end_operator_failovers;
  blind_same_epoch += o.blind_same_epoch;
  frames += o.frames;
  simulated += o.simulated;
  return *this;
}

// --- SimNode: the driver ------------------------------------------------------------------

SimNode::SimNode(World& world, int id)
    : w_(world), id_(id), name_(kNames[id]), peer_name_(kNames[1 - id]) {}

void SimNode::boot() {
  MPF_ASSERT(!running_, "boot a stopped daemon");
  running_ = true;
  ++incarnation_;
  const auto& c = w_.config();
  heartbeat::MonitorOptions mo;
  mo.interval = c.interval;
  mo.timeout = c.timeout;
  mo.max_skew = c.max_skew;
  mo.has_witness = c.witness;
  monitor_ = std::make_unique<heartbeat::PeerMonitor>(mo);

  heartbeat::RoleOptions ro;
  ro.node = name_;
  ro.peer = peer_name_;
  ro.initial_role = id_ == 0 ? Role::kActive : Role::kStandby;
  ro.automatic_failover = c.automatic_failover;
  ro.missed_heartbeats = c.missed_heartbeats;
  ro.switchover_timeout = c.switchover_timeout;
  ro.peer_heard_window = c.interval * c.missed_heartbeats + c.timeout;
  ro.start_grace = c.timeout + c.ping_timeout + 500ms;
  ro.handover_timeout = std::max<Duration>(5s, 3 * c.timeout);
  ro.arbiter = c.arbiter;
  // What load_config derives (fence_timing.hpp): self-fencing with automatic failover or the
  // arbiter.
  if ((c.automatic_failover || c.arbiter) && c.inject != Break::kNoSelfFence) {
    ro.fence_after =
        heartbeat::fence_timing(c.interval, c.timeout, c.missed_heartbeats, c.arbiter).fence_after;
  }
  ro.settle_no_active = ro.handover_timeout + 2 * c.interval;
  role_ = std::make_unique<heartbeat::RoleMachine>(ro, store_.persisted, now());
  w_.trace(name_ + " DaemonStarted role=" + std::string(to_string(store_.persisted.role)) +
           " epoch=" + std::to_string(store_.persisted.epoch) +
           " initialized=" + (store_.persisted.initialized ? "1" : "0") +
           " writes=" + (store_.writes_open ? "open" : "closed"));
  publish_status();
  post([this] { apply(role_->start(now()), "start"); });
  schedule_tick();
}

void SimNode::crash() {
  if (!running_) return;
  if (persist_in_flight_) {
    // The daemon died inside a persist: the transaction committed or it did not.
    w_.fault(Fault::kPersistCutByCrash);
    if (w_.uniform() < 0.5) write_store(*persist_in_flight_);
  }
  running_ = false;
  ++incarnation_;
  monitor_.reset();
  role_.reset();
  published_ = {};
  command_note_.clear();
  drain_watch_since_.reset();
  paused_ = false;
  acked_ = {};
  caught_up_at_.reset();
  peer_ping_in_flight_ = witness_ping_in_flight_ = false;
  witness_replies_pending_ = 0;
  witness_any_reply_ = false;
  promoting_from_standby_ = false;
  stack_.clear();
  blocked_ = false;
  persist_in_flight_.reset();
  work_.clear();
  forced_command_ = false;
  lease_ = 0;  // EtcdArbiter's lease lives in the daemon: a new one after a restart
  arbiter_renew_at_.reset();
  arbiter_held_.reset();
  arbiter_in_flight_ = false;
  last_answer_at_.reset();
  max_answer_seq_ = 0;
  last_peer_ping_.reset();
  last_witness_ping_.reset();
  heard_active_at_.reset();
  w_.trace(name_ + " DaemonStopped");
}

void SimNode::post(std::function<void()> fn) {
  if (!running_) return;
  work_.push_back(std::move(fn));
  pump();
}

void SimNode::then(std::vector<std::function<void()>> steps) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) work_.push_front(std::move(*it));
}

void SimNode::run_on_driver(std::function<void()> fn) { post(std::move(fn)); }

void SimNode::pump() {
  if (pumping_) return;
  pumping_ = true;
  while (running_ && !blocked_) {
    if (!stack_.empty()) {
      step_action();
    } else if (!work_.empty()) {
      auto fn = std::move(work_.front());
      work_.pop_front();
      fn();
    } else {
      break;
    }
  }
  pumping_ = false;
}

void SimNode::schedule_tick() {
  w_.at_driver(w_.now() + kTickInterval, id_, [this] { tick(); });
}

TimePoint SimNode::now() const {
  const auto t = w_.now().time_since_epoch();
  return TimePoint(t + t * w_.config().drift_ppm[id_] / 1'000'000);
}

void SimNode::tick() {
  const auto now = this->now();
  // poll_heartbeat_socket(): frames are delivered as they arrive, nothing to poll.
  then({
      [this, now] { apply_monitor(monitor_->tick(now)); },
      [this, now] { apply(role_->tick(monitor_->snapshot(), now), "tick"); },
      [this] { arbiter_tick(); },
      [this] { watch_drain(); },
      [this] {
        publish_status();
        schedule_tick();
      },
  });
}

heartbeat::NodeStatus SimNode::my_status() const {
  heartbeat::NodeStatus s;
  s.node = name_;
  s.target = peer_name_;
  s.role = role_ ? role_->role() : Role::kStarting;
  s.epoch = role_ ? role_->epoch() : 0;
  s.wall_us = w_.wall_us(id_);
  s.applied_from_peer = Position{store_.applied, 0};
  s.acked_by_peer = acked_;
  s.catalog_version = 7;
  s.definitions_digest = 0x5eed;
  return s;
}

void SimNode::publish_status() { published_ = my_status(); }

void SimNode::on_frame(const std::string& frame, uint64_t sender) {
  auto m = heartbeat::decode_heartbeat(frame);
  if (!m) {
    w_.violation(name_ + ": a frame the simulated network did not corrupt failed to decode: " +
                 m.status().message());
    return;
  }
  if (m->kind == HeartbeatMessage::Kind::kBeat) {
    // The receiver's port thread: answered at once, whatever the driver thread is doing.
    if (m->status.node != peer_name_ || m->status.target != name_) return;
    HeartbeatMessage answer;
    answer.kind = HeartbeatMessage::Kind::kAnswer;
    answer.seq = m->seq;
    answer.echo_wall_us = m->status.wall_us;
    answer.status = published_;
    answer.note = command_note_;
    answer.status.wall_us = w_.wall_us(id_);
    w_.send(id_, 1 - id_, heartbeat::encode(answer), sender);
    post([this, msg = std::move(m.value())] { on_peer_message(msg); });
    return;
  }
  post([this, msg = std::move(m.value())] { on_answer_frame(msg); });
}

void SimNode::on_answer_frame(const HeartbeatMessage& m) {
  if (m.status.node != peer_name_) return;
  then({
      [this, m] {
        if (m.seq == 0) return;
        if (m.seq > max_answer_seq_) {
          max_answer_seq_ = m.seq;
          last_answer_at_ = w_.now();
        }
        heartbeat::HeartbeatAnswer a{m.seq, m.status.wall_us, m.echo_wall_us, w_.wall_us(id_)};
        apply_monitor(monitor_->on_answer(a, now()));
      },
      [this, m] { on_peer_message(m); },
  });
}

void SimNode::send_beat(uint64_t seq, Command command, Epoch epoch, Position position) {
  HeartbeatMessage m;
  m.kind = HeartbeatMessage::Kind::kBeat;
  m.seq = seq;
  m.status = my_status();
  m.command = command;
  m.command_epoch = epoch;
  m.command_position = position;
  w_.send(id_, 1 - id_, heartbeat::encode(m));
}

void SimNode::on_peer_message(const HeartbeatMessage& m) {
  const auto now = this->now();
  if (m.status.role == Role::kActive) heard_active_at_ = w_.now();  // ground truth: world time
  store_.heard_peer = true;
  heartbeat::PeerView view{m.status.node, m.status.role, m.status.epoch};
  if (m.kind == HeartbeatMessage::Kind::kBeat && m.command == Command::kHandover) {
    const Position applied{store_.applied, 0};
    auto d = role_->on_handover(view, m.command_epoch, m.command_position, applied, now);
    command_note_ = d.accepted ? "" : d.message;
    apply(d, "handover");
    return;
  }
  if (m.kind == HeartbeatMessage::Kind::kBeat && m.command == Command::kSwitchoverRequest) {
    auto d = role_->on_switchover_request(view, monitor_->snapshot(), now);
    command_note_ = d.accepted ? "" : d.message;
    apply(d, "switchover_request");
    return;
  }
  apply(role_->on_peer(view, monitor_->snapshot(), now), "peer");
}

void SimNode::apply_monitor(const std::vector<MonitorAction>& actions) {
  bool verdict_changed = false;
  for (const auto& a : actions) {
    switch (a.kind) {
      case MonitorAction::Kind::kSendHeartbeat:
        send_beat(a.seq, Command::kNone, 0, {});
        break;
      case MonitorAction::Kind::kPingPeer: {
        if (peer_ping_in_flight_) {
          // IcmpPinger refuses a second ping in flight: kError, reported from the io_context.
          post([this] { apply_monitor(monitor_->on_ping_result(false, now())); });
          break;
        }
        peer_ping_in_flight_ = true;
        const auto issued = w_.now();
        w_.ping_peer(id_, [this, issued](bool replied) {
          peer_ping_in_flight_ = false;
          last_peer_ping_ = PingRecord{issued, replied};
          apply_monitor(monitor_->on_ping_result(replied, now()));
        });
        break;
      }
      case MonitorAction::Kind::kPingWitness: {
        witness_replies_pending_ = w_.config().witness ? 1 : 0;
        witness_any_reply_ = false;
        if (!w_.config().witness) break;
        auto done = [this](bool replied, TimePoint issued, bool real) {
          if (real) {
            witness_ping_in_flight_ = false;
            last_witness_ping_ = PingRecord{issued, replied};  // the truth, whatever is injected
          }
          if (w_.config().inject == Break::kWitnessAlwaysReachable) replied = true;
          witness_any_reply_ |= replied;
          if (--witness_replies_pending_ == 0) {
            apply_monitor(monitor_->on_witness_result(witness_any_reply_, now()));
          }
        };
        const auto issued = w_.now();
        if (witness_ping_in_flight_) {
          post([done, issued] { done(false, issued, false); });
          break;
        }
        witness_ping_in_flight_ = true;
        w_.ping_witness(id_, [done, issued](bool replied) { done(replied, issued, true); });
        break;
      }
      case MonitorAction::Kind::kHeartbeatMissed:
      case MonitorAction::Kind::kPeerStateChanged:
      case MonitorAction::Kind::kWitnessChanged:
        verdict_changed = true;
        break;
      case MonitorAction::Kind::kSkewHigh:
      case MonitorAction::Kind::kSkewNormal:
        break;
    }
  }
  if (verdict_changed) apply(role_->on_monitor(monitor_->snapshot(), now()), "monitor");
}

void SimNode::apply(const Decision& d, const char* trigger) {
  if (d.to) {
    w_.trace(name_ + " RoleChanged from=" + std::string(to_string(*d.from)) +
             " to=" + std::string(to_string(*d.to)) + " epoch=" + std::to_string(role_->epoch()) +
             " reason=" + d.reason + " trigger=" + trigger);
    if (*d.to == Role::kPromoting) {
      promoting_from_standby_ = *d.from == Role::kStandby;
      store_.last_promotion_blind = !store_.heard_peer;
      w_.check_promotion(id_, d, forced_command_);
    }
    auto& c = w_.counters();
    if (d.reason == "peer_active_higher_epoch") ++c.step_downs;
    if (d.reason == "operator_standalone") ++c.standalones;
    if (d.reason == "no_active_peer") ++c.no_active_promotions;
    if (d.reason == "arbiter_refused") ++c.arbiter_refusals;
  } else if (d.fence_changed) {
    w_.trace(name_ + " FenceChanged fenced=" +
             (role_->fenced() ? "1 reason=" + role_->fenced_reason() : "0") +
             " epoch=" + std::to_string(role_->epoch()) + " trigger=" + trigger);
    if (role_->fenced()) {
      ++w_.counters().self_fences;
      w_.fault(Fault::kSelfFence);
    } else {
      ++w_.counters().unfences;
    }
  } else if (!d.accepted && d.reason == "transition_refused") {
    w_.violation(name_ + ": the role machine refused its own transition: " + d.message);
  }
  stack_.push_back(Frame{d.actions, 0});
}

void SimNode::step_action() {
  Frame& f = stack_.back();
  if (f.next == f.actions.size()) {
    stack_.pop_back();
    publish_status();
    return;
  }
  const RoleAction a = f.actions[f.next++];
  switch (a.kind) {
    case RoleAction::Kind::kPersist: {
      if (w_.config().inject == Break::kOpenBeforePersist && a.persist.role == Role::kActive &&
          role_->role() == Role::kPromoting) {
        set_writes(true);
      }
      if (store_.fail_persists > 0) {
        --store_.fail_persists;
        w_.fault(Fault::kFailedPersist);
        w_.trace(name_ + " PersistFailed epoch=" + std::to_string(a.persist.epoch));
        persisted(false);
        break;
      }
      if (store_.next_persist_delay > Duration::zero()) {
        // NodeDriver persists synchronously: its io thread is blocked until the statement ends
        // (statement_timeout 5 s: slower than that, it fails and nothing was written).
        const auto delay = std::min<Duration>(store_.next_persist_delay, kStatementTimeout);
        const bool ok = store_.next_persist_delay < kStatementTimeout;
        store_.next_persist_delay = Duration::zero();
        w_.fault(Fault::kSlowPersist);
        blocked_ = true;
        persist_in_flight_ = a.persist;
        w_.trace(name_ + " PersistSlow epoch=" + std::to_string(a.persist.epoch) +
                 " role=" + std::string(to_string(a.persist.role)) + " for=" + ms_text(delay));
        const uint64_t inc = incarnation_;
        w_.after(delay, [this, inc, ok] { finish_slow_persist(inc, ok); });
        break;
      }
      write_store(a.persist);
      persisted(true);
      break;
    }
    case RoleAction::Kind::kOpenWrites:
      set_writes(true);
      break;
    case RoleAction::Kind::kCloseWrites:
      if (w_.config().inject != Break::kSkipCloseWrites) set_writes(false);
      break;
    case RoleAction::Kind::kRunPromoteHook:
    case RoleAction::Kind::kRunDemoteHook:
      break;  // the shared address: no effect on roles
    case RoleAction::Kind::kWatchDrain:
      drain_watch_since_ = w_.now();
      break;
    case RoleAction::Kind::kSendHandover:
      send_beat(0, Command::kHandover, a.epoch, a.position);
      break;
    case RoleAction::Kind::kSendSwitchoverRequest:
      ++w_.counters().switchover_requests;
      send_beat(0, Command::kSwitchoverRequest, 0, {});
      break;
    case RoleAction::Kind::kPauseReplication:
      paused_ = true;
      break;
    case RoleAction::Kind::kResumeReplication:
      paused_ = false;
      break;
    case RoleAction::Kind::kSendHeartbeatSoon:
      monitor_->send_soon();
      break;
    case RoleAction::Kind::kArbiterAcquire:
      arbiter_acquire(a);
      break;
  }
}

void SimNode::arbiter_acquire(const RoleAction& a) {
  if (!w_.config().arbiter) {
    w_.violation(name_ + ": the role machine asked for the arbiter's key without an arbiter");
    return;
  }
  std::optional<heartbeat::LeaderValue> replace;
  if (!a.replace_node.empty()) replace = heartbeat::LeaderValue{a.replace_node, a.replace_epoch};
  arbiter_in_flight_ = true;
  const Epoch epoch = a.epoch;
  const TimePoint sent = now();
  const uint64_t inc = incarnation_;
  w_.arbiter_call(id_, World::ArbiterOp::kAcquire, epoch, replace, a.force, lease_,
                  [this, epoch, sent, inc](ArbiterReply r) {
                    if (inc != incarnation_) return;
                    on_arbiter_answer(r, true, epoch, sent);
                  });
}

void SimNode::arbiter_tick() {
  if (!w_.config().arbiter) return;
  const Role r = role_->role();
  if (arbiter_held_ && (r == Role::kStandby || r == Role::kStandalone)) {
    w_.arbiter_call(id_, World::ArbiterOp::kRelease, *arbiter_held_, std::nullopt, false, lease_,
                    [](ArbiterReply) {});
    arbiter_held_.reset();
    lease_ = 0;
    return;
  }
  if (r != Role::kActive || role_->fenced() || arbiter_in_flight_) return;
  const auto t = now();
  if (arbiter_renew_at_ && t - *arbiter_renew_at_ < w_.config().interval) return;
  arbiter_renew_at_ = t;
  arbiter_in_flight_ = true;
  const Epoch epoch = role_->epoch();
  const uint64_t inc = incarnation_;
  w_.arbiter_call(id_, World::ArbiterOp::kRenew, epoch, std::nullopt, false, lease_,
                  [this, epoch, t, inc](ArbiterReply r) {
                    if (inc != incarnation_) return;
                    on_arbiter_answer(r, false, epoch, t);
                  });
}

void SimNode::on_arbiter_answer(const ArbiterReply& r, bool acquire, Epoch epoch,
                                TimePoint sent_at) {
  arbiter_in_flight_ = false;
  if (r.reached) lease_ = r.lease;
  if (r.holds) arbiter_held_ = epoch;
  heartbeat::ArbiterWord w;
  w.holds = r.holds;
  w.sent_at = sent_at;
  w.holder = r.holder;
  w.holder_epoch = r.holder_epoch;
  const auto t = now();
  if (acquire) {
    apply(role_->on_arbiter_acquired(w, r.reached ? "held" : "unreachable", t), "arbiter");
  } else {
    apply(role_->on_arbiter(w, t), "arbiter");
  }
}

void SimNode::write_store(const heartbeat::PersistedRole& p) {
  const Epoch before = store_.persisted.epoch;
  store_.persisted = p;
  store_.persisted.initialized = true;
  w_.check_epoch_persisted(id_, before, p.epoch);
}

void SimNode::finish_slow_persist(uint64_t incarnation, bool ok) {
  if (incarnation != incarnation_ || !persist_in_flight_) return;  // crashed meanwhile
  if (ok) write_store(*persist_in_flight_);
  persist_in_flight_.reset();
  blocked_ = false;
  persisted(ok);
  pump();
}

void SimNode::persisted(bool ok) {
  apply(role_->on_persisted(ok, ok ? "" : "canceling statement due to statement timeout", now()),
        "persist");
}

void SimNode::set_writes(bool writable) { store_.writes_open = writable; }

void SimNode::watch_drain() {
  if (!drain_watch_since_) return;
  if (role_->role() != Role::kDemoting) {
    drain_watch_since_.reset();
    return;
  }
  if (caught_up_at_ && *caught_up_at_ > *drain_watch_since_) {
    drain_watch_since_.reset();
    apply(role_->on_backlog_drained(acked_, now()), "drain");
  }
}

void SimNode::replication_step(int64_t acked, bool caught_up) {
  acked_ = Position{acked, 0};
  if (caught_up) caught_up_at_ = w_.now();
}

std::optional<Decision> SimNode::command(const std::string& cmd, bool force) {
  if (!running_) return std::nullopt;
  // A command queued behind a blocked driver runs later; then the caller gets nullopt.
  auto out = std::make_shared<std::optional<Decision>>();
  post([this, cmd, force, out] {
    const auto now = this->now();
    Decision d;
    if (cmd == "failover") {
      heartbeat::CommandContext ctx;
      ctx.force = force;
      ctx.definitions_match = true;
      d = role_->failover(ctx, monitor_->snapshot(), now);
    } else if (cmd == "switchover") {
      d = role_->switchover(monitor_->snapshot(), now);
    } else if (cmd == "standalone") {
      d = role_->standalone(now);
    } else if (cmd == "join") {
      d = role_->join(now);
    } else if (cmd == "maintenance on" || cmd == "maintenance off") {
      d = role_->set_maintenance(cmd == "maintenance on", now);
    } else {
      MPF_ASSERT(false, "unknown simulated command");
    }
    w_.trace(name_ + " Command " + cmd + (force ? " --force" : "") +
             (d.accepted ? " accepted: " : " refused: ") + d.message);
    if (cmd == "failover" && d.accepted && d.to) {
      ++(force ? w_.counters().forced_failovers : w_.counters().operator_failovers);
    }
    forced_command_ = force;
    apply(d, ("operator_" + cmd).c_str());
    forced_command_ = false;
    *out = d;
  });
  return *out;
}

// --- World ------------------------------------------------------------------------------------

World::World(uint64_t seed, SimConfig config)
    : seed_(seed),
      config_(config),
      rng_(seed),
      trace_all_(std::getenv("MPF_SIM_TRACE") != nullptr) {
  for (int i = 0; i < 2; ++i) {
    nodes_[i] = std::make_unique<SimNode>(*this, i);
    auto& s = nodes_[i]->store();
    if (!config_.brand_new) {
      s.persisted.initialized = true;
      s.persisted.role = i == 0 ? Role::kActive : Role::kStandby;
      s.persisted.epoch = 1;
      s.writes_open = i == 0;
    }
  }
  nodes_[0]->boot();
  at(now_ + config_.b_boot_delay, [this] {
    if (!nodes_[1]->running() && host_up_[1]) nodes_[1]->boot();
  });
  app_loop();
  replication_loop();
}

// The application and the replication model run for ever, at a fixed pace.
void World::app_loop() {
  after(kAppWriteInterval, [this] {
    app_write();
    app_loop();
  });
}

void World::replication_loop() {
  after(kReplicationStep, [this] {
    replicate();
    replication_loop();
  });
}

Duration World::uniform(Duration lo, Duration hi) {
  return lo + std::chrono::duration_cast<Duration>((hi - lo) * uniform());
}

void World::at(TimePoint when, std::function<void()> fn) {
  events_.push(Event{std::max(when, now_), next_seq_++, std::move(fn)});
}

void World::at_driver(TimePoint when, int node, std::function<void()> fn) {
  const uint64_t inc = nodes_[node]->incarnation();
  at(when, [this, node, inc, fn = std::move(fn)]() mutable {
    SimNode& n = *nodes_[node];
    if (!n.running() || n.incarnation() != inc) return;
    n.run_on_driver(std::move(fn));
  });
}

bool World::step() {
  if (events_.empty()) return false;
  Event e = std::move(const_cast<Event&>(events_.top()));
  events_.pop();
  counters_.simulated += e.at - now_;
  now_ = e.at;
  e.fn();
  check_now();
  return true;
}

void World::run_for(Duration d) {
  const TimePoint end = now_ + d;
  while (!events_.empty() && events_.top().at <= end) step();
  counters_.simulated += end - now_;
  now_ = end;
}

bool World::run_until(const std::function<bool()>& pred, Duration limit) {
  const TimePoint end = now_ + limit;
  if (pred()) return true;
  while (!events_.empty() && events_.top().at <= end) {
    step();
    if (pred()) return true;
  }
  counters_.simulated += end - now_;
  now_ = end;
  return pred();
}

int64_t World::wall_us(int n) const {
  return kWallBaseUs + std::chrono::duration_cast<std::chrono::microseconds>(
                           now_.time_since_epoch() + wall_offset_[n])
                           .count();
}

// --- the arbiter ------------------------------------------------------------------------------

void World::arbiter_expire() {
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second <= now_) {
      if (key_lease_ == it->first) {
        key_.reset();  // etcd deletes the keys attached to an expired lease
        key_lease_ = 0;
      }
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

// One request, atomically, at the arbiter's instant of arrival (linearizable). The lease TTL is
// the one NodeDriver requests (fence_timing().lease_ttl), counted on the arbiter's clock.
ArbiterReply World::arbiter_apply(int n, ArbiterOp op, Epoch epoch,
                                  const std::optional<heartbeat::LeaderValue>& replace, bool force,
                                  int64_t lease) {
  arbiter_expire();
  const auto ttl =
      heartbeat::fence_timing(config_.interval, config_.timeout, config_.missed_heartbeats, true)
          .lease_ttl;
  const heartbeat::LeaderValue mine{kNames[n], epoch};
  ArbiterReply r;
  r.reached = true;
  const bool alive = lease != 0 && leases_.count(lease) > 0;
  switch (op) {
    case ArbiterOp::kAcquire: {
      r.lease = alive ? lease : next_lease_++;
      leases_[r.lease] = now_ + ttl;  // keepalive or grant
      const bool cas = !key_ || force || *key_ == mine || (replace && *key_ == *replace) ||
                       config_.inject == Break::kArbiterNoCas;
      if (cas) {
        key_ = mine;
        key_lease_ = r.lease;
        r.holds = true;
      } else {
        r.holder = key_->node;
        r.holder_epoch = key_->epoch;
      }
      break;
    }
    case ArbiterOp::kRenew:
      if (alive) {
        leases_[lease] = now_ + ttl;
        r.lease = lease;
      }
      r.holds = alive && key_ && *key_ == mine && key_lease_ == lease;
      if (!r.holds && key_) {
        r.holder = key_->node;
        r.holder_epoch = key_->epoch;
      }
      break;
    case ArbiterOp::kRelease:
      if (key_ && *key_ == mine) {
        key_.reset();
        key_lease_ = 0;
      }
      leases_.erase(lease);
      break;
  }
  return r;
}

void World::arbiter_call(int n, ArbiterOp op, Epoch epoch,
                         std::optional<heartbeat::LeaderValue> replace, bool force, int64_t lease,
                         std::function<void(ArbiterReply)> done) {
  auto one_way = [this] {
    return config_.arbiter_delay + uniform(Duration::zero(), config_.arbiter_delay);
  };
  auto lost = [this, n] {
    if (!arbiter_ok_[n] || !host_up_[n]) return true;
    if (arbiter_loss_[n] > 0 && uniform() < arbiter_loss_[n]) {
      fault(Fault::kArbiterLoss);
      return true;
    }
    return false;
  };
  // EtcdArbiter gives up after heartbeat.timeout per request.
  const TimePoint give_up = now_ + config_.timeout;
  auto answered = std::make_shared<bool>(false);
  at_driver(give_up, n, [done, answered] {
    if (!*answered) {
      *answered = true;
      done(ArbiterReply{});
    }
  });
  if (lost()) return;
  after(one_way(),
        [this, n, op, epoch, replace, force, lease, done, answered, one_way, lost, give_up] {
          if (!host_up_[n]) return;
          ArbiterReply r = arbiter_apply(n, op, epoch, replace, force, lease);
          if (lost()) return;  // the answer lost: the request took effect all the same
          const TimePoint back = now_ + one_way();
          if (back >= give_up) return;
          at_driver(back, n, [done, answered, r] {
            if (*answered) return;
            *answered = true;
            done(r);
          });
        });
}

// --- the network ------------------------------------------------------------------------------

void World::send(int from, int to, std::string frame, uint64_t reply_to) {
  if (!host_up_[from]) return;
  ++counters_.frames;
  Link& l = links_[from][to];
  // ZMQ_IMMEDIATE: no connection to a daemon that is not running, the frame is not queued.
  if (!nodes_[to]->running() || !host_up_[to]) return;
  Wire w{from, to, std::move(frame), reply_to ? reply_to : nodes_[to]->incarnation(),
         nodes_[from]->incarnation()};
  if (l.drop > 0 && uniform() < l.drop) {
    fault(Fault::kDrop);
    return;
  }
  Duration delay = config_.base_delay + uniform(Duration::zero(), config_.jitter) + l.extra_delay;
  if (l.reorder > 0 && uniform() < l.reorder) {
    fault(Fault::kReorder);
    delay += uniform(1ms, 300ms);
  }
  if (l.duplicate > 0 && uniform() < l.duplicate) {
    fault(Fault::kDuplicate);
    deliver(w, delay + uniform(Duration::zero(), 50ms));
  }
  deliver(std::move(w), delay);
}

void World::deliver(Wire w, Duration delay) {
  after(delay, [this, w = std::move(w)] { arrive(w); });
}

void World::arrive(const Wire& w) {
  Link& l = links_[w.from][w.to];
  if (l.mode == CutMode::kDrop) return;
  if (l.mode == CutMode::kClog) {
    l.held.push_back([this, w] {
      fault(Fault::kClogDelivered);
      arrive(w);
    });
    return;
  }
  SimNode& n = *nodes_[w.to];
  if (!host_up_[w.to] || !n.running() || n.incarnation() != w.to_incarnation) return;
  n.on_frame(w.frame, w.from_incarnation);
}

void World::release(int from, int to) {
  Link& l = links_[from][to];
  auto held = std::move(l.held);
  l.held.clear();
  Duration d = config_.base_delay;
  for (auto& fn : held) {
    after(d, std::move(fn));
    d += 1us;  // in the order they were sent: TCP held them, TCP delivers them in order
  }
}

bool World::icmp_path(int from, int to) const {
  return host_up_[from] && host_up_[to] && links_[from][to].icmp && links_[to][from].icmp;
}

void World::ping_peer(int from, std::function<void(bool)> done) {
  const bool reply = icmp_path(from, 1 - from);
  const Duration d = reply ? 2 * config_.base_delay + uniform(Duration::zero(), config_.jitter)
                           : config_.ping_timeout;
  at_driver(now_ + d, from, [done = std::move(done), reply] { done(reply); });
}

void World::ping_witness(int from, std::function<void(bool)> done) {
  const bool reply = witness_ok_[from] && host_up_[from];
  const Duration d = reply ? 2 * config_.base_delay : config_.ping_timeout;
  at_driver(now_ + d, from, [done = std::move(done), reply] { done(reply); });
}

void World::cut(int from, int to, CutMode mode, bool icmp_too) {
  Link& l = links_[from][to];
  const bool was_clogged = l.mode == CutMode::kClog;
  l.mode = mode;
  if (icmp_too) l.icmp = false;
  if (was_clogged && mode != CutMode::kClog) {
    if (mode == CutMode::kDrop) {
      l.held.clear();
    } else {
      release(from, to);
    }
  }
  trace(std::string("Cut ") + kNames[from] + "->" + kNames[to] +
        (mode == CutMode::kClog ? " clog" : " drop") + (icmp_too ? " icmp" : " port-only"));
}

void World::heal(int from, int to) {
  Link& l = links_[from][to];
  const bool was_clogged = l.mode == CutMode::kClog;
  l.mode = CutMode::kOpen;
  l.icmp = true;
  if (was_clogged) release(from, to);
  trace(std::string("Heal ") + kNames[from] + "->" + kNames[to]);
}

void World::partition(CutMode mode, bool icmp_too) {
  cut(0, 1, mode, icmp_too);
  cut(1, 0, mode, icmp_too);
}

void World::heal_all() {
  for (int f = 0; f < 2; ++f) {
    Link& l = links_[f][1 - f];
    if (l.mode != CutMode::kOpen || !l.icmp) heal(f, 1 - f);
    l.drop = l.duplicate = l.reorder = 0;
    l.extra_delay = Duration::zero();
  }
  witness_ok_ = {true, true};
  arbiter_ok_ = {true, true};
  arbiter_loss_ = {0, 0};
}

void World::crash_daemon(int n) {
  if (!nodes_[n]->running()) return;
  nodes_[n]->crash();
}

void World::restart_daemon(int n) {
  if (nodes_[n]->running() || !host_up_[n]) return;
  nodes_[n]->boot();
}

void World::crash_host(int n) {
  crash_daemon(n);
  host_up_[n] = false;
  trace(std::string(kNames[n]) + " HostDown");
}

void World::boot_host(int n) {
  if (host_up_[n]) return;
  host_up_[n] = true;
  trace(std::string(kNames[n]) + " HostUp");
  restart_daemon(n);
}

void World::app_write() {
  for (auto& n : nodes_) {
    if (host_up_[&n - &nodes_[0]] && n->store().writes_open) ++n->store().committed;
  }
}

void World::replicate() {
  const bool port_ok = links_[0][1].mode == CutMode::kOpen && links_[1][0].mode == CutMode::kOpen;
  for (int s = 0; s < 2; ++s) {
    SimNode& src = *nodes_[s];
    SimNode& dst = *nodes_[1 - s];
    if (!src.running() || !dst.running() || !port_ok || !host_up_[0] || !host_up_[1]) continue;
    if (src.replication_paused() || dst.replication_paused()) continue;
    dst.store().applied = std::max(dst.store().applied, src.store().committed);
    src.replication_step(dst.store().applied, dst.store().applied >= src.store().committed);
  }
}

// --- invariants -------------------------------------------------------------------------------

void World::violation(const std::string& what) {
  // Once per kind of breakage: a state that stays broken is checked after every event.
  if (std::find(violation_kinds_.begin(), violation_kinds_.end(), what) != violation_kinds_.end()) {
    return;
  }
  violation_kinds_.push_back(what);
  const std::string line = "VIOLATION at " + time_text(now_) + ": " + what;
  trace(line);
  violations_.push_back(line);
}

void World::check_epoch_persisted(int n, Epoch before, Epoch after) {
  if (after < before) {
    violation(std::string(kNames[n]) + ": persisted epoch went down from " +
              std::to_string(before) + " to " + std::to_string(after));
  }
}

namespace {

// The epoch a node takes application writes in, if it does: an active daemon's, or, for a
// daemon that is starting or gone, the persisted active epoch its still-open login serves.
std::optional<Epoch> writable_epoch(const SimNode& n) {
  if (!n.store().writes_open) return std::nullopt;
  if (n.running() && n.role() != Role::kStarting) {
    if (n.role() == Role::kActive) return n.epoch();
    return std::nullopt;  // standalone by design; other roles: check_now's role/writes rule
  }
  if (n.store().persisted.initialized && n.store().persisted.role == Role::kActive) {
    return n.store().persisted.epoch;
  }
  return std::nullopt;
}

}  // namespace

void World::check_now() {
  if (violations_.size() > 20) return;  // enough to read
  const auto ea = writable_epoch(*nodes_[0]);
  const auto eb = writable_epoch(*nodes_[1]);
  if (ea && eb && *ea == *eb) {
    if (nodes_[0]->store().last_promotion_blind || nodes_[1]->store().last_promotion_blind) {
      // A node that never heard its peer (a brand-new pair cut from the start, or `failover` on
      // a node that never saw the other) cannot know the epoch the peer took: the tie is broken
      // by name once they talk. Counted, not a violation; liveness still checks the heal.
      if (!blind_tie_) {
        blind_tie_ = true;
        ++counters_.blind_same_epoch;
        trace("SameEpochFromBlindPromotion epoch=" + std::to_string(*ea));
      }
    } else {
      violation("two nodes take writes as active in the same epoch " + std::to_string(*ea) + "; " +
                describe());
    }
  } else {
    blind_tie_ = false;
  }
  check_writers();
  for (auto& np : nodes_) {
    const SimNode& n = *np;
    if (!n.running()) continue;
    if (n.role() == Role::kPromoting && n.promoting_from_standby() && n.store().writes_open) {
      violation(n.name() + ": writes open while promoting (the new epoch is not persisted yet)");
    }
    if (!n.quiescent() || n.role() == Role::kStarting || n.role() == Role::kPromoting) continue;
    const bool should = n.role_machine()->writable();
    if (should != n.store().writes_open) {
      violation(n.name() + ": writes " + (n.store().writes_open ? "open" : "closed") + " while " +
                std::string(to_string(n.role())));
    }
  }
}

// Issue #18: "at no instant are writes open on two nodes". With the arbiter, a violation for
// any two running daemons (standalone by design aside). With the ICMP witness, two writers are
// what a cut between the nodes gives when both still reach the witness (counted); the
// guarantee checked is that an isolated active (cut from its peer and from the witness) has
// closed its writes before the standby opened its own.
void World::check_writers() {
  auto isolated = [&](int i) {
    const int j = 1 - i;
    const bool peer_cut = !host_up_[j] || (links_[i][j].mode != CutMode::kOpen &&
                                           links_[j][i].mode != CutMode::kOpen);
    return host_up_[i] && peer_cut && (!witness_ok_[i] || !config_.witness);
  };
  for (int i = 0; i < 2; ++i) {
    const bool open = host_up_[i] && nodes_[i]->store().writes_open;
    if (open && !writes_opened_at_[i]) writes_opened_at_[i] = now_;
    if (!open) writes_opened_at_[i].reset();
    if (isolated(i) && !isolated_since_[i]) isolated_since_[i] = now_;
    if (!isolated(i)) isolated_since_[i].reset();
  }
  auto writer = [&](int i) {
    const SimNode& n = *nodes_[i];
    return writes_opened_at_[i] && n.running() && n.role() != Role::kStandalone;
  };
  auto down_writer = [&](int i) { return writes_opened_at_[i] && !nodes_[i]->running(); };
  const bool both = writer(0) && writer(1);
  if (both && !two_writers_) {
    ++counters_.two_writer_episodes;
    trace("TwoWriters " + describe());
    // Maintenance mode pauses self-fencing on purpose (planned work, the operator's call).
    auto maintenance = [&](int i) {
      return nodes_[i]->running() && nodes_[i]->role_machine()->maintenance();
    };
    if (config_.arbiter && !maintenance(0) && !maintenance(1)) {
      violation("writes open on two nodes at once with the arbiter; " + describe());
    }
  }
  two_writers_ = both;
  const bool down = (down_writer(0) && writer(1)) || (down_writer(1) && writer(0));
  if (down && !down_overlap_) {
    ++counters_.down_daemon_overlaps;
    trace("WritesOpenOnDownDaemon " + describe());
  }
  down_overlap_ = down;
  if (!both || config_.arbiter || !config_.automatic_failover) return;
  const auto fence_after =
      heartbeat::fence_timing(config_.interval, config_.timeout, config_.missed_heartbeats, false)
          .fence_after;
  for (int i = 0; i < 2; ++i) {
    const int j = 1 - i;
    // i was isolated before j opened, long enough to have fenced, and its driver was free to.
    if (isolated_since_[i] && *writes_opened_at_[j] > *isolated_since_[i] &&
        *writes_opened_at_[i] < *isolated_since_[i] && nodes_[i]->quiescent() &&
        now_ - *isolated_since_[i] > fence_after + 100ms && config_.inject != Break::kNoSelfFence) {
      violation(nodes_[i]->name() + ": isolated (cut from its peer and the witness) since " +
                time_text(*isolated_since_[i]) + ", still takes writes after " + nodes_[j]->name() +
                " opened its own at " + time_text(*writes_opened_at_[j]) + "; " + describe());
    }
  }
}

void World::check_promotion(int n, const Decision& d, bool forced) {
  SimNode& node = *nodes_[n];
  const auto& snap = node.monitor()->snapshot();
  const auto& peer = node.role_machine()->last_peer();
  const bool heard_active =
      node.heard_active_at_ && now_ - *node.heard_active_at_ < config_.interval + config_.timeout;
  if (d.reason == "automatic_failover") {
    ++counters_.automatic_failovers;
    // Ground truth, not the monitor's word: in this silence (since the last fresh answer) the
    // peer's ping went unanswered and the witness's was answered.
    auto in_silence = [&](const std::optional<SimNode::PingRecord>& p) {
      return p && (!node.last_answer_at_ || p->issued >= *node.last_answer_at_);
    };
    if (!in_silence(node.last_peer_ping_) || node.last_peer_ping_->replied) {
      violation(node.name() +
                ": automatic failover without a failed ping of the peer in this silence "
                "(last fresh answer at " +
                (node.last_answer_at_ ? time_text(*node.last_answer_at_) : "never") +
                ", last peer ping issued at " +
                (node.last_peer_ping_ ? time_text(node.last_peer_ping_->issued) +
                                            (node.last_peer_ping_->replied ? " replied" : " failed")
                                      : "never") +
                ", missed " + std::to_string(snap.missed) + ")");
    }
    // With the arbiter and no witness, the arbiter's compare-and-swap stands in for it.
    if (config_.witness &&
        (!in_silence(node.last_witness_ping_) || !node.last_witness_ping_->replied)) {
      violation(node.name() + ": automatic failover without a witness reply in this silence");
    }
  }
  if (d.reason == "automatic_failover" || (d.reason == "operator_failover" && !forced)) {
    if (snap.peer_state == PeerState::kUp && peer && peer->role == Role::kActive) {
      violation(node.name() + ": promoted (" + d.reason + ") while the peer is up and active");
    }
    if (heard_active) {
      ++counters_.promoted_while_hearing_active;
      trace(node.name() + " PromotedWhileHearingActive reason=" + d.reason);
      // Only automatic failover must not promote over a heard active peer; an operator's
      // `failover` is the operator's judgement (status shows the peer's state).
      if (config_.strict_hearing && d.reason == "automatic_failover") {
        violation(node.name() + ": promoted (" + d.reason +
                  ") while it still hears the active peer's frames (last at " +
                  time_text(*node.heard_active_at_) + ")");
      }
    }
  }
  if (d.reason == "handover") ++counters_.handovers;
}

void World::stop_faults() {
  heal_all();
  for (int i = 0; i < 2; ++i) {
    auto& s = nodes_[i]->store();
    s.fail_persists = 0;
    s.next_persist_delay = Duration::zero();
    boot_host(i);
    restart_daemon(i);
  }
  trace("FaultsStopped");
}

bool World::settle_and_check_liveness() {
  stop_faults();
  // Daemons settle their start, then an operator brings standalone nodes back.
  run_for(config_.timeout + config_.ping_timeout + 1s + 5s);
  for (int i = 0; i < 2; ++i) {
    if (nodes_[i]->running() && nodes_[i]->role() == Role::kStandalone) nodes_[i]->command("join");
  }
  auto converged = [&] {
    const SimNode& a = *nodes_[0];
    const SimNode& b = *nodes_[1];
    if (!a.quiescent() || !b.quiescent()) return false;
    const bool a_active = a.role() == Role::kActive && b.role() == Role::kStandby;
    const bool b_active = b.role() == Role::kActive && a.role() == Role::kStandby;
    // The standby adopts the active's epoch; it may hold a higher one it was handed but whose
    // promotion never became durable (the old active persists the handed epoch before the
    // handover; a failed persist on the other side leaves it there). Fencing only ranks actives,
    // so that is safe; a standby below the active's epoch is not (its next failover could reuse
    // an epoch).
    const bool epochs_ok =
        (a_active && b.epoch() >= a.epoch()) || (b_active && a.epoch() >= b.epoch());
    return epochs_ok && a.monitor()->snapshot().peer_state == PeerState::kUp &&
           b.monitor()->snapshot().peer_state == PeerState::kUp &&
           a.store().writes_open == (a.role() == Role::kActive) &&
           b.store().writes_open == (b.role() == Role::kActive);
  };
  const Duration bound = config_.timeout + config_.ping_timeout + 500ms +
                         2 * std::max<Duration>(5s, 3 * config_.timeout) +
                         config_.switchover_timeout + 12 * config_.interval;
  if (!run_until(converged, bound)) {
    const SimNode& a = *nodes_[0];
    const SimNode& b = *nodes_[1];
    if (a.quiescent() && b.quiescent() && a.role() == Role::kStandby &&
        b.role() == Role::kStandby) {
      // No active node: a handover that never landed (or both restarted as standby). The
      // product says "run `mpfailover failover` on the node that should be"; the operator does.
      ++counters_.end_operator_failovers;
      nodes_[uniform() < 0.5 ? 0 : 1]->command("failover");
      run_until(converged, 10 * config_.interval + 5s);
    }
  }
  if (!converged()) {
    violation(
        "liveness: after the faults stopped, no single active and standby (standby at the active's "
        "epoch or above) "
        "within the bound; " +
        describe());
    return false;
  }
  run_for(3 * config_.interval);
  if (!converged()) {
    violation("liveness: the settled pair did not stay settled; " + describe());
    return false;
  }
  return true;
}

// --- trace ------------------------------------------------------------------------------------

void World::trace(const std::string& line) {
  std::string l = time_text(now_) + " " + line;
  if (trace_all_)
    std::fprintf(stderr, "[seed %llu] %s\n", static_cast<unsigned long long>(seed_), l.c_str());
  trace_.push_back(std::move(l));
  if (trace_.size() > 400) trace_.pop_front();
}

std::string World::trace_tail(size_t lines) const {
  std::string out;
  const size_t from = trace_.size() > lines ? trace_.size() - lines : 0;
  for (size_t i = from; i < trace_.size(); ++i) out += trace_[i] + "\n";
  return out;
}

std::string World::describe() const {
  std::ostringstream o;
  for (int i = 0; i < 2; ++i) {
    const SimNode& n = *nodes_[i];
    o << n.name() << ": " << (host_up_[i] ? "" : "host down, ")
      << (n.running() ? std::string(to_string(n.role())) : std::string("daemon down")) << " epoch "
      << n.epoch() << ", writes " << (n.store().writes_open ? "open" : "closed") << ", persisted "
      << to_string(n.store().persisted.role) << "/" << n.store().persisted.epoch;
    if (n.running() && n.role_machine()->fenced())
      o << ", fenced " << n.role_machine()->fenced_reason();
    if (n.running()) {
      o << ", peer " << to_string(n.monitor()->snapshot().peer_state);
      if (n.blocked()) o << ", blocked in a persist";
    }
    o << (i == 0 ? "; " : "");
  }
  return o.str();
}

}  // namespace mpf::sim
