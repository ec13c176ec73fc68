// NOTES: the node driver.
//
// Heartbeats ride on port 2008 beside replication: a DEALER socket of their own (so a large batch
// in flight never delays one) to the peer's ROUTER, whose port thread answers at once
// (Receiver's side channel). ZMQ_IMMEDIATE keeps heartbeats from queueing for a peer that is not
// connected: a heartbeat that cannot go out now is simply missed, as it should be.
//
// Commands between the nodes (a switchover request, a handover) are Beats with seq 0: the monitor
// ignores answers to seq 0, but their status still updates what this node knows of the peer.
//
// The tick runs every 10 ms: it polls the heartbeat socket, lets the monitor and the role
// machine see the time, and watches a switchover's drain. Database work (persisting a role,
// opening or closing writes) is synchronous on this thread; it is rare and has a 5 s statement
// timeout. Hooks run on the HookRunner's thread and report back through the io_context.
#include <arpa/inet.h>
#include <boost/asio/post.hpp>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/heartbeat/arbiter_value.hpp>
#include <mpf/heartbeat/fence_timing.hpp>
#include <mpf/heartbeat/icmp_pinger.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/shipper.hpp>
#include <mpf/replicator/versions.hpp>
#include <mpf/replicator/wire.hpp>
#include <mpf/server/metrics_sampler.hpp>
#include <mpf/server/node_driver.hpp>

namespace mpf::server {

using heartbeat::Command;
using heartbeat::Decision;
using heartbeat::HeartbeatMessage;
using heartbeat::MonitorAction;
using heartbeat::PeerState;
using heartbeat::Role;
using heartbeat::RoleAction;
using json = nlohmann::json;

namespace {

using namespace std::chrono_literals;

constexpr auto kTickInterval = std::chrono::milliseconds(10);

int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json position_json(const Position& p) { return p.to_string(); }

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

NodeDriver::NodeDriver(boost::asio::io_context& io, zmq::context_t& zmq, const Config& config,
                       const replicator::Security& security, replicator::Shipper& shipper,
                       replicator::Receiver& receiver)
    : io_(io),
      zmq_(zmq),
      config_(config),
      security_(security),
      shipper_(shipper),
      receiver_(receiver),
      db_(config.node.database),
      hooks_(config.hooks.timeout),
      timer_(io) {}

NodeDriver::~NodeDriver() {
  if (beat_wakeup_) beat_wakeup_->release();  // the descriptor belongs to ZeroMQ
}

Status NodeDriver::start() {
  auto persisted = db_.load_role();
  if (!persisted) return persisted.status();
  auto catalog = db_.catalog_version();
  if (catalog) catalog_version_ = *catalog;
  auto defs = db_.definitions_text();
  if (defs) definitions_digest_ = heartbeat::definitions_digest(*defs);

  heartbeat::MonitorOptions mo;
  mo.interval = config_.heartbeat.interval;
  mo.timeout = config_.heartbeat.timeout;
  mo.max_skew = std::chrono::duration_cast<std::chrono::milliseconds>(config_.heartbeat.max_skew);
  mo.has_witness = !config_.heartbeat.witness.empty();
  monitor_ = std::make_unique<heartbeat::PeerMonitor>(mo);

  heartbeat::RoleOptions ro;
  ro.node = config_.node.name;
  ro.peer = config_.peer.name;
  ro.initial_role = config_.node.initial_role == "active" ? Role::kActive : Role::kStandby;
  ro.automatic_failover = config_.failover.automatic;
  ro.missed_heartbeats = config_.failover.missed_heartbeats;
  ro.switchover_timeout = config_.failover.switchover_timeout;
  // The standby's silence before automatic failover: interval x missed + timeout; self-fencing
  // is ordered before it (heartbeat/include/mpf/heartbeat/fence_timing.hpp).
  ro.peer_heard_window =
      config_.heartbeat.interval * config_.failover.missed_heartbeats + config_.heartbeat.timeout;
  // A node that was active waits for one heartbeat round and a ping before settling (fenced
  // unless the peer answered).
  ro.start_grace =
      config_.heartbeat.timeout + config_.heartbeat.ping_timeout + std::chrono::milliseconds(500);
  ro.handover_timeout = std::max<Duration>(std::chrono::seconds(5), 3 * config_.heartbeat.timeout);
  ro.arbiter = config_.heartbeat.arbiter == "etcd";
  // load_config derived or checked failover.fence_after; zero when nothing fences.
  ro.fence_after =
      (config_.failover.automatic || ro.arbiter) ? config_.failover.fence_after : Duration::zero();
  ro.settle_no_active = ro.handover_timeout + 2 * config_.heartbeat.interval;
  role_ = std::make_unique<heartbeat::RoleMachine>(ro, *persisted, clock_.now());
  if (ro.arbiter) {
    EtcdOptions eo;
    eo.endpoints = config_.arbiter.endpoints;
    eo.key = heartbeat::leader_key(config_.arbiter.prefix, config_.node.name, config_.peer.name);
    eo.node = config_.node.name;
    eo.ca_file = config_.arbiter.ca_file;
    eo.cert_file = config_.arbiter.cert_file;
    eo.key_file = config_.arbiter.key_file;
    eo.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(
        heartbeat::fence_timing(config_.heartbeat.interval, config_.heartbeat.timeout,
                                config_.failover.missed_heartbeats, true)
            .lease_ttl);
    eo.request_timeout = config_.heartbeat.timeout;
    std::string endpoints;
    for (const auto& e : eo.endpoints) endpoints += (endpoints.empty() ? "" : ",") + e;
    spdlog::info("ArbiterConfigured kind=etcd endpoints=\"{}\" key={} lease_ttl_s={}", endpoints,
                 eo.key, eo.lease_ttl.count());
    arbiter_ = std::make_unique<EtcdArbiter>(std::move(eo));
  }

  try {
    beat_socket_ = std::make_unique<zmq::socket_t>(zmq_, zmq::socket_type::dealer);
    beat_socket_->set(zmq::sockopt::linger, 0);
    beat_socket_->set(zmq::sockopt::immediate, 1);
    beat_socket_->set(zmq::sockopt::sndhwm, 16);
    beat_socket_->set(zmq::sockopt::reconnect_ivl, 250);
    beat_socket_->set(zmq::sockopt::reconnect_ivl_max, 1000);
    replicator::configure_client(*beat_socket_, security_);
    beat_socket_->connect(config_.peer_endpoint());
    beat_wakeup_ = std::make_unique<boost::asio::posix::stream_descriptor>(
        io_, beat_socket_->get(zmq::sockopt::fd));
  } catch (const zmq::error_t& e) {
    return unavailable("could not open the heartbeat socket to \"" + config_.peer_endpoint() +
                       "\": " + e.what());
  }

  auto pinger = heartbeat::IcmpPinger::open(io_, config_.peer.address);
  if (!pinger) {
    // Heartbeats still work; only the service-down/unreachable distinction is lost.
    last_error_ = "no ICMP ping of the peer: " + pinger.status().message();
    spdlog::error("PingUnavailable peer={} address={} reason=\"{}\"", config_.peer.name,
                  config_.peer.address, one_line(pinger.status().message()));
  } else {
    peer_pinger_ = std::move(pinger.value());
  }
  for (const auto& w : config_.heartbeat.witness) {
    auto p = heartbeat::IcmpPinger::open(io_, w);
    if (!p) return p.status().with_context("heartbeat.witness \"" + w + "\"");
    witness_pingers_.push_back(std::move(p.value()));
  }
  if (config_.node.app_role.empty()) {
    writes_ = "unfenced";
    spdlog::warn(
        "WritesNotFenced reason=\"node.app_role is not set: the application can write on the "
        "standby too\"");
  }

  spdlog::info("RoleStarting role={} epoch={} initialized={} initial_role={}",
               heartbeat::to_string(persisted->role), persisted->epoch, persisted->initialized,
               config_.node.initial_role);
  publish_status();
  apply(role_->start(clock_.now()), "start");
  arm_heartbeat_wakeup();
  schedule_tick();
  return Status::ok();
}

void NodeDriver::config_reloaded() {
  hooks_.set_timeout(config_.hooks.timeout);
  if (role_) role_->set_automatic_failover(config_.failover.automatic);
}

Status NodeDriver::set_witnesses(const std::vector<std::string>& addresses) {
  std::vector<std::unique_ptr<heartbeat::IcmpPinger>> pingers;
  for (const auto& w : addresses) {
    auto p = heartbeat::IcmpPinger::open(io_, w);
    if (!p) return p.status().with_context("heartbeat.witness \"" + w + "\"");
    pingers.push_back(std::move(p.value()));
  }
  staged_witness_pingers_ = std::move(pingers);
  if (witness_replies_pending_ == 0) swap_staged_witnesses();
  return Status::ok();
}

void NodeDriver::swap_staged_witnesses() {
  if (!staged_witness_pingers_) return;
  witness_pingers_ = std::move(*staged_witness_pingers_);
  staged_witness_pingers_.reset();
  if (monitor_) monitor_->set_has_witness(!witness_pingers_.empty());
}

void NodeDriver::schedule_tick() {
  timer_.expires_after(kTickInterval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    tick();
    schedule_tick();
  });
}

void NodeDriver::tick() {
  try {
    poll_heartbeat_socket();
    const auto now = clock_.now();
    apply_monitor(monitor_->tick(now));
    apply(role_->tick(monitor_->snapshot(), now), "tick");
    arbiter_tick();
    watch_drain();
    publish_status();
  } catch (const std::exception& e) {
    spdlog::error("DriverError reason=\"{}\"", one_line(e.what()));
  }
}

heartbeat::NodeStatus NodeDriver::my_status() {
  heartbeat::NodeStatus s;
  s.node = config_.node.name;
  s.target = config_.peer.name;
  s.role = role_ ? role_->role() : Role::kStarting;
  s.epoch = role_ ? role_->epoch() : 0;
  s.wall_us = wall_us();
  s.applied_from_peer = receiver_.stats().applied;
  s.acked_by_peer = shipper_.stats().acked;
  s.catalog_version = catalog_version_;
  s.definitions_digest = definitions_digest_;
  return s;
}

void NodeDriver::publish_status() {
  auto s = my_status();
  std::lock_guard lock(mu_);
  published_ = std::move(s);
}

std::optional<std::string> NodeDriver::on_port_frame(std::string_view frame) {
  if (!heartbeat::is_heartbeat_frame(frame)) return std::nullopt;
  const int64_t received = wall_us();
  auto m = heartbeat::decode_heartbeat(frame);
  if (!m && m.status().code() == Code::kFailedPrecondition) return answer_foreign_heartbeat(frame);
  if (!m) {
    spdlog::warn("HeartbeatDropped reason=\"{}\"", one_line(m.status().message()));
    return std::string();
  }
  if (m->kind != HeartbeatMessage::Kind::kBeat || m->status.node != config_.peer.name ||
      m->status.target != config_.node.name) {
    spdlog::warn("HeartbeatDropped from={} to={} reason=\"not a beat from the peer to this node\"",
                 m->status.node, m->status.target);
    return std::string();
  }
  HeartbeatMessage answer;
  answer.kind = HeartbeatMessage::Kind::kAnswer;
  answer.seq = m->seq;
  answer.echo_wall_us = m->status.wall_us;
  {
    std::lock_guard lock(mu_);
    answer.status = published_;
    answer.note = command_note_;
  }
  answer.status.wall_us = wall_us();
  boost::asio::post(
      io_, [this, msg = std::move(m.value()), received] { on_peer_message(msg, received); });
  return heartbeat::encode(answer);
}

// A well-formed heartbeat of a protocol this node does not speak: the peer runs another
// release. It is answered with an Answer in this node's protocol, seq 0 (no monitor counts it),
// whose note says which protocol this node speaks, so a newer peer can fall back to it
// (docs/protocol.md, heartbeat frames); the error is logged (at most every 10 s) and shown in
// status.
std::string NodeDriver::answer_foreign_heartbeat(std::string_view frame) {
  const unsigned protocol = heartbeat::heartbeat_protocol_of(frame);
  const unsigned mine = heartbeat::kHeartbeatProtocol;
  const std::string error =
      "peer \"" + config_.peer.name + "\" sent heartbeat protocol " + std::to_string(protocol) +
      ", node \"" + config_.node.name + "\" speaks heartbeat protocol " + std::to_string(mine) +
      "\nhint: upgrade node \"" + (protocol > mine ? config_.node.name : config_.peer.name) +
      "\"; until then the newer node must send heartbeat protocol " +
      std::to_string(std::min(protocol, mine));
  HeartbeatMessage answer;
  answer.kind = HeartbeatMessage::Kind::kAnswer;
  answer.seq = 0;
  answer.note = "heartbeat protocol " + std::to_string(protocol) + " is not supported: node \"" +
                config_.node.name + "\" speaks heartbeat protocol " + std::to_string(mine);
  const auto now = clock_.now();
  bool log = false;
  {
    std::lock_guard lock(mu_);
    answer.status = published_;
    foreign_heartbeat_protocol_ = static_cast<uint8_t>(protocol);
    foreign_heartbeat_at_ = now;
    foreign_heartbeat_error_ = error;
    if (!foreign_heartbeat_logged_at_ || now - *foreign_heartbeat_logged_at_ > 10s) {
      foreign_heartbeat_logged_at_ = now;
      log = true;
    }
  }
  if (log) {
    spdlog::error("HeartbeatProtocolUnsupported peer={} protocol={} supported={} reason=\"{}\"",
                  config_.peer.name, protocol, mine, one_line(error));
  }
  answer.status.wall_us = wall_us();
  return heartbeat::encode(answer);
}

void NodeDriver::check_peer_catalog(int32_t peer_catalog_version) {
  if (peer_catalog_version == catalog_checked_) return;
  catalog_checked_ = peer_catalog_version;
  auto s = replicator::check_catalog_versions(config_.node.name, catalog_version_,
                                              config_.peer.name, peer_catalog_version);
  catalog_error_ = s ? "" : s.message();
  if (!s) {
    spdlog::error(
        "CatalogVersionIncompatible peer={} peer_catalog_version={} catalog_version={} "
        "reason=\"{}\"",
        config_.peer.name, peer_catalog_version, catalog_version_, one_line(s.message()));
  } else if (peer_catalog_version != catalog_version_) {
    spdlog::warn(
        "CatalogVersionDiffers peer={} peer_catalog_version={} catalog_version={} "
        "note=\"compatible during a rolling upgrade; upgrade the older node\"",
        config_.peer.name, peer_catalog_version, catalog_version_);
  }
}

void NodeDriver::recheck_catalog() {
  auto now = db_.catalog_version();
  if (!now) return;  // a read failure shows elsewhere
  if (*now == catalog_version_) {
    catalog_moved_error_.clear();
    return;
  }
  const std::string error =
      "database catalog is at version " + std::to_string(*now) + ", but mpfailoverd started at " +
      std::to_string(catalog_version_) +
      ": mpfailover init-db ran while this daemon was running\nhint: restart mpfailoverd "
      "(systemctl restart mpfailoverd) so the daemon of the release that migrated the catalog "
      "runs; stop the daemon before init-db during an upgrade";
  if (error != catalog_moved_error_) {
    spdlog::error("CatalogMigratedUnderDaemon catalog_version={} started_at={} reason=\"{}\"", *now,
                  catalog_version_, one_line(error));
  }
  catalog_moved_error_ = error;
}

void NodeDriver::arm_heartbeat_wakeup() {
  // ZMQ_FD signals edges, not levels: read until empty on every wake-up (and the 10 ms tick
  // polls too, in case an edge was consumed by a send).
  beat_wakeup_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (ec) return;
                             try {
                               poll_heartbeat_socket();
                             } catch (const std::exception& e) {
                               spdlog::error("DriverError reason=\"{}\"", one_line(e.what()));
                             }
                             arm_heartbeat_wakeup();
                           });
}

void NodeDriver::poll_heartbeat_socket() {
  for (int i = 0; i < 64; ++i) {
    zmq::message_t msg;
    if (!beat_socket_->recv(msg, zmq::recv_flags::dontwait)) return;
    const int64_t received = wall_us();
    auto m = heartbeat::decode_heartbeat(
        std::string_view(static_cast<const char*>(msg.data()), msg.size()));
    if (!m || m->kind != HeartbeatMessage::Kind::kAnswer || m->status.node != config_.peer.name) {
      spdlog::warn("HeartbeatAnswerDropped reason=\"{}\"",
                   m ? "not an answer from the peer" : one_line(m.status().message()));
      continue;
    }
    if (m->seq != 0) {
      heartbeat::HeartbeatAnswer a{m->seq, m->status.wall_us, m->echo_wall_us, received};
      apply_monitor(monitor_->on_answer(a, clock_.now()));
    }
    if (!m->note.empty()) spdlog::info("PeerNote peer={} note=\"{}\"", m->status.node, m->note);
    on_peer_message(*m, received);
  }
}

void NodeDriver::send_beat(uint64_t seq, Command command, Epoch epoch, Position position) {
  HeartbeatMessage m;
  m.kind = HeartbeatMessage::Kind::kBeat;
  m.seq = seq;
  m.status = my_status();
  m.command = command;
  m.command_epoch = epoch;
  m.command_position = position;
  // The note of a Beat carries this node's facts for the peer's `list` (node_facts.hpp).
  m.note = heartbeat::encode_facts(my_facts());
  const auto frame = heartbeat::encode(m);
  try {
    // Not connected (ZMQ_IMMEDIATE) or the queue is full: this heartbeat is missed.
    (void)beat_socket_->send(zmq::buffer(frame), zmq::send_flags::dontwait);
    poll_heartbeat_socket();
  } catch (const zmq::error_t& e) {
    spdlog::warn("HeartbeatSendFailed reason=\"{}\"", e.what());
  }
}

void NodeDriver::on_peer_message(const HeartbeatMessage& m, int64_t received_wall_us) {
  (void)received_wall_us;
  if (!role_) return;
  const auto now = clock_.now();
  peer_status_ = m.status;
  peer_status_at_ = now;
  if (m.kind == HeartbeatMessage::Kind::kBeat) {
    if (auto f = heartbeat::decode_facts(m.note)) {
      peer_facts_ = std::move(*f);
      peer_facts_at_ = now;
    }
  }
  check_peer_catalog(m.status.catalog_version);
  heartbeat::PeerView view{m.status.node, m.status.role, m.status.epoch};
  if (m.kind == HeartbeatMessage::Kind::kBeat && m.command == Command::kHandover) {
    Position applied = receiver_.stats().applied;
    if (auto a = db_.applied_from(config_.peer.name)) applied = a->position;
    auto d = role_->on_handover(view, m.command_epoch, m.command_position, applied, now);
    {
      std::lock_guard lock(mu_);
      command_note_ = d.accepted ? "" : d.message;
    }
    apply(d, "handover");
    return;
  }
  if (m.kind == HeartbeatMessage::Kind::kBeat && m.command == Command::kSwitchoverRequest) {
    auto d = role_->on_switchover_request(view, monitor_->snapshot(), now);
    {
      std::lock_guard lock(mu_);
      command_note_ = d.accepted ? "" : d.message;
    }
    if (!d.accepted) spdlog::warn("SwitchoverRequestRefused reason=\"{}\"", one_line(d.message));
    apply(d, "switchover_request");
    return;
  }
  apply(role_->on_peer(view, monitor_->snapshot(), now), "peer");
}

void NodeDriver::apply_monitor(const std::vector<MonitorAction>& actions) {
  bool verdict_changed = false;
  for (const auto& a : actions) {
    switch (a.kind) {
      case MonitorAction::Kind::kSendHeartbeat:
        send_beat(a.seq, Command::kNone, 0, {});
        break;
      case MonitorAction::Kind::kPingPeer:
        if (!peer_pinger_) {
          // No way to ping: say nothing about the host, only that the service does not answer.
          boost::asio::post(
              io_, [this] { apply_monitor(monitor_->on_ping_result(true, clock_.now())); });
          break;
        }
        peer_pinger_->ping(
            std::chrono::duration_cast<std::chrono::milliseconds>(config_.heartbeat.ping_timeout),
            [this](heartbeat::PingResult r) {
              spdlog::info("PeerPinged peer={} address={} outcome={} detail=\"{}\"",
                           config_.peer.name, config_.peer.address, heartbeat::to_string(r.outcome),
                           one_line(r.detail));
              apply_monitor(monitor_->on_ping_result(r.outcome == heartbeat::PingOutcome::kReply,
                                                     clock_.now()));
            },
            3);
        break;
      case MonitorAction::Kind::kPingWitness:
        witness_replies_pending_ = static_cast<int>(witness_pingers_.size());
        witness_any_reply_ = false;
        for (auto& p : witness_pingers_) {
          p->ping(
              std::chrono::duration_cast<std::chrono::milliseconds>(config_.heartbeat.ping_timeout),
              [this](heartbeat::PingResult r) {
                witness_any_reply_ |= r.outcome == heartbeat::PingOutcome::kReply;
                if (--witness_replies_pending_ == 0) {
                  apply_monitor(monitor_->on_witness_result(witness_any_reply_, clock_.now()));
                  swap_staged_witnesses();
                }
              },
              3);
        }
        break;
      case MonitorAction::Kind::kHeartbeatMissed:
        spdlog::warn("PeerHeartbeatMissed peer={} endpoint={} missed={} seq={}", config_.peer.name,
                     config_.peer_endpoint(), a.missed, a.seq);
        verdict_changed = true;
        break;
      case MonitorAction::Kind::kPeerStateChanged:
        spdlog::info("PeerStateChanged peer={} from={} to={}", config_.peer.name,
                     heartbeat::to_string(a.from), heartbeat::to_string(a.to));
        verdict_changed = true;
        break;
      case MonitorAction::Kind::kWitnessChanged:
        spdlog::info("WitnessChanged from={} to={}", heartbeat::to_string(a.witness_from),
                     heartbeat::to_string(a.witness_to));
        verdict_changed = true;
        break;
      case MonitorAction::Kind::kSkewHigh:
        spdlog::warn(
            "ClockSkewHigh peer={} skew_ms={} max_skew_ms={}", config_.peer.name, a.skew_ms,
            std::chrono::duration_cast<std::chrono::milliseconds>(config_.heartbeat.max_skew)
                .count());
        break;
      case MonitorAction::Kind::kSkewNormal:
        spdlog::info("ClockSkewNormal peer={} skew_ms={}", config_.peer.name, a.skew_ms);
        break;
    }
  }
  if (verdict_changed) apply(role_->on_monitor(monitor_->snapshot(), clock_.now()), "monitor");
}

void NodeDriver::apply(const Decision& d, const char* trigger) {
  if (!d.accepted && d.reason == "transition_refused") {
    spdlog::error("TransitionRefused trigger={} reason=\"{}\"", trigger, one_line(d.message));
  }
  if (d.to) {
    spdlog::info("RoleChanged from={} to={} epoch={} reason={}", heartbeat::to_string(*d.from),
                 heartbeat::to_string(*d.to), role_->epoch(), d.reason);
    ++role_changes_;
    HistoryEvent e;
    e.event = history_event_for_reason(d.reason);
    e.role_from = heartbeat::to_string(*d.from);
    e.role_to = heartbeat::to_string(*d.to);
    e.who = d.reason.rfind("operator_", 0) == 0 && !command_who_.empty() ? command_who_
            : d.reason == "handover" || d.reason == "switchover_request"
                ? "peer " + config_.peer.name
                : "daemon";
    e.why = d.reason + (d.message.empty() ? "" : ": " + d.message);
    record(std::move(e));
    run_role_change_hook(*d.from, *d.to, d.reason);
  } else if (d.fence_changed) {
    spdlog::warn("FenceChanged fenced={} reason={} epoch={} trigger={} note=\"{}\"",
                 role_->fenced(), role_->fenced() ? role_->fenced_reason() : "confirmed",
                 role_->epoch(), trigger, one_line(d.message));
    HistoryEvent e;
    e.event = "fencing";
    e.role_from = e.role_to = heartbeat::to_string(role_->role());
    e.who = "daemon";
    e.why = role_->fenced() ? "fenced: " + role_->fenced_reason() : "unfenced: confirmed";
    record(std::move(e));
  } else if (d.accepted && !d.message.empty()) {
    spdlog::info("RoleNote trigger={} note=\"{}\"", trigger, one_line(d.message));
  }
  for (const auto& a : d.actions) {
    switch (a.kind) {
      case RoleAction::Kind::kPersist: {
        auto s = db_.persist_role(a.persist);
        if (!s) {
          last_error_ = s.message();
          spdlog::error("RolePersistFailed role={} epoch={} reason=\"{}\"",
                        heartbeat::to_string(a.persist.role), a.persist.epoch,
                        one_line(s.message()));
        }
        apply(role_->on_persisted(s.is_ok(), s.message(), clock_.now()), "persist");
        break;
      }
      case RoleAction::Kind::kOpenWrites:
        set_writes(true);
        break;
      case RoleAction::Kind::kCloseWrites:
        set_writes(false);
        break;
      case RoleAction::Kind::kRunPromoteHook:
        run_hook("on_promote", config_.hooks.on_promote);
        break;
      case RoleAction::Kind::kRunDemoteHook:
        run_hook("on_demote", config_.hooks.on_demote);
        break;
      case RoleAction::Kind::kWatchDrain:
        drain_watch_since_ = clock_.now();
        spdlog::info("DrainStarted peer={} reason=switchover", config_.peer.name);
        break;
      case RoleAction::Kind::kSendHandover:
        send_beat(0, Command::kHandover, a.epoch, a.position);
        break;
      case RoleAction::Kind::kSendSwitchoverRequest:
        send_beat(0, Command::kSwitchoverRequest, 0, {});
        break;
      case RoleAction::Kind::kPauseReplication:
        receiver_.set_paused(true);
        shipper_.set_paused(true);
        spdlog::info("ReplicationPaused reason=standalone");
        break;
      case RoleAction::Kind::kResumeReplication:
        receiver_.set_paused(false);
        shipper_.set_paused(false);
        spdlog::info("ReplicationResumed");
        break;
      case RoleAction::Kind::kSendHeartbeatSoon:
        monitor_->send_soon();
        break;
      case RoleAction::Kind::kArbiterAcquire:
        arbiter_acquire(a);
        break;
    }
  }
  publish_status();
}

void NodeDriver::set_writes(bool writable) {
  if (config_.node.app_role.empty()) return;  // warned at start
  auto s = db_.set_app_writes(config_.node.app_role, writable);
  if (!s) {
    last_error_ = s.message();
    writes_ = "unknown";
    spdlog::error("WritesChangeFailed writable={} reason=\"{}\"", writable, one_line(s.message()));
    return;
  }
  const std::string before = writes_;
  writes_ = writable ? "open" : "closed";
  spdlog::info("WritesChanged login={} writes={}", config_.node.app_role, writes_);
  if (before != writes_) {
    HistoryEvent e;
    e.event = "fencing";
    e.who = "daemon";
    e.why = writable ? "writes opened for the active role" : "writes closed (fenced)";
    e.detail = {{"login", config_.node.app_role}, {"writes", writes_}, {"before", before}};
    record(std::move(e));
  }
}

void NodeDriver::run_hook(const char* name, const std::string& program) {
  if (config_.shared.address.empty()) return;  // no shared address to move
  std::map<std::string, std::string> env{
      {"MPF_NODE", config_.node.name},
      {"MPF_ROLE", std::string(heartbeat::to_string(role_->role()))},
      {"MPF_EPOCH", std::to_string(role_->epoch())},
      {"MPF_SHARED_ADDRESS", config_.shared.address},
      {"MPF_SHARED_INTERFACE", config_.shared.interface},
      {"MPF_SHARED_HOSTNAME", config_.shared.hostname},
  };
  start_hook(name, program, std::move(env));
}

void NodeDriver::run_role_change_hook(Role from, Role to, const std::string& reason) {
  // Unlike on_promote/on_demote (which move shared.address), this one runs whether or not a
  // shared address is set: paging, DNS, load balancers.
  if (config_.hooks.on_role_change.empty()) return;
  std::map<std::string, std::string> env{
      {"MPF_NODE", config_.node.name},
      {"MPF_PEER", config_.peer.name},
      {"MPF_ROLE", std::string(heartbeat::to_string(to))},
      {"MPF_OLD_ROLE", std::string(heartbeat::to_string(from))},
      {"MPF_EPOCH", std::to_string(role_->epoch())},
      {"MPF_REASON", reason},
  };
  if (!config_.shared.address.empty()) {
    env["MPF_SHARED_ADDRESS"] = config_.shared.address;
    env["MPF_SHARED_INTERFACE"] = config_.shared.interface;
    env["MPF_SHARED_HOSTNAME"] = config_.shared.hostname;
  }
  start_hook("on_role_change", config_.hooks.on_role_change, std::move(env));
}

void NodeDriver::start_hook(const char* name, const std::string& program,
                            std::map<std::string, std::string> env) {
  spdlog::info("HookStarted hook={} program={}", name, program);
  hooks_.run(name, program, std::move(env), [this](HookResult r) {
    boost::asio::post(io_, [this, r = std::move(r)] {
      last_hook_ =
          json{{"hook", r.name}, {"ok", r.ok}, {"detail", r.detail}, {"seconds", r.seconds}};
      if (r.ok) {
        spdlog::info("HookFinished hook={} seconds={:.3f}", r.name, r.seconds);
      } else {
        last_error_ = "hook " + r.name + " failed: " + r.detail;
        ++hook_failures_;
        spdlog::error("HookFailed hook={} program={} detail=\"{}\"", r.name, r.program,
                      one_line(r.detail));
      }
    });
  });
}

void NodeDriver::watch_drain() {
  if (!drain_watch_since_) return;
  if (role_->role() != Role::kDemoting) {
    drain_watch_since_.reset();
    return;
  }
  const auto out = shipper_.stats();
  // Caught up at a moment after the writes closed: everything committed is acknowledged.
  if (out.caught_up_at && *out.caught_up_at > *drain_watch_since_) {
    spdlog::info("DrainFinished peer={} acked={} seconds={:.3f}", config_.peer.name,
                 out.acked.to_string(), seconds(clock_.now() - *drain_watch_since_));
    drain_watch_since_.reset();
    apply(role_->on_backlog_drained(out.acked, clock_.now()), "drain");
  }
}

bool NodeDriver::definitions_match() const {
  if (!peer_status_) return true;  // nothing known to differ from
  // Catalogs one version apart pair (a rolling upgrade in progress): replicator/versions.hpp.
  return replicator::check_catalog_versions(config_.node.name, catalog_version_, config_.peer.name,
                                            peer_status_->catalog_version)
             .is_ok() &&
         peer_status_->definitions_digest == definitions_digest_;
}

std::optional<std::string> NodeDriver::shared_address_holder() {
  if (config_.shared.address.empty()) return std::nullopt;
  const std::string ip = config_.shared.address.substr(0, config_.shared.address.find('/'));
  in_addr want{};
  if (inet_pton(AF_INET, ip.c_str(), &want) == 1) {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
      bool here = false;
      for (auto* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == want.s_addr) {
          here = true;
        }
      }
      freeifaddrs(list);
      if (here) return config_.node.name;
    }
  }
  if (peer_status_ && peer_status_->role == Role::kActive &&
      monitor_->snapshot().peer_state == PeerState::kUp) {
    return config_.peer.name;
  }
  return std::nullopt;
}

heartbeat::NodeFacts NodeDriver::my_facts() {
  heartbeat::NodeFacts f;
  f.writes = writes_;
  const auto out = shipper_.stats();
  if (out.caught_up_at) {
    f.lag_s = std::max(0.0, seconds(clock_.now() - *out.caught_up_at) - seconds(kTickInterval));
  }
  if (sampler_) {
    if (auto db = sampler_->latest()) {
      f.backlog_transactions = db->backlog_transactions;
      f.backlog_bytes = db->backlog_bytes;
    }
  }
  f.outbound_up = out.connected;
  f.inbound_up = receiver_.stats().connected;
  f.standalone = role_ && role_->role() == Role::kStandalone;
  f.automatic_failover = config_.failover.automatic;
  return f;
}

void NodeDriver::record(HistoryEvent e) {
  e.node = config_.node.name;
  if (role_) e.epoch = role_->epoch();
  e.applied_from_peer = receiver_.stats().applied.to_string();
  e.acked_by_peer = shipper_.stats().acked.to_string();
  auto s = db_.record_history(e);
  if (s) return;
  // Logged once per kind of failure: a catalog without the table (init-db not run after an
  // upgrade) would otherwise repeat on every event.
  if (s.code() == Code::kFailedPrecondition && history_unavailable_logged_) return;
  history_unavailable_logged_ = s.code() == Code::kFailedPrecondition;
  spdlog::warn("HistoryNotRecorded event={} reason=\"{}\"", e.event, one_line(s.message()));
}

void NodeDriver::prune_conflicts() {
  if (config_.conflicts.retention == Duration::zero()) return;
  const auto now = clock_.now();
  if (conflicts_pruned_at_ && now - *conflicts_pruned_at_ < std::chrono::minutes(10)) return;
  conflicts_pruned_at_ = now;
  auto n = db_.prune_conflicts(config_.conflicts.retention);
  if (!n) {
    spdlog::warn("ConflictsNotPruned reason=\"{}\"", one_line(n.status().message()));
  } else if (*n > 0) {
    spdlog::info("ConflictsPruned deleted={} retention_s={:.0f}", *n,
                 seconds(config_.conflicts.retention));
  }
}

json NodeDriver::status_json() {
  const auto now = clock_.now();
  const auto& snap = monitor_->snapshot();
  const auto out = shipper_.stats();
  const auto in = receiver_.stats();
  json j;
  j["ok"] = true;
  j["node"] = config_.node.name;
  j["role"] = std::string(heartbeat::to_string(role_->role()));
  j["epoch"] = role_->epoch();
  j["writes"] = writes_;
  // Self-fencing (docs/fencing.md): an active whose epoch nothing confirmed keeps writes closed.
  j["fenced"] = role_->fenced();
  j["fenced_reason"] = role_->fenced() ? json(role_->fenced_reason()) : json(nullptr);
  j["maintenance"] = role_->maintenance();
  j["fence_after_s"] = seconds(config_.failover.fence_after);
  j["arbiter"] = arbiter_status();
  j["peer"] = config_.peer.name;
  j["peer_address"] = config_.peer.address;
  j["peer_state"] = std::string(heartbeat::to_string(snap.peer_state));
  j["peer_role"] =
      peer_status_ ? json(std::string(heartbeat::to_string(peer_status_->role))) : json(nullptr);
  j["peer_epoch"] = peer_status_ ? json(peer_status_->epoch) : json(nullptr);
  j["last_heartbeat_age_s"] =
      snap.last_answer_at ? json(seconds(now - *snap.last_answer_at)) : json(nullptr);
  j["missed_heartbeats"] = snap.missed;
  j["heartbeat_interval_s"] = seconds(config_.heartbeat.interval);
  j["last_ping"] =
      snap.last_ping_reply ? json(*snap.last_ping_reply ? "reply" : "no_reply") : json(nullptr);
  j["ping_socket"] = peer_pinger_ ? json(std::string(peer_pinger_->socket_kind())) : json(nullptr);
  j["witness"] = config_.heartbeat.witness;
  j["witness_state"] = std::string(heartbeat::to_string(snap.witness));
  j["clock_skew_ms"] = snap.clock_skew_ms ? json(*snap.clock_skew_ms) : json(nullptr);
  j["clock_skew_warning"] = snap.skew_high;
  j["link"] = {{"outbound", out.connected ? "up" : "down"},
               {"inbound", in.connected ? "up" : "down"},
               {"reconnects", out.sessions > 0 ? out.sessions - 1 : 0}};
  j["acked_by_peer"] = position_json(out.acked);
  j["applied_from_peer"] = position_json(in.applied);
  // Replication lag: how long ago everything this node had committed was last acknowledged.
  j["lag_s"] = out.caught_up_at
                   ? json(std::max(0.0, seconds(now - *out.caught_up_at) - seconds(kTickInterval)))
                   : json(nullptr);
  j["replicating"] = role_->replicating();
  j["automatic_failover"] = config_.failover.automatic;
  j["shared_address"] =
      config_.shared.address.empty() ? json(nullptr) : json(config_.shared.address);
  auto holder = shared_address_holder();
  j["shared_address_holder"] = holder ? json(*holder) : json(nullptr);
  j["last_hook"] = last_hook_.is_null() ? json(nullptr) : last_hook_;
  j["operation"] = role_->operation();
  std::string err = role_->last_error().empty() ? last_error_ : role_->last_error();
  if (err.empty()) err = out.last_error.empty() ? in.last_error : out.last_error;
  j["last_error"] = err.empty() ? json(nullptr) : json(err);
  j["catalog_version"] = catalog_version_;
  j["definitions_match_peer"] = definitions_match();
  // Versions (docs/operations.md "Rolling upgrade"): what this node speaks, what each session
  // agreed on, and what the peer says it runs (its Hello; its heartbeats).
  const replicator::VersionRange offered{replicator::wire::kMinProtocolVersion,
                                         config_.protocol_max()};
  j["software_version"] = software_version();
  j["protocol_versions"] = offered.to_string();
  j["max_protocol_version"] = config_.replication.max_protocol_version != 0
                                  ? json(config_.replication.max_protocol_version)
                                  : json(nullptr);
  j["negotiated_protocol_version"] = {
      {"outbound", out.connected && out.protocol_version ? json(out.protocol_version) : json()},
      {"inbound", in.connected && in.protocol_version ? json(in.protocol_version) : json()}};
  j["heartbeat_protocol"] = heartbeat::kHeartbeatProtocol;
  j["peer_software_version"] = in.peer_software.empty() ? json(nullptr) : json(in.peer_software);
  j["peer_protocol_versions"] =
      in.peer_max_version != 0
          ? json(replicator::VersionRange{in.peer_min_version, in.peer_max_version}.to_string())
          : json(nullptr);
  j["peer_catalog_version"] = peer_status_                   ? json(peer_status_->catalog_version)
                              : in.peer_catalog_version != 0 ? json(in.peer_catalog_version)
                                                             : json(nullptr);
  std::vector<std::string> version_errors;
  {
    std::lock_guard lock(mu_);
    // A foreign heartbeat counts while the peer keeps sending them (three intervals).
    const bool foreign =
        foreign_heartbeat_at_ && now - *foreign_heartbeat_at_ < 3 * config_.heartbeat.interval + 1s;
    j["peer_heartbeat_protocol"] = foreign        ? json(foreign_heartbeat_protocol_)
                                   : peer_status_ ? json(heartbeat::kHeartbeatProtocol)
                                                  : json(nullptr);
    if (foreign) version_errors.push_back(foreign_heartbeat_error_);
  }
  if (!catalog_moved_error_.empty()) version_errors.push_back(catalog_moved_error_);
  if (!catalog_error_.empty()) version_errors.push_back(catalog_error_);
  for (const auto& e : {out.last_error, in.last_error}) {
    if (e.find("no protocol version in common") != std::string::npos ||
        e.find("catalog version") != std::string::npos) {
      version_errors.push_back(e);
    }
  }
  j["version_error"] = version_errors.empty() ? json(nullptr) : json(version_errors.front());
  // For `mpfailover list` (docs/operator-tools.md): this node's backlog as last sampled, its
  // maintenance and fencing state, and what the peer's latest Beat said about itself.
  j["backlog"] = nullptr;
  if (sampler_) {
    if (auto db = sampler_->latest()) {
      j["backlog"] = {{"transactions", db->backlog_transactions},
                      {"rows", db->backlog_rows},
                      {"bytes", db->backlog_bytes},
                      {"oldest_age_s",
                       db->backlog_oldest_age_s ? json(*db->backlog_oldest_age_s) : json(nullptr)},
                      {"sample_age_s", db->sample_age_s}};
    }
  }
  j["peer_facts"] = nullptr;
  j["peer_facts_age_s"] = peer_facts_at_ ? json(seconds(now - *peer_facts_at_)) : json(nullptr);
  if (peer_facts_) {
    const auto& f = *peer_facts_;
    auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
    auto up = [](const std::optional<bool>& v) {
      return v ? json(*v ? "up" : "down") : json(nullptr);
    };
    j["peer_facts"] = {{"writes", f.writes},
                       {"lag_s", opt(f.lag_s)},
                       {"backlog_transactions", opt(f.backlog_transactions)},
                       {"backlog_bytes", opt(f.backlog_bytes)},
                       {"link", {{"outbound", up(f.outbound_up)}, {"inbound", up(f.inbound_up)}}},
                       {"maintenance", f.standalone},
                       {"fenced", f.writes == "closed"},
                       {"automatic_failover", f.automatic_failover}};
  }
  j["role_changes"] = role_changes_;
  j["hook_failures"] = hook_failures_;
  return j;
}

void NodeDriver::arbiter_acquire(const RoleAction& a) {
  if (!arbiter_) {
    spdlog::error(
        "ArbiterMissing reason=\"the role machine asked for the arbiter's key, but no "
        "arbiter is configured\"");
    return;
  }
  std::optional<heartbeat::LeaderValue> replace;
  if (!a.replace_node.empty()) replace = heartbeat::LeaderValue{a.replace_node, a.replace_epoch};
  spdlog::info("ArbiterAcquire epoch={} replace={} force={}", a.epoch,
               replace ? heartbeat::encode_leader(*replace) : std::string("-"), a.force);
  arbiter_in_flight_ = true;
  const Epoch epoch = a.epoch;
  arbiter_->acquire(a.epoch, replace, a.force, [this, epoch](EtcdAnswer answer) {
    boost::asio::post(
        io_, [this, answer = std::move(answer), epoch] { on_arbiter_answer(answer, true, epoch); });
  });
}

void NodeDriver::arbiter_tick() {
  if (!arbiter_) return;
  const auto now = clock_.now();
  const Role r = role_->role();
  if (arbiter_held_ && (r == Role::kStandby || r == Role::kStandalone)) {
    // Not active any more (stepped down, handed over): free the key for the peer now rather
    // than when the lease expires.
    spdlog::info("ArbiterRelease epoch={}", *arbiter_held_);
    arbiter_->release(*arbiter_held_);
    arbiter_held_.reset();
    return;
  }
  if (r != Role::kActive || role_->fenced() || arbiter_in_flight_) return;
  if (arbiter_renew_at_ && now - *arbiter_renew_at_ < config_.heartbeat.interval) return;
  arbiter_renew_at_ = now;
  arbiter_in_flight_ = true;
  const Epoch epoch = role_->epoch();
  arbiter_->renew(epoch, [this, epoch](EtcdAnswer answer) {
    boost::asio::post(io_, [this, answer = std::move(answer), epoch] {
      on_arbiter_answer(answer, false, epoch);
    });
  });
}

void NodeDriver::on_arbiter_answer(const EtcdAnswer& answer, bool acquire, Epoch epoch) {
  arbiter_in_flight_ = false;
  if (answer.holds) {
    arbiter_held_ = epoch;
    arbiter_confirmed_at_ = answer.sent_at;
  }
  if (!answer.holds && answer.detail != arbiter_detail_) {
    spdlog::warn("ArbiterRefused acquire={} epoch={} detail=\"{}\"", acquire, epoch,
                 one_line(answer.detail));
  }
  arbiter_detail_ =
      answer.holds ? "holds the key at epoch " + std::to_string(epoch) : answer.detail;
  heartbeat::ArbiterWord w;
  w.holds = answer.holds;
  w.sent_at = answer.sent_at;
  if (answer.holder) {
    w.holder = answer.holder->node;
    w.holder_epoch = answer.holder->epoch;
  }
  const auto now = clock_.now();
  if (acquire) {
    apply(role_->on_arbiter_acquired(w, answer.detail, now), "arbiter");
  } else {
    apply(role_->on_arbiter(w, now), "arbiter");
  }
}

json NodeDriver::arbiter_status() const {
  if (!arbiter_) return json(nullptr);
  const auto now = clock_.now();
  return json{
      {"kind", "etcd"},
      {"endpoints", config_.arbiter.endpoints},
      {"key", arbiter_->options().key},
      {"lease_ttl_s", arbiter_->options().lease_ttl.count()},
      {"holds", arbiter_held_.has_value() && role_->role() == Role::kActive && !role_->fenced()},
      {"last_confirmed_age_s",
       arbiter_confirmed_at_ ? json(seconds(now - *arbiter_confirmed_at_)) : json(nullptr)},
      {"detail", arbiter_detail_}};
}

json NodeDriver::command_failover(bool force) {
  json report;
  if (auto a = db_.applied_from(config_.peer.name)) {
    report["last_applied_from_peer"] = position_json(a->position);
    report["last_applied_age_s"] = a->age_s ? json(*a->age_s) : json(nullptr);
  }
  if (peer_status_) {
    report["peer_last_seen_s"] = seconds(clock_.now() - *peer_status_at_);
    report["peer_last_role"] = std::string(heartbeat::to_string(peer_status_->role));
    report["peer_last_epoch"] = peer_status_->epoch;
  }
  heartbeat::CommandContext ctx;
  ctx.force = force;
  ctx.definitions_match = definitions_match();
  auto d = role_->failover(ctx, monitor_->snapshot(), clock_.now());
  apply(d, "operator_failover");
  json j{{"ok", d.accepted}, {"report", report}};
  if (d.accepted) {
    j["message"] = d.message;
  } else {
    j["error"] = d.message;
  }
  j["role"] = std::string(heartbeat::to_string(role_->role()));
  j["epoch"] = role_->epoch();
  return j;
}

json NodeDriver::handle(const json& request) {
  const std::string cmd = request.value("command", "");
  // Who asked (ControlServer fills it from the socket's credentials), for the history.
  command_who_ = request.value("who", std::string());
  struct Forget {  // role changes after this request are not the operator's
    std::string& who;
    ~Forget() { who.clear(); }
  } forget{command_who_};
  const auto now = clock_.now();
  auto reply = [&](const Decision& d) {
    json j{{"ok", d.accepted},
           {"role", std::string(heartbeat::to_string(role_->role()))},
           {"epoch", role_->epoch()}};
    if (d.accepted) {
      j["message"] = d.message;
    } else {
      j["error"] = d.message;
    }
    return j;
  };
  if (cmd == "status") return status_json();
  if (cmd == "failover") return command_failover(request.value("force", false));
  if (cmd == "switchover") {
    auto d = role_->switchover(monitor_->snapshot(), now);
    apply(d, "operator_switchover");
    if (d.accepted && !d.to) {
      // Asked on the standby: its role changes only when the active hands over, in the peer's
      // name; the operator who asked is recorded here and now.
      HistoryEvent e;
      e.event = "switchover";
      e.who = command_who_.empty() ? "operator" : command_who_;
      e.why = "operator_switchover" + (d.message.empty() ? "" : ": " + d.message);
      record(std::move(e));
    }
    return reply(d);
  }
  if (cmd == "standalone") {
    auto d = role_->standalone(now);
    apply(d, "operator_standalone");
    return reply(d);
  }
  if (cmd == "join") {
    auto d = role_->join(now);
    apply(d, "operator_join");
    return reply(d);
  }
  if (cmd == "maintenance") {
    if (!request.contains("on") || !request["on"].is_boolean()) {
      return json{{"ok", false}, {"error", "maintenance needs \"on\": true or false"}};
    }
    auto d = role_->set_maintenance(request["on"].get<bool>(), now);
    spdlog::warn("MaintenanceChanged maintenance={}", role_->maintenance());
    apply(d, "operator_maintenance");
    auto j = reply(d);
    j["maintenance"] = role_->maintenance();
    return j;
  }
  return json{{"ok", false}, {"error", "unknown command \"" + cmd + "\""}};
}

}  // namespace mpf::server
