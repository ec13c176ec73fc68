// Layout (docs/protocol.md, "Verify frames"):
//   'M' 'P' 'V' type(u8) version(u8) request_id(varint) body crc32c(u32le over all before it)
// Varints are minimal unsigned LEB128 as in the replication frames; hashes are u64le; a count is
// checked against the bytes left before anything is allocated, so a short hostile frame cannot
// make the daemon build large objects.
#include <mpf/core/crc32c.hpp>
#include <mpf/server/verify/verify_codec.hpp>

namespace mpf::server::verify {
namespace {

// Message type octets.
constexpr uint8_t kFactsReq = 'F', kFactsAns = 'f', kSumReq = 'S', kSumAns = 's', kRowsReq = 'L',
                  kRowsAns = 'l', kFetchReq = 'G', kFetchAns = 'g', kPoll = 'P', kPending = 'p',
                  kError = 'E', kSnapBegin = 'B', kSnapBeginAns = 'b', kSnapFetch = 'C',
                  kSnapChunk = 'c', kSnapEnd = 'D', kSnapEndAns = 'd', kBacklogReq = 'Q',
                  kBacklogAns = 'q';

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32le(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void u64le(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void str(std::string_view s) {
    varint(s.size());
    out_ += s;
  }
  void zigzag(int64_t v) {
    varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void position(const Position& p) {
    zigzag(p.tick);
    zigzag(p.seq);
  }
  void key(const Key& k) {
    varint(k.size());
    for (const auto& c : k) str(c);
  }
  void opt_key(const std::optional<Key>& k) {
    u8(k ? 1 : 0);
    if (k) key(*k);
  }
  void range(const Range& r) {
    opt_key(r.lo);
    opt_key(r.hi);
  }
  void value(const std::optional<std::string>& v) {
    if (!v) {
      varint(0);
      return;
    }
    varint(v->size() + 1);
    out_ += *v;
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }
  size_t left() const { return in_.size() - pos_; }
  bool at_end() const { return pos_ == in_.size(); }

  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why) + " at offset " + std::to_string(pos_);
    return false;
  }
  bool u8(uint8_t* v, const char* what) {
    if (left() < 1) return fail(std::string("truncated ") + what);
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool u64le(uint64_t* v, const char* what) {
    if (left() < 8) return fail(std::string("truncated ") + what);
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += 8;
    *v = r;
    return true;
  }
  bool varint(uint64_t* out, const char* what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (left() < 1) return fail(std::string("truncated ") + what);
      const auto b = static_cast<uint8_t>(in_[pos_++]);
      if (i == 9 && b > 1) return fail(std::string(what) + " does not fit 64 bits");
      v |= uint64_t{b & 0x7fu} << (7 * i);
      if (!(b & 0x80)) {
        if (b == 0 && i > 0) return fail(std::string(what) + " has an overlong varint encoding");
        *out = v;
        return true;
      }
    }
    return fail(std::string(what) + " is a varint longer than 10 octets");
  }
  // A count of elements taking at least `min_bytes` each, at most `max`.
  bool count(size_t* out, const char* what, size_t min_bytes, size_t max) {
    uint64_t n = 0;
    if (!varint(&n, what)) return false;
    if (n > max)
      return fail(std::string(what) + " " + std::to_string(n) + " exceeds " + std::to_string(max));
    if (n * min_bytes > left()) {
      return fail(std::string(what) + " " + std::to_string(n) + " exceeds remaining " +
                  std::to_string(left()) + " bytes");
    }
    *out = static_cast<size_t>(n);
    return true;
  }
  bool str(std::string* out, const char* what) {
    uint64_t n = 0;
    if (!varint(&n, what)) return false;
    if (n > left()) {
      return fail(std::string(what) + " length " + std::to_string(n) + " exceeds remaining " +
                  std::to_string(left()) + " bytes");
    }
    out->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool key(Key* k, const char* what) {
    size_t n = 0;
    if (!count(&n, what, 1, kMaxKeyColumns)) return false;
    if (n == 0) return fail(std::string(what) + " has no columns");
    k->resize(n);
    for (auto& c : *k) {
      if (!str(&c, what)) return false;
    }
    return true;
  }
  bool opt_key(std::optional<Key>* k, const char* what) {
    uint8_t present = 0;
    if (!u8(&present, what)) return false;
    if (present > 1) return fail(std::string(what) + " presence octet " + std::to_string(present));
    if (!present) {
      k->reset();
      return true;
    }
    k->emplace();
    return key(&**k, what);
  }
  bool range(Range* r) { return opt_key(&r->lo, "range lo") && opt_key(&r->hi, "range hi"); }
  bool flag(bool* b, const char* what) {
    uint8_t v = 0;
    if (!u8(&v, what)) return false;
    if (v > 1) return fail(std::string(what) + " octet " + std::to_string(v));
    *b = v == 1;
    return true;
  }
  bool value(std::optional<std::string>* v, const char* what) {
    uint64_t n = 0;
    if (!varint(&n, what)) return false;
    if (n == 0) {
      v->reset();
      return true;
    }
    if (n - 1 > left()) {
      return fail(std::string(what) + " length " + std::to_string(n - 1) + " exceeds remaining " +
                  std::to_string(left()) + " bytes");
    }
    v->emplace(in_.substr(pos_, n - 1));
    pos_ += n - 1;
    return true;
  }
  bool zigzag(int64_t* v, const char* what) {
    uint64_t u = 0;
    if (!varint(&u, what)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool position(Position* p, const char* what) {
    return zigzag(&p->tick, what) && zigzag(&p->seq, what);
  }
  bool limit(uint64_t* v) {
    if (!varint(v, "limit")) return false;
    if (*v == 0 || *v > kMaxLimit) return fail("limit " + std::to_string(*v) + " out of range");
    return true;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

void write_summary(Writer& w, const Summary& s) {
  w.u8(s.complete ? 1 : 0);
  w.varint(s.buckets.size());
  for (const auto& b : s.buckets) {
    w.varint(b.count);
    w.u64le(b.hash);
    w.key(b.last);
  }
}

bool read_summary(Reader& r, Summary* s) {
  size_t n = 0;
  if (!r.flag(&s->complete, "summary complete flag") ||
      !r.count(&n, "bucket count", 11, kMaxParts)) {
    return false;
  }
  s->buckets.resize(n);
  for (auto& b : s->buckets) {
    if (!r.varint(&b.count, "bucket row count") || !r.u64le(&b.hash, "bucket hash") ||
        !r.key(&b.last, "bucket last key")) {
      return false;
    }
    if (b.count == 0) return r.fail("empty bucket");
  }
  return true;
}

struct EncodeBody {
  Writer& w;
  void operator()(const SnapshotBegin& m) {
    w.u8(kSnapBegin);
    w.str(m.node);
  }
  void operator()(const SnapshotFetch& m) {
    w.u8(kSnapFetch);
    w.varint(m.snapshot_id);
    w.str(m.relation);
    w.varint(m.chunk);
    w.varint(m.max_rows);
  }
  void operator()(const SnapshotEnd& m) {
    w.u8(kSnapEnd);
    w.varint(m.snapshot_id);
  }
  void operator()(const BacklogRequest& m) {
    w.u8(kBacklogReq);
    w.str(m.node);
  }
  void operator()(const SnapshotBeginAnswer& m) {
    w.u8(kSnapBeginAns);
    w.varint(m.snapshot_id);
    w.position(m.position);
    w.position(m.peer_applied);
    w.varint(m.tables.size());
    for (const auto& t : m.tables) {
      w.str(t.relation);
      w.varint(t.columns);
      w.varint(t.estimated_rows);
    }
  }
  void operator()(const SnapshotChunk& m) {
    w.u8(kSnapChunk);
    w.u8(m.last ? 1 : 0);
    w.varint(m.columns);
    w.varint(m.rows.size());
    for (const auto& row : m.rows) {
      for (const auto& v : row) w.value(v);
    }
  }
  void operator()(const SnapshotEndAnswer& m) {
    w.u8(kSnapEndAns);
    w.position(m.peer_applied);
  }
  void operator()(const BacklogAnswer& m) {
    w.u8(kBacklogAns);
    w.varint(m.transactions);
    w.varint(m.rows);
    w.varint(m.oldest_age_ms);
  }
  void operator()(const FactsRequest&) { w.u8(kFactsReq); }
  void operator()(const PollRequest&) { w.u8(kPoll); }
  void operator()(const PendingAnswer&) { w.u8(kPending); }
  void operator()(const ErrorAnswer& m) {
    w.u8(kError);
    w.str(m.message);
  }
  void operator()(const SummarizeBatch& m) {
    w.u8(kSumReq);
    w.str(m.relation);
    w.varint(m.requests.size());
    for (const auto& q : m.requests) {
      w.range(q.range);
      w.varint(q.limit);
      w.varint(q.parts);
    }
  }
  void operator()(const RowsBatch& m) {
    w.u8(kRowsReq);
    w.str(m.relation);
    w.varint(m.requests.size());
    for (const auto& q : m.requests) {
      w.range(q.range);
      w.varint(q.limit);
    }
  }
  void operator()(const FetchRequest& m) {
    w.u8(kFetchReq);
    w.str(m.relation);
    w.varint(m.keys.size());
    for (const auto& k : m.keys) w.key(k);
  }
  void operator()(const FactsAnswer& m) {
    w.u8(kFactsAns);
    w.varint(m.facts.size());
    for (const auto& [name, value] : m.facts) {
      w.str(name);
      w.str(value);
    }
  }
  void operator()(const SummarizeAnswer& m) {
    w.u8(kSumAns);
    w.varint(m.summaries.size());
    for (const auto& s : m.summaries) write_summary(w, s);
  }
  void operator()(const RowsAnswer& m) {
    w.u8(kRowsAns);
    w.varint(m.lists.size());
    for (const auto& l : m.lists) {
      w.u8(l.complete ? 1 : 0);
      w.varint(l.rows.size());
      for (const auto& row : l.rows) {
        w.key(row.key);
        w.u64le(row.hash);
      }
    }
  }
  void operator()(const FetchAnswer& m) {
    w.u8(kFetchAns);
    w.varint(m.rows.size());
    for (const auto& row : m.rows) {
      w.key(row.key);
      w.u8(row.present ? 1 : 0);
      if (!row.present) continue;
      w.varint(static_cast<uint64_t>(row.commit_us));
      w.varint(row.values.size());
      for (const auto& v : row.values) w.value(v);
    }
  }
};

bool decode_body(Reader& r, uint8_t type, VerifyBody* body) {
  switch (type) {
    case kFactsReq:
      *body = FactsRequest{};
      return true;
    case kPoll:
      *body = PollRequest{};
      return true;
    case kPending:
      *body = PendingAnswer{};
      return true;
    case kError: {
      ErrorAnswer m;
      if (!r.str(&m.message, "error message")) return false;
      *body = std::move(m);
      return true;
    }
    case kSumReq: {
      SummarizeBatch m;
      size_t n = 0;
      if (!r.str(&m.relation, "relation") || !r.count(&n, "range count", 4, kMaxRangesPerRequest)) {
        return false;
      }
      m.requests.resize(n);
      for (auto& q : m.requests) {
        uint64_t parts = 0;
        if (!r.range(&q.range) || !r.limit(&q.limit) || !r.varint(&parts, "parts")) return false;
        if (parts == 0 || parts > kMaxParts) return r.fail("parts " + std::to_string(parts));
        q.parts = static_cast<uint32_t>(parts);
      }
      *body = std::move(m);
      return true;
    }
    case kRowsReq: {
      RowsBatch m;
      size_t n = 0;
      if (!r.str(&m.relation, "relation") || !r.count(&n, "range count", 3, kMaxRangesPerRequest)) {
        return false;
      }
      m.requests.resize(n);
      for (auto& q : m.requests) {
        if (!r.range(&q.range) || !r.limit(&q.limit)) return false;
      }
      *body = std::move(m);
      return true;
    }
    case kFetchReq: {
      FetchRequest m;
      size_t n = 0;
      if (!r.str(&m.relation, "relation") || !r.count(&n, "key count", 2, kMaxKeysPerFetch)) {
        return false;
      }
      m.keys.resize(n);
      for (auto& k : m.keys) {
        if (!r.key(&k, "key")) return false;
      }
      *body = std::move(m);
      return true;
    }
    case kFactsAns: {
      FactsAnswer m;
      size_t n = 0;
      if (!r.count(&n, "fact count", 2, 1u << 16)) return false;
      m.facts.resize(n);
      for (size_t i = 0; i < n; ++i) {
        if (!r.str(&m.facts[i].first, "fact name") || !r.str(&m.facts[i].second, "fact value")) {
          return false;
        }
        if (i > 0 && !(m.facts[i - 1].first < m.facts[i].first)) {
          return r.fail("fact \"" + m.facts[i].first + "\" out of order or repeated");
        }
      }
      *body = std::move(m);
      return true;
    }
    case kSumAns: {
      SummarizeAnswer m;
      size_t n = 0;
      if (!r.count(&n, "summary count", 2, kMaxRangesPerRequest)) return false;
      m.summaries.resize(n);
      for (auto& s : m.summaries) {
        if (!read_summary(r, &s)) return false;
      }
      *body = std::move(m);
      return true;
    }
    case kRowsAns: {
      RowsAnswer m;
      size_t n = 0;
      if (!r.count(&n, "list count", 2, kMaxRangesPerRequest)) return false;
      m.lists.resize(n);
      for (auto& l : m.lists) {
        size_t rows = 0;
        if (!r.flag(&l.complete, "list complete flag") ||
            !r.count(&rows, "row count", 10, kMaxLimit)) {
          return false;
        }
        l.rows.resize(rows);
        for (auto& row : l.rows) {
          if (!r.key(&row.key, "row key") || !r.u64le(&row.hash, "row hash")) return false;
        }
      }
      *body = std::move(m);
      return true;
    }
    case kFetchAns: {
      FetchAnswer m;
      size_t n = 0;
      if (!r.count(&n, "row count", 3, kMaxKeysPerFetch)) return false;
      m.rows.resize(n);
      for (auto& row : m.rows) {
        if (!r.key(&row.key, "row key") || !r.flag(&row.present, "row presence")) return false;
        if (!row.present) continue;
        uint64_t commit = 0;
        size_t values = 0;
        if (!r.varint(&commit, "commit time") || !r.count(&values, "value count", 1, 1600)) {
          return false;
        }
        row.commit_us = static_cast<int64_t>(commit);
        row.values.resize(values);
        for (auto& v : row.values) {
          if (!r.value(&v, "row value")) return false;
        }
      }
      *body = std::move(m);
      return true;
    }
    case kSnapBegin: {
      SnapshotBegin m;
      if (!r.str(&m.node, "node")) return false;
      *body = std::move(m);
      return true;
    }
    case kSnapFetch: {
      SnapshotFetch m;
      if (!r.varint(&m.snapshot_id, "snapshot id") || !r.str(&m.relation, "relation") ||
          !r.varint(&m.chunk, "chunk number") || !r.varint(&m.max_rows, "max rows")) {
        return false;
      }
      if (m.max_rows == 0 || m.max_rows > kMaxSnapshotRows) {
        return r.fail("max rows " + std::to_string(m.max_rows) + " out of range");
      }
      *body = std::move(m);
      return true;
    }
    case kSnapEnd: {
      SnapshotEnd m;
      if (!r.varint(&m.snapshot_id, "snapshot id")) return false;
      *body = m;
      return true;
    }
    case kBacklogReq: {
      BacklogRequest m;
      if (!r.str(&m.node, "node")) return false;
      *body = std::move(m);
      return true;
    }
    case kSnapBeginAns: {
      SnapshotBeginAnswer m;
      size_t n = 0;
      if (!r.varint(&m.snapshot_id, "snapshot id") ||
          !r.position(&m.position, "snapshot position") ||
          !r.position(&m.peer_applied, "peer applied position") ||
          !r.count(&n, "table count", 3, kMaxSnapshotTables)) {
        return false;
      }
      m.tables.resize(n);
      for (auto& t : m.tables) {
        if (!r.str(&t.relation, "relation") || !r.varint(&t.columns, "column count") ||
            !r.varint(&t.estimated_rows, "estimated rows")) {
          return false;
        }
        if (t.columns == 0 || t.columns > kMaxSnapshotColumns) {
          return r.fail("column count " + std::to_string(t.columns) + " out of range");
        }
      }
      *body = std::move(m);
      return true;
    }
    case kSnapChunk: {
      SnapshotChunk m;
      size_t rows = 0;
      if (!r.flag(&m.last, "last flag") || !r.varint(&m.columns, "column count")) return false;
      if (m.columns == 0 || m.columns > kMaxSnapshotColumns) {
        return r.fail("column count " + std::to_string(m.columns) + " out of range");
      }
      // Every value takes at least one octet: a row at least `columns`.
      if (!r.count(&rows, "row count", static_cast<size_t>(m.columns), kMaxSnapshotRows)) {
        return false;
      }
      m.rows.resize(rows);
      for (auto& row : m.rows) {
        row.resize(static_cast<size_t>(m.columns));
        for (auto& v : row) {
          if (!r.value(&v, "row value")) return false;
        }
      }
      *body = std::move(m);
      return true;
    }
    case kSnapEndAns: {
      SnapshotEndAnswer m;
      if (!r.position(&m.peer_applied, "peer applied position")) return false;
      *body = m;
      return true;
    }
    case kBacklogAns: {
      BacklogAnswer m;
      if (!r.varint(&m.transactions, "transactions") || !r.varint(&m.rows, "rows") ||
          !r.varint(&m.oldest_age_ms, "oldest age")) {
        return false;
      }
      *body = m;
      return true;
    }
    default:
      return r.fail("unknown message type " + std::to_string(type));
  }
}

}  // namespace

bool is_verify_frame(std::string_view frame) {
  return frame.size() >= kVerifyMagic.size() && frame.substr(0, 3) == kVerifyMagic;
}

std::string encode(const VerifyMessage& m) {
  Writer w;
  w.out() += kVerifyMagic;
  std::visit(EncodeBody{w}, m.body);
  // The type octet went first from the visitor; the version follows it.
  w.out().insert(4, 1, static_cast<char>(kVerifyProtocol));
  Writer id;
  id.varint(m.request_id);
  w.out().insert(5, id.out());
  w.u32le(crc32c(w.out()));
  return std::move(w.out());
}

Result<VerifyMessage> decode_verify(std::string_view frame) {
  if (frame.size() > kMaxVerifyFrameBytes) {
    return invalid_argument("malformed verify frame: " + std::to_string(frame.size()) +
                            " bytes exceeds the limit of " + std::to_string(kMaxVerifyFrameBytes));
  }
  if (frame.size() < 10) {
    return invalid_argument("malformed verify frame: " + std::to_string(frame.size()) +
                            " bytes is shorter than the shortest frame (10)");
  }
  if (!is_verify_frame(frame)) return invalid_argument("malformed verify frame: bad magic");
  const std::string_view covered = frame.substr(0, frame.size() - 4);
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) {
    crc |= uint32_t{static_cast<uint8_t>(frame[frame.size() - 4 + i])} << (8 * i);
  }
  // A CRC mismatch is reported in preference to a parse error: the likelier cause.
  if (crc32c(covered) != crc) return invalid_argument("malformed verify frame: CRC mismatch");
  Reader r(covered.substr(3));
  uint8_t type = 0;
  uint8_t version = 0;
  VerifyMessage m;
  (void)r.u8(&type, "type");
  (void)r.u8(&version, "version");
  if (version != kVerifyProtocol) {
    return invalid_argument("malformed verify frame: protocol version " + std::to_string(version) +
                            ", this node speaks " + std::to_string(kVerifyProtocol));
  }
  if (r.varint(&m.request_id, "request id") && decode_body(r, type, &m.body) && !r.at_end()) {
    r.fail(std::to_string(r.left()) + " trailing bytes");
  }
  if (!r.ok()) {
    return invalid_argument("malformed verify frame type '" +
                            std::string(1, static_cast<char>(type)) + "': " + r.error());
  }
  return m;
}

}  // namespace mpf::server::verify
