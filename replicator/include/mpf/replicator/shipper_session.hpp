// The shipper's session rules as a pure state machine (no socket, no database, no clock): one
// object per connection attempt. It takes events (connected, disconnected, a message from the
// peer, time) and returns the actions the pump carries out in order (use the agreed version, seek
// the log, record an acknowledged position for trim, end the session with a reason). Batches are
// numbered and counted in flight here; the pump reads the log when can_send() and encodes.
// The same class runs in the daemon (Shipper::run) and in the deterministic simulation.
//
// Rules it holds by construction:
// - the log is read from exactly the position the peer's Welcome says it applied (never from
//   what this side believes was acknowledged);
// - kAcked (trim, peer_ack) only ever carries a position the peer sent in this session's Welcome
//   or Ack: nothing is trimmed that the peer has not reported committed;
// - at most `window` batches are unacknowledged;
// - no acknowledgement for longer than the bytes in flight need at the slowest supported link
//   (plus a second, at least 2 s, at most ack_timeout) ends the session.
//
// Protocol with the pump: when carrying out an action fails (the version cannot be used, the
// seek fails), the pump calls fail() and ignores the actions after it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>
#include <mpf/replicator/change.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::replicator {

struct ShipperAction {
  enum class Kind {
    kUseVersion,        // the encoder uses `version` from now on
    kSeek,              // the log is read from just after `position`
    kStreaming,         // the session streams from `position` at `version` (LinkUp)
    kAcked,             // the peer committed everything up to `position`; `transactions` more
    kRecordApplyError,  // the peer's apply stopped at `position` with `reason`
    kEnd,               // the session is over: `reason`, retry after `backoff`
  };
  Kind kind = Kind::kEnd;
  Position position;
  uint32_t version = 0;
  uint64_t transactions = 0;
  std::string reason;
  Duration backoff{};
  bool was_streaming = false;  // kEnd: the link went down (not a failed attempt)
  // kEnd: a log event ("PeerRefused", ...) to log with `reason`, at error level when `error`
  // (else warning); `last_error` for status when not empty.
  std::string event;
  bool error = false;
  std::string last_error;
};

struct ShipperSessionOptions {
  int window = 4;
  uint32_t max_version = wire::kProtocolVersion;
  Duration handshake_timeout = std::chrono::seconds(3);
  Duration ack_timeout = std::chrono::seconds(60);
  Duration retry_interval = std::chrono::milliseconds(250);
};

class ShipperSession {
 public:
  using Actions = std::vector<ShipperAction>;
  enum class State { kConnecting, kHandshake, kStreaming, kEnded };

  // 12,000 bytes/s: a little under the 128 kbit/s the product supports, TCP/IP overhead included.
  static constexpr size_t kSlowestLinkBytesPerSecond = 12'000;

  ShipperSession(ShipperSessionOptions options, uint64_t session_id)
      : o_(options), id_(session_id) {}

  uint64_t id() const { return id_; }
  State state() const { return state_; }
  bool ended() const { return state_ == State::kEnded; }
  int inflight() const { return static_cast<int>(inflight_.size()); }
  bool can_send() const { return state_ == State::kStreaming && inflight() < o_.window; }
  Position acked() const { return acked_; }

  // The transport connected (the Hello was sent before: ZeroMQ queues it).
  Actions on_connected(TimePoint now);
  Actions on_disconnected();
  // The security handshake failed: `auth` when the peer refused this node's key.
  Actions on_handshake_failed(bool auth);
  // A message from the peer (decoded); an undecodable frame is fail().
  Actions on_message(const wire::Message& m, TimePoint now);
  // Handshake deadline and acknowledgement stall.
  Actions on_tick(TimePoint now);
  // Something the pump did for this session failed: end it.
  Actions fail(const std::string& why, Duration backoff);

  // The next batch to send, numbered. REQUIRES: can_send(), chunks not empty.
  wire::Batch make_batch(std::vector<TxChunk> chunks);
  // The batch made last went out as `frame_bytes` bytes holding `transactions` whole ones.
  void sent(size_t frame_bytes, uint64_t transactions, TimePoint now);

 private:
  Actions end(const std::string& why, Duration backoff, std::string event = {}, bool error = false,
              std::string last_error = {});

  ShipperSessionOptions o_;
  uint64_t id_;
  State state_ = State::kConnecting;
  TimePoint handshake_deadline_{};
  TimePoint last_ack_{};
  struct InFlight {
    size_t bytes = 0;
    uint64_t transactions = 0;
  };
  std::deque<InFlight> inflight_;
  uint64_t next_seq_ = 1;
  uint64_t acked_txs_ = 0;  // acknowledged transactions not yet reported in a kAcked
  Position acked_;
};

}  // namespace mpf::replicator
