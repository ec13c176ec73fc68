#include <algorithm>
#include <cstdlib>

#include <mpf/core/status.hpp>
#include <mpf/heartbeat/peer_monitor.hpp>

namespace mpf::heartbeat {

std::string_view to_string(PeerState s) {
  switch (s) {
    case PeerState::kUnknown:
      return "unknown";
    case PeerState::kUp:
      return "up";
    case PeerState::kServiceDown:
      return "service_down";
    case PeerState::kUnreachable:
      return "unreachable";
  }
  return "unknown";
}

std::string_view to_string(WitnessState s) {
  switch (s) {
    case WitnessState::kNone:
      return "none";
    case WitnessState::kUnknown:
      return "unknown";
    case WitnessState::kReachable:
      return "reachable";
    case WitnessState::kUnreachable:
      return "unreachable";
  }
  return "unknown";
}

namespace {

void change_witness(MonitorSnapshot& snap, WitnessState to, std::vector<MonitorAction>& out) {
  if (snap.witness == to) return;
  MonitorAction a{MonitorAction::Kind::kWitnessChanged};
  a.witness_from = snap.witness;
  a.witness_to = to;
  snap.witness = to;
  out.push_back(a);
}

}  // namespace

PeerMonitor::PeerMonitor(MonitorOptions options) : options_(options) {
  MPF_ASSERT(options_.interval > Duration::zero(), "heartbeat interval must be positive");
  MPF_ASSERT(options_.timeout > Duration::zero(), "heartbeat timeout must be positive");
  snap_.witness = options_.has_witness ? WitnessState::kUnknown : WitnessState::kNone;
}

void PeerMonitor::set_has_witness(bool has_witness) {
  if (options_.has_witness == has_witness) return;
  options_.has_witness = has_witness;
  snap_.witness = has_witness ? WitnessState::kUnknown : WitnessState::kNone;
}

void PeerMonitor::set_state(PeerState to, std::vector<MonitorAction>& out) {
  if (snap_.peer_state == to) return;
  MonitorAction a{MonitorAction::Kind::kPeerStateChanged};
  a.from = snap_.peer_state;
  a.to = to;
  snap_.peer_state = to;
  out.push_back(a);
}

void PeerMonitor::send_soon() { next_send_at_.reset(); }

TimePoint PeerMonitor::next_deadline() const {
  if (!next_send_at_) return TimePoint{};  // now
  TimePoint t = *next_send_at_;
  if (watch_from_ && *watch_from_ + options_.timeout < t) t = *watch_from_ + options_.timeout;
  return t;
}

std::vector<MonitorAction> PeerMonitor::tick(TimePoint now) {
  std::vector<MonitorAction> out;
  // The answer deadline first: a heartbeat due now must not hide the one that went unanswered.
  if (watch_from_ && now - *watch_from_ >= options_.timeout) {
    // The next heartbeat sent starts the next deadline: one miss per max(interval, timeout).
    watch_from_.reset();
    ++snap_.missed;
    MonitorAction m{MonitorAction::Kind::kHeartbeatMissed};
    m.seq = watch_seq_;
    m.missed = snap_.missed;
    out.push_back(m);
    if (!pinging_) {
      pinging_ = true;
      answers_at_ping_ = answers_;
      out.push_back({MonitorAction::Kind::kPingPeer});
      if (options_.has_witness) {
        witness_ping_sent_at_ = now;
        out.push_back({MonitorAction::Kind::kPingWitness});
      }
    }
  }
  if (!next_send_at_ || now >= *next_send_at_) {
    ++last_sent_seq_;
    sent_at_[last_sent_seq_ % sent_at_.size()] = {last_sent_seq_, now};
    if (!watch_from_) {
      watch_from_ = now;
      watch_seq_ = last_sent_seq_;
    }
    next_send_at_ = now + options_.interval;
    ++snap_.heartbeats_sent;
    MonitorAction s{MonitorAction::Kind::kSendHeartbeat};
    s.seq = last_sent_seq_;
    out.push_back(s);
  }
  return out;
}

std::vector<MonitorAction> PeerMonitor::on_answer(const HeartbeatAnswer& answer, TimePoint now) {
  std::vector<MonitorAction> out;
  // Answers to heartbeats never sent, or older than one already answered, prove nothing new
  // (a replayed or duplicated frame).
  if (answer.seq == 0 || answer.seq > last_sent_seq_ || answer.seq <= last_answered_seq_) {
    return out;
  }
  last_answered_seq_ = answer.seq;
  ++answers_;
  snap_.last_answer_at = now;
  snap_.missed = 0;
  if (const auto& [seq, at] = sent_at_[answer.seq % sent_at_.size()]; seq == answer.seq) {
    if (!snap_.last_round_trip_sent_at || at > *snap_.last_round_trip_sent_at) {
      snap_.last_round_trip_sent_at = at;
    }
  }
  // The watched heartbeat, or a newer one, was answered: the deadline now runs from the first
  // heartbeat sent after the answered one, if any is out yet.
  if (watch_from_ && answer.seq >= watch_seq_) {
    watch_from_.reset();
    const uint64_t next = answer.seq + 1;
    if (const auto& [seq, at] = sent_at_[next % sent_at_.size()];
        next <= last_sent_seq_ && seq == next) {
      watch_from_ = at;
      watch_seq_ = next;
    }
  }
  // The witness's verdict belongs to the silence it was pinged in. Kept, a "reachable" from an
  // earlier partition would stand, in the next one, until this one's witness ping returns, and a
  // node cut off from everyone could fail over on it as soon as its peer ping timed out.
  if (options_.has_witness) change_witness(snap_, WitnessState::kUnknown, out);
  if (answer.seq == last_sent_seq_) {
    // Skew from the newest answer only: a late answer's round trip is not this one's.
    const int64_t midpoint =
        answer.sent_wall_us + (answer.received_wall_us - answer.sent_wall_us) / 2;
    const int64_t rtt_us = answer.received_wall_us - answer.sent_wall_us;
    // An estimate is off by up to half its round trip: of the last few, the one with the
    // shortest round trip is reported (as NTP filters), so a heartbeat that sat in a queue
    // behind a cut link does not show as skew.
    const size_t k = skew_samples_.size();
    skew_samples_[next_sample_ % k] = {rtt_us, answer.peer_wall_us - midpoint};
    ++next_sample_;
    // Oldest to newest, `<=`: on equal round trips the newest estimate wins (clocks move).
    const size_t n = std::min(next_sample_, k);
    const std::pair<int64_t, int64_t>* best = nullptr;
    for (size_t i = next_sample_ - n; i < next_sample_; ++i) {
      const auto& sample = skew_samples_[i % k];
      if (!best || sample.first <= best->first) best = &sample;
    }
    const int64_t skew_ms = best->second / 1000;
    snap_.clock_skew_ms = skew_ms;
    snap_.rtt = std::chrono::microseconds(rtt_us);
    const bool high = std::llabs(skew_ms) > options_.max_skew.count();
    if (high != snap_.skew_high) {
      snap_.skew_high = high;
      MonitorAction k{high ? MonitorAction::Kind::kSkewHigh : MonitorAction::Kind::kSkewNormal};
      k.skew_ms = skew_ms;
      out.push_back(k);
    }
  }
  set_state(PeerState::kUp, out);
  return out;
}

std::vector<MonitorAction> PeerMonitor::on_ping_result(bool replied, TimePoint now) {
  (void)now;
  std::vector<MonitorAction> out;
  pinging_ = false;
  snap_.last_ping_reply = replied;
  // An answer that arrived while the ping was out settles it: the service is up. Checked by
  // count, not by `missed`: once the next heartbeat is missed too (the driver stalled, or the
  // ping outlived a heartbeat round) the old result would pass for this silence's verdict
  // (found by the deterministic simulation, tests/sim).
  if (snap_.missed == 0 || answers_ != answers_at_ping_) return out;
  set_state(replied ? PeerState::kServiceDown : PeerState::kUnreachable, out);
  return out;
}

std::vector<MonitorAction> PeerMonitor::on_witness_result(bool replied, TimePoint now) {
  (void)now;
  std::vector<MonitorAction> out;
  if (!options_.has_witness) return out;
  // Reaching the witness is worth recording whatever the peer did meanwhile (self-fencing).
  if (replied && witness_ping_sent_at_) snap_.last_witness_reply_sent_at = witness_ping_sent_at_;
  // The peer answered while the witness ping was out: that silence is over (as for the peer's
  // own ping); the reply must not carry into the next one.
  if (snap_.missed == 0 || answers_ != answers_at_ping_) return out;
  change_witness(snap_, replied ? WitnessState::kReachable : WitnessState::kUnreachable, out);
  return out;
}

}  // namespace mpf::heartbeat
