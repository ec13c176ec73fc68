// verify's narrowing core against two in-memory tables: it must list exactly the differing keys,
// whatever their place, and keep every request within its row bound.
#include <algorithm>
#include <map>
#include <random>

#include <doctest/doctest.h>

#include <mpf/server/verify/narrower.hpp>

using mpf::server::verify::Difference;
using mpf::server::verify::Key;
using mpf::server::verify::Narrower;
using mpf::server::verify::NarrowerOptions;
using mpf::server::verify::Range;
using mpf::server::verify::RowList;
using mpf::server::verify::Side;
using mpf::server::verify::Summary;

namespace {

// A table in key order; keys are zero-padded so text order is key order (as the database's).
struct MemTable {
  std::map<Key, uint64_t> rows;
  uint64_t max_rows_touched = 0;  // the most rows one request read

  static Key key(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08d", i);
    return {buf};
  }
  void put(int i, uint64_t content) { rows[key(i)] = content * 0x9E3779B97F4A7C15ull + i; }

  std::vector<std::pair<Key, uint64_t>> in_range(const Range& r, uint64_t limit, bool* complete) {
    std::vector<std::pair<Key, uint64_t>> out;
    auto it = r.lo ? rows.upper_bound(*r.lo) : rows.begin();
    *complete = true;
    for (; it != rows.end() && (!r.hi || it->first <= *r.hi); ++it) {
      if (out.size() == limit) {
        *complete = false;
        break;
      }
      out.push_back(*it);
    }
    max_rows_touched = std::max<uint64_t>(max_rows_touched, out.size());
    return out;
  }

  // As PostgreSQL's ntile(parts) over the first `limit` rows.
  Summary summarize(const Range& r, uint64_t limit, uint32_t parts) {
    Summary s;
    auto rows_in = in_range(r, limit, &s.complete);
    const size_t n = rows_in.size();
    size_t pos = 0;
    for (uint32_t b = 0; b < parts && pos < n; ++b) {
      const size_t size = n / parts + (b < n % parts ? 1 : 0);
      if (size == 0) break;
      mpf::server::verify::Bucket bucket;
      for (size_t i = 0; i < size; ++i, ++pos) {
        bucket.count++;
        bucket.hash ^= rows_in[pos].second;
        bucket.last = rows_in[pos].first;
      }
      s.buckets.push_back(bucket);
    }
    return s;
  }

  RowList list(const Range& r, uint64_t limit) {
    RowList l;
    for (auto& [k, h] : in_range(r, limit, &l.complete)) l.rows.push_back({k, h});
    return l;
  }
};

struct Outcome {
  std::vector<Difference> diffs;
  uint64_t peer_requests = 0;
};

Outcome run(MemTable& local, MemTable& peer, NarrowerOptions options = {}) {
  Narrower n(options);
  for (int guard = 0; guard < 1'000'000; ++guard) {
    auto step = n.next();
    if (step.kind == Narrower::Step::Kind::kDone) {
      CHECK(n.done());
      std::vector<Difference> d = n.differences();
      std::sort(d.begin(), d.end(), [](auto& a, auto& b) { return a.key < b.key; });
      return {d, n.requests(Side::kPeer)};
    }
    MemTable& t = step.side == Side::kLocal ? local : peer;
    if (step.kind == Narrower::Step::Kind::kSummarize) {
      CHECK(step.summarize.size() <= options.max_ranges);
      std::vector<Summary> answers;
      for (auto& q : step.summarize) answers.push_back(t.summarize(q.range, q.limit, q.parts));
      n.on_summaries(answers);
    } else {
      std::vector<RowList> answers;
      for (auto& q : step.rows) answers.push_back(t.list(q.range, q.limit));
      n.on_rows(answers);
    }
  }
  FAIL("narrowing did not end");
  return {};
}

Difference diff(int i, Difference::Kind kind) { return {MemTable::key(i), kind}; }

void fill(MemTable& a, MemTable& b, int n) {
  for (int i = 0; i < n; ++i) {
    a.put(i, 1);
    b.put(i, 1);
  }
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("equal tables give no differences, in few round trips") {
    MemTable a, b;
    fill(a, b, 10'000);
    auto out = run(a, b);
    CHECK(out.diffs.empty());
    // 10 segments of 1,000 rows, up to 16 per round trip.
    CHECK(out.peer_requests <= 2);
    CHECK(a.max_rows_touched <= 1000);
    CHECK(b.max_rows_touched <= 1000);
  }

  TEST_CASE("two empty tables are equal, one empty against one row is not") {
    MemTable a, b;
    CHECK(run(a, b).diffs.empty());
    b.put(7, 1);
    CHECK(run(a, b).diffs == std::vector{diff(7, Difference::Kind::kMissingHere)});
    CHECK(run(b, a).diffs == std::vector{diff(7, Difference::Kind::kMissingThere)});
  }

  TEST_CASE("one row differing at the start, in the middle or at the end is found alone") {
    for (int where : {0, 4321, 9999}) {
      CAPTURE(where);
      MemTable a, b;
      fill(a, b, 10'000);
      b.put(where, 2);
      auto out = run(a, b);
      CHECK(out.diffs == std::vector{diff(where, Difference::Kind::kDifferent)});
      CHECK(b.max_rows_touched <= 1000);
    }
  }

  TEST_CASE("rows missing on either side are named with their side") {
    MemTable a, b;
    fill(a, b, 5000);
    a.rows.erase(MemTable::key(0));
    b.rows.erase(MemTable::key(2500));
    a.rows.erase(MemTable::key(4999));
    auto out = run(a, b);
    CHECK(out.diffs == std::vector{diff(0, Difference::Kind::kMissingHere),
                                   diff(2500, Difference::Kind::kMissingThere),
                                   diff(4999, Difference::Kind::kMissingHere)});
  }

  TEST_CASE("a side with many rows the other lacks stays within the row bound") {
    MemTable a, b;
    for (int i = 0; i < 5000; ++i) b.put(i, 1);  // a is empty
    auto out = run(a, b);
    CHECK(out.diffs.size() == 5000);
    CHECK(b.max_rows_touched <= 1000);
    for (const auto& d : out.diffs) CHECK(d.kind == Difference::Kind::kMissingHere);
  }

  TEST_CASE("many scattered differences are all found and nothing else") {
    for (uint64_t seed : {1u, 2u, 3u}) {
      CAPTURE(seed);
      std::mt19937_64 rng(seed);
      MemTable a, b;
      fill(a, b, 20'000);
      std::map<Key, Difference::Kind> expected;
      for (int k = 0; k < 300; ++k) {
        const int i = static_cast<int>(rng() % 21'000);  // some beyond the end: inserts
        switch (rng() % 3) {
          case 0:
            b.put(i, 7 + k);
            expected[MemTable::key(i)] = a.rows.count(MemTable::key(i))
                                             ? Difference::Kind::kDifferent
                                             : Difference::Kind::kMissingHere;
            break;
          case 1:
            if (b.rows.erase(MemTable::key(i))) {
              expected[MemTable::key(i)] = Difference::Kind::kMissingThere;
            }
            break;
          default:
            a.rows.erase(MemTable::key(i));
            if (b.rows.count(MemTable::key(i))) {
              expected[MemTable::key(i)] = Difference::Kind::kMissingHere;
            } else {
              expected.erase(MemTable::key(i));
            }
        }
      }
      // Keys put then erased again on b, or equal again by chance, are not differences.
      for (auto it = expected.begin(); it != expected.end();) {
        const bool in_a = a.rows.count(it->first) > 0;
        const bool in_b = b.rows.count(it->first) > 0;
        if (in_a && in_b && a.rows[it->first] == b.rows[it->first]) {
          it = expected.erase(it);
        } else if (!in_a && !in_b) {
          it = expected.erase(it);
        } else {
          ++it;
        }
      }
      auto out = run(a, b, NarrowerOptions{500, 8, 16, 8});
      std::vector<Difference> want;
      for (auto& [k, kind] : expected) want.push_back({k, kind});
      CHECK(out.diffs == want);
      CHECK(a.max_rows_touched <= 500);
      CHECK(b.max_rows_touched <= 500);
    }
  }

  TEST_CASE("composite keys narrow like single ones") {
    MemTable a, b;
    for (int g = 0; g < 40; ++g) {
      for (int u = 0; u < 50; ++u) {
        Key k{MemTable::key(g)[0], MemTable::key(u)[0]};
        a.rows[k] = b.rows[k] = static_cast<uint64_t>(g * 1000 + u);
      }
    }
    Key changed{MemTable::key(17)[0], MemTable::key(3)[0]};
    b.rows[changed] ^= 1;
    auto out = run(a, b, NarrowerOptions{100, 4, 8, 4});
    CHECK(out.diffs == std::vector{Difference{changed, Difference::Kind::kDifferent}});
  }

  TEST_CASE("a listing that outgrew its range on a live database is summarized again") {
    MemTable a, b;
    fill(a, b, 100);
    b.put(50, 9);
    Narrower n(NarrowerOptions{1000, 4, 32, 4});
    bool grown = false;
    for (;;) {
      auto step = n.next();
      if (step.kind == Narrower::Step::Kind::kDone) break;
      MemTable& t = step.side == Side::kLocal ? a : b;
      if (step.kind == Narrower::Step::Kind::kSummarize) {
        std::vector<Summary> answers;
        for (auto& q : step.summarize) answers.push_back(t.summarize(q.range, q.limit, q.parts));
        n.on_summaries(answers);
      } else {
        std::vector<RowList> answers;
        for (auto& q : step.rows) {
          auto l = t.list(q.range, q.limit);
          if (!grown && step.side == Side::kPeer) {
            l.complete = false;  // as if rows arrived between summary and listing
            grown = true;
          }
          answers.push_back(l);
        }
        n.on_rows(answers);
      }
    }
    CHECK(grown);
    CHECK(n.differences() == std::vector{diff(50, Difference::Kind::kDifferent)});
  }
}
