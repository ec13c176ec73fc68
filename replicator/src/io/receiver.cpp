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
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/replicator/pg_applier.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/versions.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::replicator {
namespace {

using Clock = std::chrono::steady_clock;

// At most this many changes in one apply group made of queued batches.
constexpr size_t kMaxGroupChanges = 8000;

// A frame from the port, decoded already when it was read ahead with the session's decoder.
struct Incoming {
  std::string routing_id;
  zmq::message_t body;
  std::optional<Result<wire::Message>> decoded;
};

}  // namespace

class Receiver::Sessions {
 public:
  std::string routing_id;  // of the current session's sender
  uint64_t session_id = 0;
  uint64_t expected_seq = 1;
  uint32_t version = 0;  // the protocol version agreed in the Welcome
  bool stuck = false;    // apply stopped with an error
  std::string origin;
  std::vector<TableDef> tables;  // as the Hello described them, for re-binding
  wire::Decoder decoder;
  wire::Encoder encoder;
};

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
  std::unique_ptr<PgApplier> applier;
  std::unique_ptr<Sessions> session;
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
  auto reply = [&](const std::string& routing_id, wire::Encoder& enc, const wire::Message& m) {
    port.send(zmq::buffer(routing_id), zmq::send_flags::sndmore);
    port.send(zmq::buffer(enc.encode(m)), zmq::send_flags::none);
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

  while (!stop.stop_requested()) {
    try {
      if (held_) {  // resync: let go of the session and the database (set_held)
        if (session) {
          reply(session->routing_id, session->encoder,
                wire::Refuse{session->session_id,
                             "node \"" + options_.node + "\" is being resynced"});
          session.reset();
        }
        if (applier) applier->reset();
        applier.reset();
        {
          std::lock_guard lock(mu_);
          stats_.connected = false;
        }
        quiet_ = true;
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
      const bool from_session = session && session->routing_id == routing_id;
      wire::Decoder scratch;
      auto msg = next->decoded ? std::move(*next->decoded)
                               : (from_session ? session->decoder : scratch).decode(bytes);
      if (!msg) {
        drop(msg.status().message());
        if (from_session) {
          wire::Encoder enc;
          reply(routing_id, enc, wire::Refuse{session->session_id, "undecodable frame"});
          if (applier) applier->reset();
          session.reset();
        }
        continue;
      }

      if (auto* hello = std::get_if<wire::Hello>(&*msg)) {
        wire::Encoder enc;
        const uint32_t max_version = options_.max_protocol_version != 0
                                         ? options_.max_protocol_version
                                         : wire::kProtocolVersion;
        auto version = wire::negotiate_version(*hello, max_version);
        const Status catalog = check_catalog_versions(options_.node, options_.catalog_version,
                                                      hello->origin, hello->catalog_version);
        std::string refusal;
        bool on_purpose = false;  // standalone or resync: expected, not an error
        if (hello->origin != options_.peer) {
          refusal =
              "node \"" + hello->origin + "\" is not this node's peer (\"" + options_.peer + "\")";
        } else if (hello->target != options_.node) {
          refusal = "this is node \"" + options_.node + "\", not \"" + hello->target + "\"";
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
        if (hello->origin == options_.peer) {  // what the peer says of itself, for status
          std::lock_guard lock(mu_);
          stats_.peer_min_version = hello->min_version;
          stats_.peer_max_version = hello->max_version;
          stats_.peer_software = hello->software;
          stats_.peer_catalog_version = hello->catalog_version;
          if (!version || !catalog) stats_.last_error = version_refusal = refusal;
        }
        if (!refusal.empty()) {
          // Standalone and resync refuse on purpose, once a second while the peer retries: the
          // state itself is logged where it starts, so those refusals stay out of the error log.
          spdlog::log(on_purpose ? spdlog::level::debug : spdlog::level::err,
                      "HelloRefused from={} peer_versions={}-{} peer_software={} "
                      "peer_catalog_version={} reason=\"{}\"",
                      hello->origin, hello->min_version, hello->max_version,
                      hello->software.empty() ? "unknown" : hello->software, hello->catalog_version,
                      one_line(refusal));
          reply(routing_id, enc, wire::Refuse{hello->session_id, refusal});
          continue;
        }
        if (hello->catalog_version != options_.catalog_version) {
          spdlog::warn(
              "CatalogVersionDiffers peer={} peer_catalog_version={} catalog_version={} "
              "note=\"compatible during a rolling upgrade; upgrade the older node\"",
              hello->origin, hello->catalog_version, options_.catalog_version);
        }
        if (!applier) {
          auto a = PgApplier::open(options_.conninfo);
          if (!a) {
            reply(routing_id, enc, wire::Refuse{hello->session_id, a.status().message()});
            std::lock_guard lock(mu_);
            stats_.last_error = a.status().message();
            continue;
          }
          applier = std::move(a.value());
        }
        std::vector<TableDef> tables;
        for (size_t i = 0; i < hello->tables.size(); ++i) {
          TableDef d;
          d.table_id = static_cast<int32_t>(i);
          d.relation = hello->tables[i].relation;
          d.columns = hello->tables[i].columns;
          d.key_columns = hello->tables[i].key_columns;
          tables.push_back(std::move(d));
        }
        if (auto s = applier->bind(hello->origin, tables); !s) {
          spdlog::error("HelloRefused from={} reason=\"{}\"", hello->origin, one_line(s.message()));
          reply(routing_id, enc, wire::Refuse{hello->session_id, s.message()});
          if (s.code() == Code::kUnavailable) applier.reset();
          continue;
        }
        auto applied = applier->applied_position();
        if (!applied) {
          reply(routing_id, enc, wire::Refuse{hello->session_id, applied.status().message()});
          applier.reset();
          continue;
        }
        session = std::make_unique<Sessions>();
        session->routing_id = routing_id;
        session->session_id = hello->session_id;
        session->version = *version;
        session->origin = hello->origin;
        session->tables = tables;
        reply(routing_id, session->encoder,
              wire::Welcome{*version, options_.node, hello->session_id, *applied});
        spdlog::info(
            "SessionAccepted origin={} session={:x} applied={} protocol_version={} "
            "peer_versions={}-{} peer_software={}",
            hello->origin, hello->session_id, applied->to_string(), *version, hello->min_version,
            hello->max_version, hello->software.empty() ? "unknown" : hello->software);
        std::lock_guard lock(mu_);
        stats_.connected = true;
        stats_.protocol_version = *version;
        if (stats_.last_error == version_refusal) stats_.last_error.clear();  // the peer moved on
        ++stats_.sessions;
        stats_.applied = *applied;
        continue;
      }

      auto* batch = std::get_if<wire::Batch>(&*msg);
      if (!batch) {
        drop(std::string("unexpected ") + wire::message_name(*msg) + " message");
        continue;
      }
      if (!from_session || batch->session_id != session->session_id) {
        drop("batch of an unknown session");
        continue;
      }
      if (paused_) {  // the node left the pair: the peer resends after `join`
        reply(routing_id, session->encoder,
              wire::Refuse{session->session_id, "node \"" + options_.node + "\" is standalone"});
        if (applier) applier->reset();
        session.reset();
        continue;
      }
      // A batch must be in the version the session agreed on (docs/protocol.md §6): a node pinned
      // to version 1 refuses a version-2 frame, as a node of the version-1 release does.
      if (const uint32_t frame_version = bytes[3] == 'C' ? 2 : 1;
          frame_version != session->version) {
        const std::string why = "batch frame of protocol version " + std::to_string(frame_version) +
                                " in a session that agreed on " + std::to_string(session->version);
        drop(why);
        reply(routing_id, session->encoder, wire::Refuse{session->session_id, why});
        applier->reset();
        session.reset();
        continue;
      }
      if (batch->seq != session->expected_seq) {
        drop("batch " + std::to_string(batch->seq) + " out of order, expected " +
             std::to_string(session->expected_seq));
        reply(routing_id, session->encoder,
              wire::Refuse{session->session_id, "batch out of order"});
        applier->reset();
        session.reset();
        continue;
      }
      ++session->expected_seq;
      if (session->stuck) continue;  // the sender ends the session on ApplyError
      // The batches queued behind this one join its group (see the NOTES above).
      std::vector<uint64_t> seqs{batch->seq};
      std::vector<TxChunk> chunks = std::move(batch->chunks);
      size_t group_changes = 0;
      for (const auto& c : chunks) group_changes += c.changes.size();
      while (group_changes < kMaxGroupChanges && !paused_ && !held_) {
        auto more = read_frame();
        if (!more) break;
        if (more->routing_id == session->routing_id) {
          more->decoded = session->decoder.decode(
              std::string_view(static_cast<const char*>(more->body.data()), more->body.size()));
          auto* b = *more->decoded ? std::get_if<wire::Batch>(&**more->decoded) : nullptr;
          // A frame of another protocol version is left for the main path, which refuses it.
          const char* raw = static_cast<const char*>(more->body.data());
          const uint32_t frame_version = more->body.size() > 3 && raw[3] == 'C' ? 2 : 1;
          if (b && b->session_id == session->session_id && b->seq == session->expected_seq &&
              frame_version == session->version) {
            ++session->expected_seq;
            seqs.push_back(b->seq);
            for (auto& c : b->chunks) {
              group_changes += c.changes.size();
              chunks.push_back(std::move(c));
            }
            continue;
          }
        }
        ahead.push_back(std::move(*more));  // handled after this group, in order
        break;
      }
      const bool mid_transaction = applier->in_split_transaction();
      auto applied = applier->apply(chunks);
      // This node's database went away (restart, failover of the database): reconnect and try
      // the same batches again, a few times over about two seconds, unless a split transaction
      // was open (its earlier parts are gone with the connection: the sender must resend).
      for (int attempt = 0; !applied && !mid_transaction && attempt < 8 &&
                            (applied.status().code() == Code::kUnavailable ||
                             applied.status().code() == Code::kUnknownOutcome);
           ++attempt) {
        spdlog::warn("ApplyRetry origin={} attempt={} reason=\"{}\"", options_.peer, attempt + 1,
                     one_line(applied.status().message()));
        applier.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        auto reopened = PgApplier::open(options_.conninfo);
        if (!reopened) continue;
        if (!(*reopened)->bind(session->origin, session->tables)) continue;
        applier = std::move(reopened.value());
        applied = applier->apply(chunks);  // already-applied transactions are skipped
      }
      if (!applied && (applied.status().code() == Code::kUnavailable ||
                       applied.status().code() == Code::kUnknownOutcome)) {
        // Still down: the sender starts a new session and resends from the applied position.
        spdlog::warn("ApplyUnavailable origin={} reason=\"{}\"", options_.peer,
                     one_line(applied.status().message()));
        reply(routing_id, session->encoder,
              wire::Refuse{session->session_id,
                           "database unavailable: " + one_line(applied.status().message())});
        if (applier) applier->reset();
        applier.reset();
        session.reset();
        std::lock_guard lock(mu_);
        stats_.last_error = one_line(applied.status().message());
        continue;
      }
      if (!applied) {
        // Exactly the transaction apply failed on (#12): skip must not leave out a good one.
        const Position at = applier && !applier->failed_position().is_zero()
                                ? applier->failed_position()
                            : chunks.empty() ? Position{}
                                             : chunks.front().position;
        spdlog::error("ApplyStopped origin={} error=\"{}\"", options_.peer,
                      one_line(applied.status().message()));
        reply(routing_id, session->encoder,
              wire::ApplyError{session->session_id, at, applied.status().message()});
        session->stuck = true;
        std::lock_guard lock(mu_);
        stats_.last_error = applied.status().message();
        stats_.apply_stopped = true;
        continue;
      }
      for (uint64_t seq : seqs) {
        reply(routing_id, session->encoder, wire::Ack{session->session_id, seq, *applied});
      }
      uint64_t txs = 0;
      size_t changes = 0;
      for (const auto& c : chunks) {
        txs += c.last ? 1 : 0;
        changes += c.changes.size();
      }
      std::lock_guard lock(mu_);
      stats_.batches += seqs.size();
      stats_.transactions += txs;
      stats_.changes += changes;
      stats_.applied = *applied;
      stats_.last_error.clear();
      stats_.apply_stopped = false;
    } catch (const std::exception& e) {
      spdlog::error("ReceiverError reason=\"{}\"", one_line(e.what()));
      if (applier) applier->reset();
      session.reset();
    }
  }
}

}  // namespace mpf::replicator
