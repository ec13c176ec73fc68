// NOTES: how the narrowing goes, and why it always ends.
//
// The table is a list of disjoint key ranges ("parts") still to compare, in key order; at the
// start one part covers everything. For each part the core learns a summary from each side
// (row count, xor of row hashes, last key hashed), always local first: a part whose local summary
// is incomplete (more than batch_rows rows) is cut at the local's last hashed key before the peer
// is asked, so a scan costs one local query and 1/max_ranges of a peer round trip per
// batch_rows rows. A peer summary can be incomplete too (the peer has many rows this node
// lacks): the part is cut at the peer's last key the same way. A part whose two complete
// summaries agree is settled; one that differs is split into `fanout` buckets of equal row count
// on the side holding more rows (one request answers with the buckets' summaries, so each level
// costs one round trip), or, once small, both sides list (key, row hash) and the lists are
// compared. Every cut or split leaves parts with strictly fewer rows on the side it was made
// on, so on data that stands still the narrowing ends. On a live database a range may change
// between two queries; a listing that no longer fits is summarized again rather than trusted.
#include <map>

#include <mpf/core/status.hpp>
#include <mpf/server/verify/narrower.hpp>

namespace mpf::server::verify {

const char* to_string(Difference::Kind kind) {
  switch (kind) {
    case Difference::Kind::kMissingHere:
      return "missing_here";
    case Difference::Kind::kMissingThere:
      return "missing_there";
    case Difference::Kind::kDifferent:
      return "different";
  }
  return "?";
}

Narrower::Narrower(NarrowerOptions options) : options_(options) {
  MPF_ASSERT(options_.leaf_rows >= 2 && options_.batch_rows >= options_.leaf_rows,
             "verify: batch_rows >= leaf_rows >= 2");
  MPF_ASSERT(options_.fanout >= 2 && options_.max_ranges >= 1, "verify: fanout, max_ranges");
  parts_.push_back(Part{});
}

Narrower::Known Narrower::known_of(const Summary& s) {
  Known k;
  k.complete = s.complete;
  for (const auto& b : s.buckets) {
    k.count += b.count;
    k.hash ^= b.hash;
  }
  if (!s.buckets.empty()) k.last = s.buckets.back().last;
  return k;
}

size_t Narrower::awaiting_peer() const {
  size_t n = 0;
  for (const auto& p : parts_) {
    if (p.state == Part::State::kSummaries && p.local && !p.peer) ++n;
  }
  return n;
}

Narrower::Step Narrower::next() {
  if (has_outstanding_) return outstanding_;
  Step step;
  if (parts_.empty()) return step;
  const size_t max = options_.max_ranges;
  std::vector<PartIt> chosen;
  auto take_rows = [&](Side side) {
    // Listings are what costs bytes on the link: about batch_rows keys per request at most.
    uint64_t expected = 0;
    for (auto it = parts_.begin(); it != parts_.end() && chosen.size() < max; ++it) {
      if (it->state != Part::State::kRows) continue;
      if ((side == Side::kLocal ? it->local_rows : it->peer_rows).has_value()) continue;
      const uint64_t count = side_of(*it, side)->count;
      if (!chosen.empty() && expected + count > options_.batch_rows) break;
      expected += count;
      step.rows.push_back({it->range, options_.batch_rows});
      chosen.push_back(it);
    }
    if (chosen.empty()) return false;
    step.kind = Step::Kind::kRows;
    step.side = side;
    return true;
  };
  auto take_summaries = [&](Side side) {
    const bool peer_queue_full = awaiting_peer() >= max;
    for (auto it = parts_.begin(); it != parts_.end() && chosen.size() < max; ++it) {
      if (it->state == Part::State::kSplit && it->split_side == side) {
        step.summarize.push_back({it->range, options_.batch_rows, options_.fanout});
      } else if (it->state == Part::State::kSummaries && side == Side::kLocal && !it->local) {
        // The tail is the unscanned rest of the table: read ahead only as far as the peer keeps up.
        if (is_tail(*it) && peer_queue_full) continue;
        step.summarize.push_back({it->range, options_.batch_rows, 1});
      } else if (it->state == Part::State::kSummaries && side == Side::kPeer && it->local &&
                 !it->peer) {
        step.summarize.push_back({it->range, options_.batch_rows, 1});
      } else {
        continue;
      }
      chosen.push_back(it);
    }
    if (chosen.empty()) return false;
    step.kind = Step::Kind::kSummarize;
    step.side = side;
    return true;
  };
  if (!take_rows(Side::kLocal) && !take_summaries(Side::kLocal) && !take_summaries(Side::kPeer) &&
      !take_rows(Side::kPeer)) {
    MPF_ASSERT(false, "verify: parts left but nothing to ask");
  }
  ++(step.side == Side::kLocal ? local_requests_ : peer_requests_);
  outstanding_ = step;
  outstanding_parts_ = std::move(chosen);
  has_outstanding_ = true;
  return step;
}

void Narrower::on_summaries(const std::vector<Summary>& answers) {
  MPF_ASSERT(has_outstanding_ && outstanding_.kind == Step::Kind::kSummarize,
             "verify: summaries without a summarize step");
  MPF_ASSERT(answers.size() == outstanding_parts_.size(), "verify: one answer per request");
  has_outstanding_ = false;
  const Side side = outstanding_.side;
  for (size_t i = 0; i < answers.size(); ++i) {
    const PartIt it = outstanding_parts_[i];
    if (outstanding_.summarize[i].parts > 1) {
      apply_split(it, side, answers[i]);
    } else {
      side_of(*it, side) = known_of(answers[i]);
      settle(it);
    }
  }
  outstanding_parts_.clear();
}

void Narrower::on_rows(const std::vector<RowList>& answers) {
  MPF_ASSERT(has_outstanding_ && outstanding_.kind == Step::Kind::kRows,
             "verify: rows without a rows step");
  MPF_ASSERT(answers.size() == outstanding_parts_.size(), "verify: one answer per request");
  has_outstanding_ = false;
  const Side side = outstanding_.side;
  for (size_t i = 0; i < answers.size(); ++i) {
    const PartIt it = outstanding_parts_[i];
    if (!answers[i].complete) {
      // The range grew since it was summarized (a live database): summarize it again.
      Part fresh;
      fresh.range = it->range;
      *it = std::move(fresh);
      continue;
    }
    (side == Side::kLocal ? it->local_rows : it->peer_rows) = answers[i];
    if (it->local_rows && it->peer_rows) diff_rows(it);
  }
  outstanding_parts_.clear();
}

void Narrower::settle(PartIt it) {
  Part& p = *it;
  for (Side side : {Side::kLocal, Side::kPeer}) {
    const auto& k = side_of(p, side);
    if (!k || k->complete) continue;
    // More rows than one query may hash: the hashed ones end at k->last; cut there.
    MPF_ASSERT(k->last.has_value(), "verify: an incomplete summary names its last key");
    Part head;
    head.range = {p.range.lo, k->last};
    side_of(head, side) = Known{k->count, k->hash, true, k->last};
    Part rest;
    rest.range = {k->last, p.range.hi};
    parts_.insert(it, std::move(head));
    parts_.insert(it, std::move(rest));
    parts_.erase(it);
    return;
  }
  if (!p.local || !p.peer) return;
  if (p.local->count == p.peer->count && p.local->hash == p.peer->hash) {
    settled_ += p.local->count;
    parts_.erase(it);
    return;
  }
  const uint64_t low = std::min(p.local->count, p.peer->count);
  const uint64_t high = std::max(p.local->count, p.peer->count);
  if (p.local->count + p.peer->count <= options_.leaf_rows ||
      (low == 0 && high <= options_.batch_rows)) {
    p.state = Part::State::kRows;  // small, or all rows of one side are missing on the other
  } else {
    p.state = Part::State::kSplit;
    p.split_side = p.peer->count > p.local->count ? Side::kPeer : Side::kLocal;
  }
}

void Narrower::apply_split(PartIt it, Side side, const Summary& s) {
  const Range range = it->range;
  std::optional<Key> prev = range.lo;
  std::vector<PartIt> fresh;
  for (const auto& b : s.buckets) {
    Part q;
    q.range = {prev, b.last};
    side_of(q, side) = Known{b.count, b.hash, true, b.last};
    fresh.push_back(parts_.insert(it, std::move(q)));
    prev = b.last;
  }
  // What lies after the last bucket: nothing on this side if the answer was complete. A range
  // (k, k] holds nothing on either side.
  if (!(prev.has_value() && range.hi.has_value() && *prev == *range.hi)) {
    Part rest;
    rest.range = {prev, range.hi};
    if (s.complete) side_of(rest, side) = Known{0, 0, true, std::nullopt};
    fresh.push_back(parts_.insert(it, std::move(rest)));
  }
  parts_.erase(it);
  for (auto f : fresh) settle(f);
}

void Narrower::diff_rows(PartIt it) {
  std::map<Key, uint64_t> peer;
  for (const auto& r : it->peer_rows->rows) peer.emplace(r.key, r.hash);
  for (const auto& r : it->local_rows->rows) {
    auto found = peer.find(r.key);
    if (found == peer.end()) {
      differences_.push_back({r.key, Difference::Kind::kMissingThere});
      continue;
    }
    if (found->second != r.hash) differences_.push_back({r.key, Difference::Kind::kDifferent});
    peer.erase(found);
  }
  for (const auto& r : it->peer_rows->rows) {
    if (peer.count(r.key)) differences_.push_back({r.key, Difference::Kind::kMissingHere});
  }
  settled_ += it->local_rows->rows.size();
  parts_.erase(it);
}

}  // namespace mpf::server::verify
