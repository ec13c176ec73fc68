// The receiver's session rules as a pure state machine (no socket, no database, no clock): it takes
// events (a Hello checked by the pump, a batch, the applier's answers, time) and returns the
// actions the pump carries out in order (send, bind, read the applied position, apply a group,
// roll back, close the applier). As Beast's basic_parser::put owns no socket, so the same rules
// run in the daemon (Receiver::apply_loop) and in the deterministic simulation (tests/sim/).
//
// Invariants it holds by construction:
// - kApply is emitted only for a session whose bind and applied-position read succeeded, and
//   whose applier has not been closed since: any applier failure ends the session, so a batch of
//   a session whose database connection was lost is dropped, never applied through a dead or
//   missing applier (the SIGSEGV of issue #17).
// - An Ack names the position the applier returned after its commit (acknowledged = durable).
// - Batches must carry the session's id, its protocol version and consecutive numbers; anything
//   else ends the session (the sender resends from the applied position).
//
// Protocol with the pump: every action that asks something of the applier (kBind, kReadApplied,
// kApply) must be answered with the matching on_*() call before any other event.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::replicator {

struct ReceiverAction {
  enum class Kind {
    kSend,          // send `message` to `routing_id`
    kBind,          // applier.bind(origin, tables) -> on_bound()
    kReadApplied,   // applier.applied_position() -> on_applied_position()
    kApply,         // applier.apply(*group) -> on_applied()
    kRollback,      // applier.rollback()
    kCloseApplier,  // applier.close()
    kDrop,          // a frame was dropped: count it; `reason` (log rate-limited)
    kOpened,        // a session is open: fresh codecs for it; `position` is the applied position
    kApplied,       // *group committed up to `position` (stats)
    kApplyStopped,  // apply stopped on the transaction at `position` (ApplyError sent; stats)
    kLog,           // `reason` is a log line at `level`
  };
  enum class Level { kDebug, kInfo, kWarn, kError };

  Kind kind = Kind::kLog;
  std::string routing_id;
  wire::Message message;
  std::string origin;
  std::vector<TableDef> tables;
  const std::vector<TxChunk>* group = nullptr;  // kApply, kApplied: valid until the next event
  Position position;
  std::string reason;
  Level level = Level::kInfo;
  bool error = false;  // kLog: also the receiver's last_error
};

struct ReceiverSessionOptions {
  std::string node;  // this node (the target)
  // After a lost database connection, the same group is retried this often over `retry_delay`
  // steps (unless a split transaction was open: its earlier parts are gone).
  int max_retries = 8;
  Duration retry_delay = std::chrono::milliseconds(250);
};

class ReceiverSession {
 public:
  using Actions = std::vector<ReceiverAction>;

  explicit ReceiverSession(ReceiverSessionOptions options) : o_(std::move(options)) {}

  // A Hello the pump decoded and checked (peer, target, versions, catalog, paused, held):
  // `refusal` empty means accepted at `version`. An accepted Hello replaces the current session.
  Actions on_hello(const std::string& routing_id, const wire::Hello& hello, uint32_t version,
                   const std::string& refusal);
  Actions on_bound(const Status& s);
  Actions on_applied_position(const Result<Position>& r);

  // A frame that did not decode.
  Actions on_undecodable(const std::string& routing_id, const std::string& why);
  // Any message that is neither a Hello nor a Batch.
  Actions on_unexpected(const std::string& what);

  // True when this batch continues the group being gathered (same sender, session, version, the
  // next number) and the group has room: the pump then passes it to on_batch too.
  bool joins_group(const std::string& routing_id, const wire::Batch& batch,
                   uint32_t frame_version) const;
  // A batch (decoded with the current session's decoder when from its sender). Adds it to the
  // group, or ends the session. `paused`: this node is standalone.
  Actions on_batch(const std::string& routing_id, wire::Batch batch, uint32_t frame_version,
                   bool paused);
  // The group is complete (nothing more queued, or full): emits its kApply.
  Actions end_group(TimePoint now);
  // `failed_at`: on an apply error, the transaction it stopped on (Applier::failed_position()).
  Actions on_applied(const Result<Position>& r, TimePoint now, Position failed_at = {});

  // Time passes: a retry after a lost connection comes due.
  Actions on_tick(TimePoint now);
  // Resync takes the database: refuse and end the session, close the applier.
  Actions on_hold();

  bool has_session() const { return session_.has_value(); }
  const std::string* routing_id() const { return session_ ? &session_->routing_id : nullptr; }
  uint64_t session_id() const { return session_ ? session_->id : 0; }
  // A retry is pending (the pump waits for it and reads no frames meanwhile, keeping their order).
  std::optional<TimePoint> retry_at() const {
    return phase_ == Phase::kRetryWait ? std::optional<TimePoint>(retry_at_) : std::nullopt;
  }
  size_t group_changes() const { return group_changes_; }

  // At most this many changes in one group made of queued batches.
  static constexpr size_t kMaxGroupChanges = 8000;

 private:
  enum class Phase {
    kNone,
    kBinding,
    kReadingApplied,
    kStreaming,
    kApplying,
    kRetryWait,
    kRebinding
  };
  struct Session {
    std::string routing_id;
    uint64_t id = 0;
    uint32_t version = 0;
    uint64_t expected_seq = 1;
    bool stuck = false;       // apply stopped with an error: batches are ignored
    bool split_open = false;  // a split transaction's earlier parts are in the applier
    std::string origin;
    std::vector<TableDef> tables;
  };

  // Ends the session: refuses it with `why` (unless empty), and rolls back or closes the applier.
  void end(Actions& out, const std::string& why, bool close_applier);
  void send(Actions& out, wire::Message m);
  void clear_group();

  ReceiverSessionOptions o_;
  Phase phase_ = Phase::kNone;
  std::optional<Session> session_;
  std::vector<TxChunk> group_;
  std::vector<uint64_t> group_seqs_;
  size_t group_changes_ = 0;
  bool group_mid_split_ = false;  // the group began inside a split transaction
  int attempts_ = 0;
  TimePoint retry_at_{};
  Status last_failure_;
};

}  // namespace mpf::replicator
