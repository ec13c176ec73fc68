// verify's pure core: compares one table on two nodes by hashing primary-key ranges on both
// sides and narrowing down where they differ, until the differing keys are known.
//
// Neither side's data is ever moved: a side answers "summarize this key range" (row count, an
// order-independent 64-bit hash, the last key hashed, split into at most `parts` buckets of
// equal row count) and, for small ranges that differ, "list (key, row hash) in this range".
// Keys are opaque here: only the database orders them, so the core never compares two keys, it
// only cuts ranges at keys one side returned. Every request is bounded by `batch_rows` rows.
//
// Usage (one thread): loop { auto s = n.next(); if done break; run the requests of s on s.side;
// n.on_summaries(...) or n.on_rows(...) with the answers in request order }. Local requests come
// first (they are cheap); peer requests are batched, up to `max_ranges` per round trip.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <vector>

namespace mpf::server::verify {

// A primary key: the text form of each key column, in key order.
using Key = std::vector<std::string>;

// The key range (lo, hi]: lo exclusive, hi inclusive; nullopt = unbounded on that end.
struct Range {
  std::optional<Key> lo;
  std::optional<Key> hi;
  bool operator==(const Range&) const = default;
};

// Rows of a range, in key order, hashed together.
struct Bucket {
  uint64_t count = 0;  // > 0
  uint64_t hash = 0;   // xor of the rows' 64-bit hashes
  Key last;            // the key of the bucket's last row
  bool operator==(const Bucket&) const = default;
};

// Answer to a Summarize request: the range's first `limit` rows in key order, cut into at most
// `parts` buckets of (nearly) equal row count. No rows: no buckets.
struct Summary {
  std::vector<Bucket> buckets;
  bool complete = true;  // false: the range holds more than `limit` rows
  bool operator==(const Summary&) const = default;
};

struct SummarizeRequest {
  Range range;
  uint64_t limit = 0;
  uint32_t parts = 1;
  bool operator==(const SummarizeRequest&) const = default;
};

struct RowHash {
  Key key;
  uint64_t hash = 0;
  bool operator==(const RowHash&) const = default;
};

// Answer to a Rows request: (key, row hash) of the range's first `limit` rows in key order.
struct RowList {
  std::vector<RowHash> rows;
  bool complete = true;  // false: the range holds more than `limit` rows
  bool operator==(const RowList&) const = default;
};

struct RowsRequest {
  Range range;
  uint64_t limit = 0;
  bool operator==(const RowsRequest&) const = default;
};

enum class Side { kLocal, kPeer };

struct Difference {
  enum class Kind {
    kMissingHere,   // the peer has the row, this node does not
    kMissingThere,  // this node has the row, the peer does not
    kDifferent,     // both have it, with different contents
  };
  Key key;
  Kind kind = Kind::kDifferent;
  bool operator==(const Difference&) const = default;
};

const char* to_string(Difference::Kind kind);

struct NarrowerOptions {
  uint64_t batch_rows = 1000;  // rows hashed per query at most (scan segment size)
  uint32_t fanout = 16;        // buckets a differing range is split into
  uint64_t leaf_rows = 32;     // both sides together at most this many rows: list them
  size_t max_ranges = 16;      // ranges per request (one peer round trip)
};

class Narrower {
 public:
  struct Step {
    enum class Kind { kSummarize, kRows, kDone };
    Kind kind = Kind::kDone;
    Side side = Side::kLocal;
    std::vector<SummarizeRequest> summarize;  // kSummarize
    std::vector<RowsRequest> rows;            // kRows
  };

  // REQUIRES: batch_rows >= leaf_rows >= 2, fanout >= 2, max_ranges >= 1.
  explicit Narrower(NarrowerOptions options = {});

  // The next requests to run; the same Step again until its answer arrives.
  Step next();

  // Answers to the Step last returned by next(), in request order.
  void on_summaries(const std::vector<Summary>& answers);
  void on_rows(const std::vector<RowList>& answers);

  bool done() const { return parts_.empty(); }
  // Differences found so far, in the order they were found (key order within a range).
  const std::vector<Difference>& differences() const { return differences_; }
  // This node's rows known equal or already listed: for progress.
  uint64_t local_rows_settled() const { return settled_; }
  uint64_t requests(Side side) const {
    return side == Side::kLocal ? local_requests_ : peer_requests_;
  }

 private:
  struct Known {
    uint64_t count = 0;
    uint64_t hash = 0;
    bool complete = true;
    std::optional<Key> last;  // of the last row hashed (count > 0)
  };
  struct Part {
    Range range;
    std::optional<Known> local;
    std::optional<Known> peer;
    enum class State { kSummaries, kSplit, kRows } state = State::kSummaries;
    Side split_side = Side::kLocal;
    std::optional<RowList> local_rows;
    std::optional<RowList> peer_rows;
    bool in_flight = false;  // part of the outstanding Step
  };
  using PartIt = std::list<Part>::iterator;

  static Known known_of(const Summary& s);
  std::optional<Known>& side_of(Part& p, Side s) { return s == Side::kLocal ? p.local : p.peer; }
  bool is_tail(const Part& p) const { return !p.range.hi && !p.local && !p.peer; }
  size_t awaiting_peer() const;
  // Settles a part whose summaries changed: cuts, compares, or queues a split or a listing.
  void settle(PartIt it);
  void apply_split(PartIt it, Side side, const Summary& s);
  void diff_rows(PartIt it);

  NarrowerOptions options_;
  std::list<Part> parts_;  // in key order, disjoint, together covering what is left to compare
  Step outstanding_;
  std::vector<PartIt> outstanding_parts_;
  bool has_outstanding_ = false;
  std::vector<Difference> differences_;
  uint64_t settled_ = 0;
  uint64_t local_requests_ = 0;
  uint64_t peer_requests_ = 0;
};

}  // namespace mpf::server::verify
