// The shipper's session rules (shipper_session.hpp).
#include <algorithm>
#include <utility>

#include <mpf/replicator/shipper_session.hpp>

namespace mpf::replicator {

ShipperSession::Actions ShipperSession::end(const std::string& why, Duration backoff,
                                            std::string event, bool error, std::string last_error) {
  if (state_ == State::kEnded) return {};
  ShipperAction a;
  a.kind = ShipperAction::Kind::kEnd;
  a.reason = why;
  a.backoff = backoff;
  a.was_streaming = state_ == State::kStreaming;
  a.event = std::move(event);
  a.error = error;
  a.last_error = std::move(last_error);
  state_ = State::kEnded;
  return {std::move(a)};
}

ShipperSession::Actions ShipperSession::fail(const std::string& why, Duration backoff) {
  return end(why, backoff);
}

ShipperSession::Actions ShipperSession::on_connected(TimePoint now) {
  if (state_ == State::kConnecting) {
    state_ = State::kHandshake;
    handshake_deadline_ = now + o_.handshake_timeout;
  }
  return {};
}

ShipperSession::Actions ShipperSession::on_disconnected() {
  return end("disconnected", o_.retry_interval);
}

ShipperSession::Actions ShipperSession::on_handshake_failed(bool auth) {
  const std::string why =
      auth ? "peer refused this node's key (check security.* on both nodes)"
           : "security handshake with the peer failed (security.mode or keys differ)";
  return end(why, std::chrono::seconds(2), "LinkRefused", true, why);
}

ShipperSession::Actions ShipperSession::on_message(const wire::Message& m, TimePoint now) {
  if (state_ == State::kEnded) return {};
  if (const auto* w = std::get_if<wire::Welcome>(&m)) {
    if (w->session_id != id_ || state_ == State::kStreaming) return {};  // stale
    if (w->version > o_.max_version || w->version < wire::kMinProtocolVersion) {
      const std::string why = "protocol version " + std::to_string(w->version) +
                              " chosen by the peer was not offered (" +
                              std::to_string(wire::kMinProtocolVersion) + " to " +
                              std::to_string(o_.max_version) + ")";
      return end(why, std::chrono::seconds(2), "WelcomeRefused", true, why);
    }
    state_ = State::kStreaming;
    last_ack_ = now;
    acked_ = w->applied;
    Actions out(4);
    out[0].kind = ShipperAction::Kind::kUseVersion;
    out[0].version = w->version;
    out[1].kind = ShipperAction::Kind::kSeek;
    out[1].position = w->applied;
    // The peer's applied position is acknowledged too: trim goes up to it.
    out[2].kind = ShipperAction::Kind::kAcked;
    out[2].position = w->applied;
    out[3].kind = ShipperAction::Kind::kStreaming;
    out[3].position = w->applied;
    out[3].version = w->version;
    return out;
  }
  if (const auto* a = std::get_if<wire::Ack>(&m)) {
    if (a->session_id != id_ || state_ != State::kStreaming) return {};
    if (!inflight_.empty()) {
      acked_txs_ += inflight_.front().transactions;
      inflight_.pop_front();
    }
    last_ack_ = now;
    if (a->position <= acked_) return {};
    acked_ = a->position;
    ShipperAction out;
    out.kind = ShipperAction::Kind::kAcked;
    out.position = acked_;
    out.transactions = std::exchange(acked_txs_, 0);
    return {std::move(out)};
  }
  if (const auto* r = std::get_if<wire::Refuse>(&m)) {
    // The peer's database being down, or a broken stream, is transient: retry soon.
    const bool transient = r->reason.rfind("database unavailable", 0) == 0 ||
                           r->reason == "batch out of order" || r->reason == "undecodable frame";
    return end(r->reason, transient ? o_.retry_interval : Duration(std::chrono::seconds(2)),
               "PeerRefused", !transient, "peer refused: " + r->reason);
  }
  if (const auto* e = std::get_if<wire::ApplyError>(&m)) {
    if (e->session_id != id_) return {};
    ShipperAction rec;
    rec.kind = ShipperAction::Kind::kRecordApplyError;
    rec.position = e->position;
    rec.reason = e->message;
    Actions out{std::move(rec)};
    for (auto& a : end("apply error on peer", std::chrono::seconds(5))) {
      out.push_back(std::move(a));
    }
    return out;
  }
  return fail("unexpected message from the peer (a Hello or a Batch)", o_.retry_interval);
}

ShipperSession::Actions ShipperSession::on_tick(TimePoint now) {
  if (state_ == State::kHandshake && now > handshake_deadline_) {
    return end("no welcome from peer", o_.retry_interval);
  }
  if (state_ != State::kStreaming || inflight_.empty()) return {};
  // No acknowledgement for longer than the bytes in flight need at the slowest link we support
  // (plus a second): the link is cut. Reconnecting then, rather than waiting for TCP's
  // retransmission backoff, starts the drain soon after the link heals; on a 128 kbit/s link the
  // limit grows with what is queued, so a slow link is not mistaken for a dead one.
  size_t bytes = 0;
  for (const auto& f : inflight_) bytes += f.bytes;
  const Duration limit = std::clamp<Duration>(
      std::chrono::seconds(1) +
          std::chrono::milliseconds(bytes * 1000 / kSlowestLinkBytesPerSecond),
      std::chrono::seconds(2), std::max<Duration>(o_.ack_timeout, std::chrono::seconds(2)));
  if (now - last_ack_ > limit) return end("acknowledgement timeout", o_.retry_interval);
  return {};
}

wire::Batch ShipperSession::make_batch(std::vector<TxChunk> chunks) {
  wire::Batch b;
  b.session_id = id_;
  b.seq = next_seq_++;
  b.chunks = std::move(chunks);
  return b;
}

void ShipperSession::sent(size_t frame_bytes, uint64_t transactions, TimePoint now) {
  if (inflight_.empty()) last_ack_ = now;  // the stall clock starts
  inflight_.push_back({frame_bytes, transactions});
}

}  // namespace mpf::replicator
