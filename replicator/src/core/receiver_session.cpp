// The receiver's session rules (receiver_session.hpp). The frame rules themselves are in
// PROTOCOL.md; why groups exist is in receiver.cpp's notes.
#include <mpf/replicator/receiver_session.hpp>

namespace mpf::replicator {
namespace {

bool transient(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kUnknownOutcome;
}

ReceiverAction make(ReceiverAction::Kind kind) {
  ReceiverAction a;
  a.kind = kind;
  return a;
}

ReceiverAction log(ReceiverAction::Level level, std::string text, bool error = false) {
  ReceiverAction a;
  a.kind = ReceiverAction::Kind::kLog;
  a.level = level;
  a.reason = std::move(text);
  a.error = error;
  return a;
}

}  // namespace

void ReceiverSession::send(Actions& out, wire::Message m) {
  ReceiverAction a = make(ReceiverAction::Kind::kSend);
  a.routing_id = session_->routing_id;
  a.message = std::move(m);
  out.push_back(std::move(a));
}

void ReceiverSession::clear_group() {
  group_.clear();
  group_seqs_.clear();
  group_changes_ = 0;
}

void ReceiverSession::end(Actions& out, const std::string& why, bool close_applier) {
  if (session_ && !why.empty()) send(out, wire::Refuse{session_->id, why});
  out.push_back(
      make(close_applier ? ReceiverAction::Kind::kCloseApplier : ReceiverAction::Kind::kRollback));
  session_.reset();
  clear_group();
  phase_ = Phase::kNone;
}

ReceiverSession::Actions ReceiverSession::on_hello(const std::string& routing_id,
                                                   const wire::Hello& hello, uint32_t version,
                                                   const std::string& refusal) {
  Actions out;
  if (!refusal.empty()) {  // the current session (if any) goes on: a stranger cannot end it
    ReceiverAction a = make(ReceiverAction::Kind::kSend);
    a.routing_id = routing_id;
    a.message = wire::Refuse{hello.session_id, refusal};
    out.push_back(std::move(a));
    return out;
  }
  if (session_) out.push_back(make(ReceiverAction::Kind::kRollback));  // the peer reconnected
  clear_group();
  Session s;
  s.routing_id = routing_id;
  s.id = hello.session_id;
  s.version = version;
  s.origin = hello.origin;
  for (size_t i = 0; i < hello.tables.size(); ++i) {
    TableDef d;
    d.table_id = static_cast<int32_t>(i);
    d.relation = hello.tables[i].relation;
    d.columns = hello.tables[i].columns;
    d.key_columns = hello.tables[i].key_columns;
    s.tables.push_back(std::move(d));
  }
  session_ = std::move(s);
  phase_ = Phase::kBinding;
  ReceiverAction bind = make(ReceiverAction::Kind::kBind);
  bind.origin = session_->origin;
  bind.tables = session_->tables;
  out.push_back(std::move(bind));
  return out;
}

ReceiverSession::Actions ReceiverSession::on_bound(const Status& s) {
  Actions out;
  if (phase_ == Phase::kRebinding) {  // a retry after a lost connection
    if (s) {
      phase_ = Phase::kApplying;
      ReceiverAction a = make(ReceiverAction::Kind::kApply);
      a.group = &group_;
      out.push_back(std::move(a));
      return out;
    }
    return on_applied(s, retry_at_);  // counts as another failed attempt
  }
  if (phase_ != Phase::kBinding || !session_) return out;
  if (!s) {
    out.push_back(log(ReceiverAction::Level::kError,
                      "HelloRefused from=" + session_->origin + " reason=\"" + s.message() + "\"",
                      true));
    // The applier is in doubt now (its connection lost, or bound to nothing): this session ends
    // with it, so none of its batches can reach the applier.
    end(out, s.message(), transient(s));
    return out;
  }
  phase_ = Phase::kReadingApplied;
  out.push_back(make(ReceiverAction::Kind::kReadApplied));
  return out;
}

ReceiverSession::Actions ReceiverSession::on_applied_position(const Result<Position>& r) {
  Actions out;
  if (phase_ != Phase::kReadingApplied || !session_) return out;
  if (!r) {
    out.push_back(
        log(ReceiverAction::Level::kError,
            "HelloRefused from=" + session_->origin + " reason=\"" + r.status().message() + "\"",
            true));
    end(out, r.status().message(), true);
    return out;
  }
  phase_ = Phase::kStreaming;
  ReceiverAction opened = make(ReceiverAction::Kind::kOpened);
  opened.routing_id = session_->routing_id;
  opened.origin = session_->origin;
  opened.position = *r;
  out.push_back(std::move(opened));
  send(out, wire::Welcome{session_->version, o_.node, session_->id, *r});
  return out;
}

ReceiverSession::Actions ReceiverSession::on_undecodable(const std::string& routing_id,
                                                         const std::string& why) {
  Actions out;
  ReceiverAction d = make(ReceiverAction::Kind::kDrop);
  d.reason = why;
  out.push_back(std::move(d));
  if (session_ && session_->routing_id == routing_id) end(out, "undecodable frame", false);
  return out;
}

ReceiverSession::Actions ReceiverSession::on_unexpected(const std::string& what) {
  ReceiverAction d = make(ReceiverAction::Kind::kDrop);
  d.reason = "unexpected " + what + " message";
  return {std::move(d)};
}

bool ReceiverSession::joins_group(const std::string& routing_id, const wire::Batch& batch,
                                  uint32_t frame_version) const {
  return session_ && phase_ == Phase::kStreaming && !session_->stuck && !group_seqs_.empty() &&
         group_changes_ < kMaxGroupChanges && session_->routing_id == routing_id &&
         batch.session_id == session_->id && batch.seq == session_->expected_seq &&
         frame_version == session_->version;
}

ReceiverSession::Actions ReceiverSession::on_batch(const std::string& routing_id, wire::Batch batch,
                                                   uint32_t frame_version, bool paused) {
  Actions out;
  if (!session_ || phase_ != Phase::kStreaming || session_->routing_id != routing_id ||
      batch.session_id != session_->id) {
    ReceiverAction d = make(ReceiverAction::Kind::kDrop);
    d.reason = "batch of an unknown session";
    out.push_back(std::move(d));
    return out;
  }
  if (paused) {  // the node left the pair: the peer resends after `join`
    end(out, "node \"" + o_.node + "\" is standalone", false);
    return out;
  }
  // A batch must be in the version the session agreed on (PROTOCOL.md §6).
  if (frame_version != session_->version) {
    const std::string why = "batch frame of protocol version " + std::to_string(frame_version) +
                            " in a session that agreed on " + std::to_string(session_->version);
    ReceiverAction d = make(ReceiverAction::Kind::kDrop);
    d.reason = why;
    out.push_back(std::move(d));
    end(out, why, false);
    return out;
  }
  if (batch.seq != session_->expected_seq) {
    ReceiverAction d = make(ReceiverAction::Kind::kDrop);
    d.reason = "batch " + std::to_string(batch.seq) + " out of order, expected " +
               std::to_string(session_->expected_seq);
    out.push_back(std::move(d));
    end(out, "batch out of order", false);
    return out;
  }
  ++session_->expected_seq;
  if (session_->stuck) return out;          // the sender ends the session on ApplyError
  if (group_seqs_.empty()) group_.clear();  // the last group's chunks, kept for its actions
  group_seqs_.push_back(batch.seq);
  for (auto& c : batch.chunks) {
    group_changes_ += c.changes.size();
    group_.push_back(std::move(c));
  }
  return out;
}

ReceiverSession::Actions ReceiverSession::end_group(TimePoint) {
  Actions out;
  if (!session_ || phase_ != Phase::kStreaming || group_seqs_.empty()) return out;
  phase_ = Phase::kApplying;
  attempts_ = 0;
  group_mid_split_ = session_->split_open;
  ReceiverAction a = make(ReceiverAction::Kind::kApply);
  a.group = &group_;
  out.push_back(std::move(a));
  return out;
}

ReceiverSession::Actions ReceiverSession::on_applied(const Result<Position>& r, TimePoint now,
                                                     Position failed_at) {
  Actions out;
  if ((phase_ != Phase::kApplying && phase_ != Phase::kRebinding) || !session_) return out;
  if (r) {
    for (uint64_t seq : group_seqs_) send(out, wire::Ack{session_->id, seq, *r});
    session_->split_open = !group_.empty() && !group_.back().last;
    ReceiverAction a = make(ReceiverAction::Kind::kApplied);
    a.group = &group_;
    a.position = *r;
    a.routing_id = session_->routing_id;
    out.push_back(std::move(a));
    // The group stays readable through the actions above until the next event clears it.
    group_seqs_.clear();
    group_changes_ = 0;
    phase_ = Phase::kStreaming;
    return out;
  }
  const Status& s = r.status();
  if (transient(s)) {
    // The database went away (restart, failover of the database): reconnect and try the same
    // group again a few times, unless a split transaction was open (its earlier parts are gone
    // with the connection: the sender must resend from the applied position).
    if (!group_mid_split_ && attempts_ < o_.max_retries) {
      ++attempts_;
      out.push_back(log(ReceiverAction::Level::kWarn, "ApplyRetry origin=" + session_->origin +
                                                          " attempt=" + std::to_string(attempts_) +
                                                          " reason=\"" + s.message() + "\""));
      out.push_back(make(ReceiverAction::Kind::kCloseApplier));
      phase_ = Phase::kRetryWait;
      retry_at_ = now + o_.retry_delay;
      return out;
    }
    out.push_back(log(
        ReceiverAction::Level::kWarn,
        "ApplyUnavailable origin=" + session_->origin + " reason=\"" + s.message() + "\"", true));
    end(out, "database unavailable: " + s.message(), true);
    return out;
  }
  // Exactly the transaction apply failed on (#12): a skip must not leave out a good one.
  const Position at = !failed_at.is_zero() ? failed_at
                      : group_.empty()     ? Position{}
                                           : group_.front().position;
  out.push_back(log(ReceiverAction::Level::kError,
                    "ApplyStopped origin=" + session_->origin + " error=\"" + s.message() + "\"",
                    true));
  send(out, wire::ApplyError{session_->id, at, s.message()});
  ReceiverAction stopped = make(ReceiverAction::Kind::kApplyStopped);
  stopped.position = at;
  out.push_back(std::move(stopped));
  session_->stuck = true;
  session_->split_open = false;  // apply rolled the group back
  clear_group();
  phase_ = Phase::kStreaming;
  return out;
}

ReceiverSession::Actions ReceiverSession::on_tick(TimePoint now) {
  Actions out;
  if (phase_ == Phase::kRetryWait && now >= retry_at_) {
    phase_ = Phase::kRebinding;
    ReceiverAction bind = make(ReceiverAction::Kind::kBind);
    bind.origin = session_->origin;
    bind.tables = session_->tables;
    out.push_back(std::move(bind));
  }
  return out;
}

ReceiverSession::Actions ReceiverSession::on_hold() {
  Actions out;
  if (session_) {
    end(out, "node \"" + o_.node + "\" is being resynced", true);
  } else {
    out.push_back(make(ReceiverAction::Kind::kCloseApplier));
  }
  return out;
}

}  // namespace mpf::replicator
