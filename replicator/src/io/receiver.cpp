// NOTES: the receiver's rules for frames.
//
// A ROUTER socket prefixes each frame with the sender's routing id. Only a Hello from the
// configured peer, addressed to this node, at a protocol version both speak, opens a session;
// it replaces any earlier session (the peer reconnected: its unacknowledged batches will be
// resent from the applied position, and an open split transaction is rolled back). Batches must
// carry the session's id and consecutive numbers: anything else (a replay, a frame of a dead
// session, a gap left by a lost frame) is dropped, and the sender is told to start over,
// because the compression stream can no longer be trusted. Garbage is dropped and counted,
// with a log line at most once a second so a flood cannot fill the disk.
//
// Batches already waiting when one is taken are applied with it as one group (up to
// kMaxGroupChanges changes): one local transaction, one commit, one net effect, then an Ack
// for each batch (each names the position committed, which covers it). The shipper keeps up to
// four batches in flight, so after an outage the receiver finds several queued behind the one it
// applies; one commit per batch of 1,000 changes cost the drain a quarter of its apply time in
// per-group work (commit, deferred checks, statement start-up).
#include <deque>
#include <functional>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/replicator/pg_applier_connection.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/receiver_session.hpp>
#include <mpf/replicator/versions.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::replicator {
namespace {

using Clock = std::chrono::steady_clock;

// A frame from the port, decoded already when it was read ahead with the session's decoder.
struct Incoming {
  std::string routing_id;
  zmq::message_t body;
  std::optional<Result<wire::Message>> decoded;
};

}  // namespace

namespace {

// The current session's codecs (fresh per session: one compression stream per session).
struct Codecs {
  wire::Decoder decoder;
  wire::Encoder encoder;
};

mpf::TimePoint now_point() {
  return std::chrono::time_point_cast<mpf::Duration>(std::chrono::steady_clock::now());
}

}  // namespace

Receiver::Receiver(zmq::context_t& context, ReceiverOptions options)
    : context_(context), options_(std::move(options)) {}

Receiver::~Receiver() = default;

LinkStats Receiver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Status Receiver::bind() {
  try {
    socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::router);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->set(zmq::sockopt::heartbeat_ivl, 5000);
    socket_->set(zmq::sockopt::heartbeat_timeout, 60000);
    socket_->set(zmq::sockopt::heartbeat_ttl, 60000);
    socket_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(wire::kMaxFrameBytes));
    socket_->set(zmq::sockopt::router_handover, 1);
    if (options_.security.curve) {
      zap_ =
          std::make_unique<ZapHandler>(context_, options_.peer, options_.security.peer_public_key);
    }
    configure_server(*socket_, options_.security);
    socket_->bind(options_.endpoint);
    return Status::ok();
  } catch (const zmq::error_t& e) {
    return unavailable("could not listen on \"" + options_.endpoint + "\": " + e.what());
  }
}

void Receiver::run(std::stop_token stop) {
  MPF_ASSERT(socket_ != nullptr, "Receiver::run before bind");
  // The port's front: answers side-channel frames (heartbeats) at once, and hands everything else
  // to the apply thread through an inproc pair, so a long apply never delays a heartbeat answer.
  const std::string inproc =
      "inproc://mpf-receiver-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  zmq::socket_t front(context_, zmq::socket_type::pair);
  front.set(zmq::sockopt::linger, 0);
  front.bind(inproc);
  std::jthread apply_thread([this, &inproc](std::stop_token st) { apply_loop(st, inproc); });
  while (!stop.stop_requested()) {
    try {
      zmq::pollitem_t items[] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                                 {front.handle(), 0, ZMQ_POLLIN, 0},
                                 {zap_ ? zap_->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, zap_ ? 3 : 2, std::chrono::milliseconds(100));
      if (zap_ && (items[2].revents & ZMQ_POLLIN)) zap_->handle();
      // Replies of the apply thread go out as they are: routing id, then the frame.
      while (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t id_frame;
        zmq::message_t body;
        if (!front.recv(id_frame, zmq::recv_flags::dontwait)) break;
        (void)front.recv(body, zmq::recv_flags::dontwait);
        socket_->send(id_frame, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        socket_->send(body, zmq::send_flags::dontwait);
      }
      for (int burst = 0; burst < 64 && (items[0].revents & ZMQ_POLLIN); ++burst) {
        zmq::message_t id_frame;
        zmq::message_t body;
        if (!socket_->recv(id_frame, zmq::recv_flags::dontwait)) break;
        if (!id_frame.more()) continue;  // a ROUTER always prefixes the id; nothing to route
        (void)socket_->recv(body, zmq::recv_flags::dontwait);
        bool more = body.more();
        for (int extra_frames = 0; more && extra_frames < 64; ++extra_frames) {  // not ours
          zmq::message_t extra;
          if (!socket_->recv(extra, zmq::recv_flags::dontwait)) break;
          more = extra.more();
        }
        {
          std::lock_guard lock(mu_);
          stats_.wire_bytes += body.size();
        }
        if (options_.side_channel) {
          const std::string_view bytes(static_cast<const char*>(body.data()), body.size());
          if (auto answer = options_.side_channel(bytes)) {
            if (!answer->empty()) {
              socket_->send(id_frame, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
              socket_->send(zmq::buffer(*answer), zmq::send_flags::dontwait);
            }
            continue;
          }
        }
        front.send(id_frame, zmq::send_flags::sndmore);
        front.send(body, zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      spdlog::error("ReceiverError reason=\"{}\"", one_line(e.what()));
    }
  }
  apply_thread.request_stop();
}

void Receiver::apply_loop(std::stop_token stop, const std::string& inproc) {
  zmq::socket_t port(context_, zmq::socket_type::pair);
  port.set(zmq::sockopt::linger, 0);
  port.connect(inproc);
  // The session rules are in ReceiverSession (src/core/receiver_session.cpp); this loop only
  // reads frames, decodes them, and carries out the session's actions on the socket and the
  // database. The applier is an object, never a null pointer: closed, it answers kUnavailable.
  ReceiverSessionOptions session_options;
  session_options.node = options_.node;
  ReceiverSession session(session_options);
  PgApplierConnection applier(options_.conninfo);
  Codecs codecs;  // of the current session
  Clock::time_point last_drop_log{};
  std::string version_refusal;  // the last Hello refused for its versions, as last_error says it
  uint64_t drops_since_log = 0;

  auto drop = [&](const std::string& why) {
    ++drops_since_log;
    {
      std::lock_guard lock(mu_);
      ++stats_.dropped_frames;
    }
    const auto now = Clock::now();
    if (now - last_drop_log > std::chrono::seconds(1)) {
      spdlog::warn("FrameDropped count={} reason=\"{}\"", drops_since_log, one_line(why));
      last_drop_log = now;
      drops_since_log = 0;
    }
  };
  // Carries out the session's actions in order; the applier's answers go back to the session,
  // whose further actions are carried out in turn.
  std::function<void(ReceiverSession::Actions)> run = [&](ReceiverSession::Actions actions) {
    for (auto& a : actions) {
      switch (a.kind) {
        case ReceiverAction::Kind::kSend: {
          port.send(zmq::buffer(a.routing_id), zmq::send_flags::sndmore);
          port.send(zmq::buffer(codecs.encoder.encode(a.message)), zmq::send_flags::none);
          break;
        }
        case ReceiverAction::Kind::kBind:
          run(session.on_bound(applier.bind(a.origin, a.tables)));
          break;
        case ReceiverAction::Kind::kReadApplied:
          run(session.on_applied_position(applier.applied_position()));
          break;
        case ReceiverAction::Kind::kApply: {
          auto r = applier.apply(*a.group);
          run(session.on_applied(r, now_point(), r ? Position{} : applier.failed_position()));
          break;
        }
        case ReceiverAction::Kind::kRollback:
          applier.rollback();
          break;
        case ReceiverAction::Kind::kCloseApplier:
          applier.close();
          break;
        case ReceiverAction::Kind::kDrop:
          drop(a.reason);
          break;
        case ReceiverAction::Kind::kOpened: {
          codecs.decoder = wire::Decoder();
          codecs.encoder = wire::Encoder();
          std::lock_guard lock(mu_);
          // What the peer said of itself in its Hello (check_hello kept it): the rolling-upgrade
          // runbook reads the versions off this line.
          spdlog::info(
              "SessionAccepted origin={} session={:x} applied={} protocol_version={} "
              "peer_versions={}-{} peer_software={}",
              a.origin, session.session_id(), a.position.to_string(), session_version_,
              stats_.peer_min_version, stats_.peer_max_version,
              stats_.peer_software.empty() ? "unknown" : stats_.peer_software);
          stats_.connected = true;
          stats_.protocol_version = session_version_;
          if (stats_.last_error == version_refusal) stats_.last_error.clear();  // the peer moved on
          ++stats_.sessions;
          stats_.applied = a.position;
          break;
        }
        case ReceiverAction::Kind::kApplied: {
          uint64_t txs = 0;
          size_t changes = 0;
          for (const auto& c : *a.group) {
            txs += c.last ? 1 : 0;
            changes += c.changes.size();
          }
          std::lock_guard lock(mu_);
          stats_.batches += applied_batches_;
          stats_.transactions += txs;
          stats_.changes += changes;
          stats_.applied = a.position;
          stats_.last_error.clear();
          stats_.apply_stopped = false;
          break;
        }
        case ReceiverAction::Kind::kApplyStopped: {
          std::lock_guard lock(mu_);
          stats_.apply_stopped = true;
          break;
        }
        case ReceiverAction::Kind::kLog: {
          const auto level = a.level == ReceiverAction::Level::kError  ? spdlog::level::err
                             : a.level == ReceiverAction::Level::kWarn ? spdlog::level::warn
                             : a.level == ReceiverAction::Level::kInfo ? spdlog::level::info
                                                                       : spdlog::level::debug;
          spdlog::log(level, "{}", one_line(a.reason));
          if (a.error) {
            std::lock_guard lock(mu_);
            stats_.last_error = one_line(a.reason);
          }
          break;
        }
      }
    }
  };

  std::deque<Incoming> ahead;  // read while gathering a group, not a batch of it
  // The next frame waiting on the port, without blocking.
  auto read_frame = [&]() -> std::optional<Incoming> {
    zmq::message_t id_frame;
    Incoming in;
    if (!port.recv(id_frame, zmq::recv_flags::dontwait)) return std::nullopt;
    (void)port.recv(in.body, zmq::recv_flags::dontwait);
    in.routing_id.assign(static_cast<const char*>(id_frame.data()), id_frame.size());
    return in;
  };
  auto frame_version = [](const zmq::message_t& body) -> uint32_t {
    const char* raw = static_cast<const char*>(body.data());
    return body.size() > 3 && raw[3] == 'C' ? 2 : 1;
  };

  while (!stop.stop_requested()) {
    try {
      if (held_) {  // resync: let go of the session and the database (set_held)
        run(session.on_hold());
        {
          std::lock_guard lock(mu_);
          stats_.connected = false;
        }
        quiet_ = true;
      }
      // A retry after a lost database connection: wait for it, leaving frames queued in order.
      if (auto at = session.retry_at()) {
        const auto now = now_point();
        if (now < *at) std::this_thread::sleep_for(*at - now);
        run(session.on_tick(now_point()));
        continue;
      }
      std::optional<Incoming> next;
      if (!ahead.empty()) {
        next = std::move(ahead.front());
        ahead.pop_front();
      } else {
        zmq::pollitem_t items[] = {{port.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 1, std::chrono::milliseconds(held_ ? 20 : 100));
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        next = read_frame();
        if (!next) continue;
      }
      const std::string routing_id = std::move(next->routing_id);
      const std::string_view bytes(static_cast<const char*>(next->body.data()), next->body.size());
      const bool from_session = session.routing_id() && *session.routing_id() == routing_id;
      wire::Decoder scratch;
      auto msg = next->decoded ? std::move(*next->decoded)
                               : (from_session ? codecs.decoder : scratch).decode(bytes);
      if (!msg) {
        run(session.on_undecodable(routing_id, msg.status().message()));
        continue;
      }
      if (auto* hello = std::get_if<wire::Hello>(&*msg)) {
        uint32_t version = 0;
        const std::string refusal = check_hello(*hello, version, version_refusal);
        session_version_ = version;
        run(session.on_hello(routing_id, *hello, version, refusal));
        continue;
      }
      auto* batch = std::get_if<wire::Batch>(&*msg);
      if (!batch) {
        run(session.on_unexpected(wire::message_name(*msg)));
        continue;
      }
      applied_batches_ = 1;
      run(session.on_batch(routing_id, std::move(*batch), frame_version(next->body), paused_));
      // The batches queued behind this one join its group (see the NOTES above).
      while (!paused_ && !held_ && session.group_changes() < ReceiverSession::kMaxGroupChanges) {
        auto more = read_frame();
        if (!more) break;
        if (session.routing_id() && more->routing_id == *session.routing_id()) {
          more->decoded = codecs.decoder.decode(
              std::string_view(static_cast<const char*>(more->body.data()), more->body.size()));
          auto* b = *more->decoded ? std::get_if<wire::Batch>(&**more->decoded) : nullptr;
          // A frame of another protocol version is left for the main path, which refuses it.
          if (b && session.joins_group(more->routing_id, *b, frame_version(more->body))) {
            ++applied_batches_;
            run(session.on_batch(more->routing_id, std::move(*b), frame_version(more->body),
                                 false));
            continue;
          }
        }
        ahead.push_back(std::move(*more));  // handled after this group, in order
        break;
      }
      run(session.end_group(now_point()));
    } catch (const std::exception& e) {
      spdlog::error("ReceiverError reason=\"{}\"", one_line(e.what()));
      // What failed is unknown: the session ends and the applier is closed, so the next
      // session starts from what the database says it committed.
      run(session.on_undecodable(session.routing_id() ? *session.routing_id() : std::string(),
                                 std::string("receiver error: ") + e.what()));
      applier.close();
    }
  }
}

// Whether a Hello may open a session: empty, or why not. Sets `version` to the one agreed.
std::string Receiver::check_hello(const wire::Hello& hello, uint32_t& version_out,
                                  std::string& version_refusal) {
  const uint32_t max_version =
      options_.max_protocol_version != 0 ? options_.max_protocol_version : wire::kProtocolVersion;
  auto version = wire::negotiate_version(hello, max_version);
  const Status catalog = check_catalog_versions(options_.node, options_.catalog_version,
                                                hello.origin, hello.catalog_version);
  std::string refusal;
  bool on_purpose = false;  // standalone or resync: expected, not an error
  if (hello.origin != options_.peer) {
    refusal = "node \"" + hello.origin + "\" is not this node's peer (\"" + options_.peer + "\")";
  } else if (hello.target != options_.node) {
    refusal = "this is node \"" + options_.node + "\", not \"" + hello.target + "\"";
  } else if (!version) {
    refusal = version.status().message();
  } else if (!catalog) {
    refusal = catalog.message();
  } else if (paused_) {
    refusal = "node \"" + options_.node + "\" is standalone: replication is paused";
    on_purpose = true;
  } else if (held_) {
    refusal = "node \"" + options_.node + "\" is being resynced: replication is paused";
    on_purpose = true;
  }
  if (hello.origin == options_.peer) {  // what the peer says of itself, for status
    std::lock_guard lock(mu_);
    stats_.peer_min_version = hello.min_version;
    stats_.peer_max_version = hello.max_version;
    stats_.peer_software = hello.software;
    stats_.peer_catalog_version = hello.catalog_version;
    if (!version || !catalog) stats_.last_error = version_refusal = refusal;
  }
  if (!refusal.empty()) {
    // Standalone and resync refuse on purpose, once a second while the peer retries: the state
    // itself is logged where it starts, so those refusals stay out of the error log.
    spdlog::log(on_purpose ? spdlog::level::debug : spdlog::level::err,
                "HelloRefused from={} peer_versions={}-{} peer_software={} "
                "peer_catalog_version={} reason=\"{}\"",
                hello.origin, hello.min_version, hello.max_version,
                hello.software.empty() ? "unknown" : hello.software, hello.catalog_version,
                one_line(refusal));
    return refusal;
  }
  if (hello.catalog_version != options_.catalog_version) {
    spdlog::warn(
        "CatalogVersionDiffers peer={} peer_catalog_version={} catalog_version={} "
        "note=\"compatible during a rolling upgrade; upgrade the older node\"",
        hello.origin, hello.catalog_version, options_.catalog_version);
  }
  version_out = *version;
  return {};
}

}  // namespace mpf::replicator
