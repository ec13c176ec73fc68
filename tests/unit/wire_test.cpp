// The port-2008 wire codec (docs/protocol.md): round trips, the compression stream across
// the batches of a session (docs/design.md §11), and hostile input (docs/design.md §6: whatever
// arrives on port 2008 may be truncated, corrupted, repeated or not ours at all).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mpf/replicator/wire.hpp>

namespace wire = mpf::replicator::wire;
using mpf::Code;
using mpf::Position;
using mpf::replicator::Op;
using mpf::replicator::RowChange;
using mpf::replicator::TxChunk;
using mpf::replicator::Value;

// ---- allocation probe ---------------------------------------------------------------------------
// "Refused without a big allocation" is only testable by watching allocations: operator new is
// replaced by a pass-through to malloc that, while armed on this thread, records the largest
// request. Left out under ASan, which has its own operator new (and its own checks).
#if defined(__SANITIZE_ADDRESS__)
#define MPF_WIRE_TEST_PROBE 0
#else
#define MPF_WIRE_TEST_PROBE 1
namespace {
thread_local bool g_probe_armed = false;
thread_local size_t g_probe_largest = 0;
}  // namespace
// noinline: inlined, GCC 12 sees free() on memory from operator new (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (g_probe_armed && n > g_probe_largest) g_probe_largest = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

struct AllocationProbe {
  AllocationProbe() {
#if MPF_WIRE_TEST_PROBE
    g_probe_largest = 0;
    g_probe_armed = true;
#endif
  }
  ~AllocationProbe() { disarm(); }
  size_t disarm() {
#if MPF_WIRE_TEST_PROBE
    g_probe_armed = false;
    return g_probe_largest;
#else
    return 0;
#endif
  }
};

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}

std::string hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

// Appends the CRC-32C trailer, as an encoder would: for frames a test builds by hand.
std::string seal(std::string frame) {
  const uint32_t crc = wire::crc32c(frame);
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>(crc >> (8 * i)));
  return frame;
}

// Drops the trailer and seals again, so a test can edit a frame's body and still get past the
// checksum to the parser.
std::string reseal(std::string frame) {
  frame.resize(frame.size() - 4);
  return seal(std::move(frame));
}

RowChange change(int32_t table, Op op, int64_t seq, int64_t hlc, std::vector<Value> key,
                 std::vector<Value> image) {
  RowChange c;
  c.table_id = table;
  c.op = op;
  c.seq = seq;
  c.hlc = hlc;
  c.key = std::move(key);
  c.image = std::move(image);
  return c;
}

// Every edge the payload encoding has: NULL vs empty, binary bytes, extreme and decreasing
// numbers (negative deltas), multi-part transactions, empty chunks.
wire::Batch edge_batch() {
  wire::Batch b;
  b.session_id = kU64Max;
  b.seq = kU64Max - 1;
  const std::string binary = bytes({0, 'a', 0, 0xff, 0x80, '\n', 0});

  TxChunk part0;
  part0.position = {kI64Max, kI64Max};
  part0.txid = kU64Max;
  part0.origin = std::string(1, 'a');  // not sent: decode leaves it empty
  part0.total_changes = 3;
  part0.part = 0;
  part0.last = false;
  part0.changes.push_back(change(0, Op::kInsert, kI64Max, kI64Max, {Value("k1")},
                                 {Value("k1"), std::nullopt, Value(""), Value(binary)}));
  part0.changes.push_back(change(7, Op::kUpdate, kI64Min, kI64Min, {Value(binary)},
                                 {Value(binary), Value(std::string(300, 'x'))}));
  TxChunk part1 = part0;
  part1.part = 1;
  part1.last = true;
  part1.changes = {change(2147483647, Op::kDelete, 0, -1, {std::nullopt, Value("")}, {})};

  TxChunk empty;
  empty.position = {kI64Min, -5};
  empty.txid = 0;
  empty.total_changes = kI64Min;
  empty.part = std::numeric_limits<int32_t>::min();
  empty.last = true;

  TxChunk hlc_back;  // the clock went backwards between changes: negative delta
  hlc_back.position = {1, 2};
  hlc_back.txid = 42;
  hlc_back.total_changes = 2;
  hlc_back.changes.push_back(change(-1, Op::kInsert, 1, 1'700'000'000'000'000, {}, {}));
  hlc_back.changes.push_back(change(1, Op::kUpdate, 2, 1'699'999'999'999'000, {Value("a")},
                                    {std::nullopt, std::nullopt, std::nullopt}));

  b.chunks = {part0, part1, empty, hlc_back};
  return b;
}

wire::Hello sample_hello() {
  wire::Hello h;
  h.origin = "a";
  h.target = "b";
  h.catalog_version = 3;
  h.session_id = 0x0123456789abcdefULL;
  h.tables = {
      {"public.users", {"user_id", "login", "email"}, {"user_id"}},
      {"public.group_members", {"group_id", "user_id", "member_role"}, {"group_id", "user_id"}}};
  return h;
}

// Values of every kind version 2 sends in a compact form, and near misses that must stay text
// (docs/design.md §11: a compact form only where the text form is canonical and comes back
// exactly). hlc is the change's: timestamps are sent as a difference from it.
std::vector<Value> compact_values() {
  return {
      Value("2610b5bb-f296-4468-bcd0-adab503f78bd"),  // uuid
      Value("00000000-0000-0000-0000-000000000000"),
      Value("ffffffff-ffff-ffff-ffff-ffffffffffff"),
      Value("0"),  // integers
      Value("-1"),
      Value("42"),
      Value("9223372036854775807"),
      Value("-9223372036854775808"),
      Value("2026-11-22 11:21:15.696868+00"),  // timestamptz, as the capture renders them
      Value("2026-12-24 03:41:00+00"),         // a whole minute
      Value("2026-12-24 03:41:07+00"),
      Value("2026-01-02 03:04:05.5+00"),
      Value("2026-01-02 03:04:05.000001+00"),
      Value("2026-07-01 12:00:00+05:30"),
      Value("2026-07-01 12:00:00.25-03"),
      Value("1900-01-01 00:00:00+00:09:21"),  // local mean time: an offset with seconds
      Value("2026-11-22 11:21:15.1-15:59:59"),
      Value("0001-01-01 00:00:00+00"),
      Value("9999-12-31 23:59:59.999999+00"),
      Value("2024-02-29 23:59:59.999999+00"),
      Value("1969-12-31 23:59:59.999999+00"),  // before the epoch
      Value("2026-11-22 11:21:15.696868"),     // timestamp without time zone
      Value("2026-11-22 11:21:00"),
  };
}

std::vector<Value> text_lookalikes() {
  return {
      std::nullopt,
      Value(""),
      Value("2610B5BB-F296-4468-BCD0-ADAB503F78BD"),    // upper case: uuid_out never prints it
      Value("{2610b5bb-f296-4468-bcd0-adab503f78bd}"),  // braces
      Value("2610b5bbf2964468bcd0adab503f78bd"),        // no dashes
      Value("2610b5bb-f296-4468-bcd0-adab503f78b"),     // 35 characters
      Value("2610b5bb-f296-4468-bcd0-adab503f78bdx"),   // 37
      Value("2610b5bb-f296-4468-bcd0_adab503f78bd"),    // a dash replaced
      Value("2610b5bb-f296-4468-bcd0-adab503f78bg"),    // not hex
      Value("007"),                                     // leading zeros (meeting numbers)
      Value("00000081"),
      Value("-0"),
      Value("+1"),
      Value(" 1"),
      Value("1 "),
      Value("-"),
      Value("9223372036854775808"),  // out of int64
      Value("-9223372036854775809"),
      Value("1e3"),
      Value("2026-01-02 03:04:05.50+00"),  // a trailing zero timestamptz_out would not print
      Value("2026-01-02 03:04:05.+00"),
      Value("2026-01-02 03:04:05.1234567+00"),
      Value("2026-01-02 03:04:05+05:00"),  // printed "+05"
      Value("2026-01-02 03:04:05-00"),
      Value("2026-01-02 03:04:05+00:00:00"),
      Value("2026-01-02 03:04:05+16"),  // beyond PostgreSQL's offsets
      Value("2026-02-30 00:00:00+00"),  // no such day
      Value("2026-13-01 00:00:00+00"),
      Value("2026-01-02 24:00:00+00"),
      Value("2026-01-02 03:04:60+00"),
      Value("2026-01-02T03:04:05+00"),
      Value("2026-1-02 03:04:05+00"),
      Value("0000-01-01 00:00:00+00"),  // year 0
      Value("10000-01-01 00:00:00+00"),
      Value("2026-01-02 03:04:05+00 BC"),
      Value("infinity"),
      Value("-infinity"),
      Value("2026-01-02"),  // a date
      Value("03:04:05"),    // a time
      Value("2026-01-02 03:04:05+00x"),
      Value(bytes({'4', '2', 0})),
      Value("t"),
      Value("Participant 23917"),
  };
}

// Every compact value and look-alike as key and image values, at hlc values near and far from
// the timestamps (the difference wraps modulo 2^64), image values equal to key values (sent as
// references), NULL keys.
wire::Batch forms_batch(uint64_t session_id, uint64_t seq) {
  wire::Batch b;
  b.session_id = session_id;
  b.seq = seq;
  std::vector<Value> all = compact_values();
  for (const Value& v : text_lookalikes()) all.push_back(v);
  const int64_t hlcs[] = {1'795'346'475'708'057, 0, -1, kI64Max, kI64Min, 1'795'346'475'696'868};
  TxChunk c;
  c.position = {3, 9};
  c.txid = 77;
  c.total_changes = 1;
  for (int64_t hlc : hlcs) {
    c.changes.push_back(change(4, Op::kInsert, 1, hlc, {all[0]}, all));
    c.changes.push_back(change(5, Op::kUpdate, 2, hlc, all, {all[3], all[1], all[0]}));
    // Key values that are equal to each other and NULL: a reference names the first equal one.
    c.changes.push_back(change(6, Op::kUpdate, 3, hlc, {std::nullopt, Value("x"), Value("x")},
                               {std::nullopt, Value("x"), Value("y"), Value("")}));
    c.changes.push_back(change(6, Op::kDelete, 4, hlc, {Value("")}, {}));
  }
  b.chunks = {c};
  return b;
}

// edge_batch() in a version 2 payload: binary and long text, extreme numbers.
wire::Batch v2_edge_batch(uint64_t seq) {
  wire::Batch b = edge_batch();
  b.seq = seq;
  return b;
}

// One valid frame of each message type, the batches from one Encoder (so batch 1 needs batch 0
// decoded first); batches from kFirstV2Frame on in version 2.
constexpr size_t kFirstV2Frame = 9;

struct Frames {
  std::vector<std::string> frames;
  std::vector<wire::Message> messages;
};

Frames one_of_each() {
  Frames f;
  wire::Encoder enc;
  wire::Hello edge_hello;
  edge_hello.min_version = 0;
  edge_hello.max_version = UINT32_MAX;
  edge_hello.catalog_version = std::numeric_limits<int32_t>::min();
  edge_hello.session_id = kU64Max;
  edge_hello.origin = bytes({0, 1, 2});
  edge_hello.tables = {{"", {}, {}}, {"s.t", {""}, {""}}};
  wire::Batch second = edge_batch();
  second.seq += 1;
  std::reverse(second.chunks.begin(), second.chunks.end());
  f.messages = {
      sample_hello(),
      edge_hello,
      wire::Welcome{1, "b", 77, {kI64Max, kI64Min}},
      wire::Refuse{kU64Max, "expected node \"c\", this is node \"b\""},
      wire::Ack{5, kU64Max, {-1, 0}},
      wire::ApplyError{0, {12, 34}, bytes({'d', 'u', 'p', 0, 0xfe})},
      wire::Batch{kU64Max, 0, {}},  // the batches share the session id edge_batch() has
      edge_batch(),
      second,
      // From here on version 2 payloads (frame type 'C'), in the same compression stream.
      v2_edge_batch(7),
      forms_batch(kU64Max, 0),
  };
  for (size_t i = 0; i < f.messages.size(); ++i) {
    if (i == kFirstV2Frame) REQUIRE(enc.use_version(2).is_ok());
    f.frames.push_back(enc.encode(f.messages[i]));
  }
  return f;
}

// A decoder in the state frame `index` of one_of_each() expects: the batches before it decoded.
wire::Decoder primed_for(const Frames& f, size_t index) {
  wire::Decoder d;
  for (size_t i = 0; i < index; ++i) {
    if (std::holds_alternative<wire::Batch>(f.messages[i])) {
      auto r = d.decode(f.frames[i]);
      MPF_ASSERT(r.is_ok(), r.status().message());
    }
  }
  return d;
}

// Realistic rows: a meeting scheduled with its participants, from a pool of users, in the text
// form the capture trigger produces (docs/design.md §11: subjects, domains, user ids repeat).
class MeetingWorkload {
 public:
  explicit MeetingWorkload(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < 20; ++i) users_.push_back(uuid());
  }

  TxChunk next_transaction() {
    static const char* kSubjects[] = {"Weekly sales review", "Project Atlas stand-up",
                                      "Customer escalation: Acme Corp", "Quarterly planning",
                                      "Design review"};
    static const char* kFirst[] = {"Alice", "Bob", "Chandra", "Dmitri", "Eve", "Farah"};
    static const char* kLast[] = {"Martin", "Nguyen", "Okafor", "Petrov", "Quinn", "Rossi"};
    TxChunk tx;
    tx.txid = txid_ += 1 + rng_() % 3;
    const std::string meeting = uuid();
    const std::string owner = users_[rng_() % users_.size()];
    const int n = 3;
    tx.total_changes = 1 + n;
    auto stamp = [&](int64_t us) {
      char buf[64];
      const int64_t s = us / 1'000'000;
      std::snprintf(buf, sizeof buf, "2026-11-%02d %02d:%02d:%02d.%06d+00", 1 + int(s / 86400 % 28),
                    int(s / 3600 % 24), int(s / 60 % 60), int(s % 60), int(us % 1'000'000));
      return std::string(buf);
    };
    hlc_ += 1000 + static_cast<int64_t>(rng_() % 500'000);
    tx.changes.push_back(
        change(3, Op::kInsert, ++seq_, hlc_, {Value(meeting)},
               {Value(meeting), Value(std::to_string(100000 + rng_() % 900000)),
                Value(kSubjects[rng_() % 5]), Value(owner), Value(stamp(hlc_ + 86'400'000'000LL)),
                Value("60"), std::nullopt, Value("scheduled"), Value("10"), Value(stamp(hlc_))}));
    for (int i = 0; i < n; ++i) {
      const std::string participant = uuid();
      const bool guest = rng_() % 4 == 0;
      const std::string first = kFirst[rng_() % 6];
      const std::string last = kLast[rng_() % 6];
      hlc_ += 7;
      tx.changes.push_back(change(
          4, Op::kInsert, ++seq_, hlc_, {Value(meeting), Value(participant)},
          {Value(meeting), Value(participant),
           guest ? Value() : Value(users_[rng_() % users_.size()]), Value(first + " " + last),
           Value(first + "." + last + "@example.com"), Value(i == 0 ? "host" : "attendee")}));
    }
    tx.position = {++tick_, seq_};
    return tx;
  }

 private:
  std::string uuid() {
    char buf[40];
    const uint64_t a = rng_(), b = rng_();
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", uint32_t(a >> 32),
                  uint32_t(a >> 16) & 0xffff, uint32_t(a) & 0xfff,
                  0x8000 | (uint32_t(b >> 48) & 0x3fff),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
  }

  std::mt19937_64 rng_;
  std::vector<std::string> users_;
  uint64_t txid_ = 1000;
  int64_t seq_ = 5000;
  int64_t tick_ = 100;
  int64_t hlc_ = 1'795'000'000'000'000;
};

void check_rejected(const mpf::Result<wire::Message>& r) {
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_FALSE(r.status().message().empty());
}

}  // namespace

TEST_SUITE_BEGIN("wire");

TEST_CASE("every message type survives a round trip with edge values") {
  Frames f = one_of_each();
  wire::Decoder dec;
  for (size_t i = 0; i < f.frames.size(); ++i) {
    CAPTURE(i);
    auto r = dec.decode(f.frames[i]);
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    CHECK(r->index() == f.messages[i].index());
    CHECK(*r == f.messages[i]);
    if (auto* b = std::get_if<wire::Batch>(&*r)) {
      for (const auto& c : b->chunks) CHECK(c.origin.empty());  // the session's origin
    }
  }
  CHECK_FALSE(dec.broken());
  CHECK(dec.batches() == 5);
  CHECK(f.frames[8][3] == 'B');  // version 1 payload
  CHECK(f.frames[9][3] == 'C');  // version 2 payload

  SUBCASE("the batch edge values come back field by field") {
    wire::Encoder enc;
    wire::Decoder d;
    auto r = d.decode(enc.encode(edge_batch()));
    REQUIRE(r.is_ok());
    const auto& b = std::get<wire::Batch>(*r);
    REQUIRE(b.chunks.size() == 4);
    CHECK(b.chunks[0].txid == kU64Max);
    CHECK_FALSE(b.chunks[0].last);
    CHECK(b.chunks[1].last);
    CHECK(b.chunks[1].part == 1);
    const auto& img = b.chunks[0].changes[0].image;
    CHECK_FALSE(img[1].has_value());  // NULL
    REQUIRE(img[2].has_value());
    CHECK(img[2]->empty());  // '' is not NULL
    CHECK(img[3]->size() == 7);
    CHECK((*img[3])[0] == '\0');
    CHECK(b.chunks[0].changes[1].seq == kI64Min);
    CHECK(b.chunks[1].changes[0].op == Op::kDelete);
    CHECK(b.chunks[1].changes[0].image.empty());
    CHECK(b.chunks[3].changes[0].table_id == -1);
    CHECK(b.chunks[3].changes[1].hlc < b.chunks[3].changes[0].hlc);
  }
}

TEST_CASE("frames have the documented bytes (the examples in docs/protocol.md)") {
  wire::Encoder enc;
  // Ack{session 1, seq 2, position 3/-4}: "MPFA" 01 02 06 07 + CRC-32C.
  CHECK(hex(enc.encode(wire::Ack{1, 2, {3, -4}})) == "4d50464101020607c57bcc1d");
  wire::Hello h;
  h.origin = "a";
  h.target = "b";
  h.catalog_version = 1;
  h.session_id = 300;
  h.tables = {{"public.users", {"user_id", "login"}, {"user_id"}}};
  CHECK(hex(enc.encode(h)) ==
        "4d50464801020161016202ac02010c7075626c69632e75736572730207757365725f6964056c6f67696e"
        "0107757365725f696400dde01d58");
  // The payload of one chunk: position 10/20, txid 5, 1 change, last; change: table 1, 'U',
  // seq 20, hlc 1000, key ("x"), image (NULL, "").
  TxChunk c;
  c.position = {10, 20};
  c.txid = 5;
  c.total_changes = 1;
  c.changes = {change(1, Op::kUpdate, 20, 1000, {Value("x")}, {std::nullopt, Value("")})};
  CHECK(hex(wire::encode_batch_payload({c})) == "0114280a02000101015528d00f010278020001");
  CHECK(wire::crc32c("123456789") == 0xE3069283u);
}

TEST_CASE("version 2 sends every value kind in a compact form and gets back the same text") {
  // docs/design.md §11. One test per kind: each value alone as an image value of an insert, so its
  // cost can be read off the payload; the look-alikes must come back as the same text.
  auto one = [](const Value& v, int64_t hlc) {
    TxChunk c;
    c.position = {1, 1};
    c.total_changes = 1;
    c.changes = {change(0, Op::kInsert, 1, hlc, {}, {v})};
    return std::vector<TxChunk>{c};
  };
  const int64_t hlc = 1'795'346'475'708'057;  // 2026-11-22 11:21:15.708057 UTC
  auto value_bytes = [&](const Value& v, int64_t at) {
    const size_t overhead = wire::encode_batch_payload(one(std::nullopt, at), 2).size() - 1;
    const auto chunks = one(v, at);
    const std::string payload = wire::encode_batch_payload(chunks, 2);
    auto back = wire::decode_batch_payload(payload, 2);
    REQUIRE_MESSAGE(back.is_ok(), back.status().message());
    REQUIRE(back->size() == 1);
    REQUIRE(back->front().changes.size() == 1);
    CHECK(back->front().changes[0].image == chunks[0].changes[0].image);
    return payload.size() - overhead;
  };
  for (int64_t at : {hlc, int64_t{0}, kI64Max, kI64Min}) {
    CAPTURE(at);
    for (const Value& v : compact_values()) {
      CAPTURE(*v);
      value_bytes(v, at);
    }
    for (const Value& v : text_lookalikes()) {
      CAPTURE(v.value_or("NULL"));
      CHECK(value_bytes(v, at) == (v ? v->size() + 1 : 1));  // tag + text, or the NULL tag
    }
  }
  SUBCASE("uuid: 16 octets instead of 36") {
    CHECK(value_bytes(Value("2610b5bb-f296-4468-bcd0-adab503f78bd"), hlc) == 17);
  }
  SUBCASE("integer: a zigzag varint") {
    CHECK(value_bytes(Value("42"), hlc) == 2);
    CHECK(value_bytes(Value("-9223372036854775808"), hlc) == 11);
  }
  SUBCASE("timestamps: a difference from the change's hlc") {
    // now() of the transaction, a little before its commit time (the hlc): 11,189 µs.
    CHECK(value_bytes(Value("2026-11-22 11:21:15.696868+00"), hlc) == 4);
    CHECK(value_bytes(Value("2026-11-22 11:21:15.708057+00"), hlc) == 2);
    // A whole minute a month later: in minutes.
    CHECK(value_bytes(Value("2026-12-24 03:41:00+00"), hlc) == 4);
    CHECK(value_bytes(Value("2026-07-01 12:00:00+05:30"), hlc) == 7);
    CHECK(value_bytes(Value("2026-11-22 11:21:15.696868"), hlc) == 4);
  }
}

TEST_CASE("version 2 timestamps round-trip over the whole range and every offset form") {
  // Fixed seed (docs/design.md §12): random instants in years 1-9999 with random offsets render to
  // the text PostgreSQL prints and parse back to the same instant.
  std::mt19937_64 rng(11);
  const int64_t lo = -62'135'596'800'000'000 + 16 * 3600 * 1'000'000LL;
  const int64_t hi = 253'402'300'799'999'999 - 16 * 3600 * 1'000'000LL;
  std::vector<Value> values;
  for (int i = 0; i < 2000; ++i) {
    int64_t us = lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo));
    if (i % 3 == 0) us -= us % 60'000'000;  // whole minutes, as scheduled meetings are
    if (i % 5 == 0) us -= us % 1'000'000;   // whole seconds
    const int32_t offsets[] = {
        0, 3600, -3600 * 3, 5 * 3600 + 1800, 561, -(15 * 3600 + 59 * 60 + 59)};
    const int32_t off = offsets[rng() % 6];
    const int64_t local = us + int64_t{off} * 1'000'000;
    // Format by hand with the C library, independently of the codec.
    const time_t secs =
        static_cast<time_t>(local >= 0 ? local / 1'000'000 : (local - 999'999) / 1'000'000);
    const int frac = static_cast<int>(local - int64_t{secs} * 1'000'000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char buf[80];
    int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (frac != 0) {
      char f[8];
      std::snprintf(f, sizeof f, "%06d", frac);
      std::string fs(f);
      while (fs.back() == '0') fs.pop_back();
      n += std::snprintf(buf + n, sizeof buf - n, ".%s", fs.c_str());
    }
    const int a = off < 0 ? -off : off;
    n += std::snprintf(buf + n, sizeof buf - n, "%c%02d", off < 0 ? '-' : '+', a / 3600);
    if (a % 60) {
      n += std::snprintf(buf + n, sizeof buf - n, ":%02d:%02d", a / 60 % 60, a % 60);
    } else if (a / 60 % 60) {
      n += std::snprintf(buf + n, sizeof buf - n, ":%02d", a / 60 % 60);
    }
    values.emplace_back(std::string(buf, static_cast<size_t>(n)));
  }
  TxChunk c;
  c.position = {1, 1};
  c.total_changes = 1;
  c.changes = {change(0, Op::kInsert, 1, 1'795'346'475'708'057, {}, values)};
  const std::string payload = wire::encode_batch_payload({c}, 2);
  // Each one in a compact form: at most tag, offset and a 9-octet difference, never the text.
  CHECK(payload.size() < values.size() * 16);
  auto back = wire::decode_batch_payload(payload, 2);
  REQUIRE_MESSAGE(back.is_ok(), back.status().message());
  CHECK(back->front().changes[0].image == values);
}

TEST_CASE("version 2 refuses every value form its encoder would not have chosen") {
  // The encoding stays canonical (docs/protocol.md §2): a decoder accepts only what the encoder
  // writes, so a frame it accepts re-encodes to the same bytes. Payload: one chunk, one insert of
  // table 0 at hlc 0 with one key value ("k") and one image value, the value under test.
  auto payload = [](const std::string& image_value, const std::string& key_value = "\x11k") {
    return varint(1) + varint(0) + varint(0) + varint(0) + varint(2) + varint(0) + "\x01" +
           varint(1) + varint(0) + "I" + varint(0) + varint(0) + varint(1) + varint(1) + key_value +
           image_value;
  };
  auto refused = [](const std::string& p) {
    auto r = wire::decode_batch_payload(p, 2);
    return r.is_ok() ? std::string("accepted") : r.status().message();
  };
  const std::string where = "table 0 image column 0, chunk 0 change 0: ";
  CHECK(refused(payload(varint(1) + varint(0))) == "accepted");  // a reference to key value 0
  CHECK(refused(payload(varint(16 + 1) + "k")) ==
        where + "image value: value equal to key value 0 not sent as a reference to it");
  CHECK(refused(payload(varint(16 + 2) + "42")) ==
        where + "image value: text \"42\" not in its integer form");
  CHECK(refused(payload(varint(16 + 36) + "2610b5bb-f296-4468-bcd0-adab503f78bd")) ==
        where + "image value: text \"2610b5bb-f296-4468-bcd0-adab503f78bd\" not in its uuid form");
  CHECK(refused(payload(varint(16 + 22) + "2026-12-24 03:41:00+00")) ==
        where + "image value: text \"2026-12-24 03:41:00+00\" not in its timestamp form");
  CHECK(refused(payload(varint(1) + varint(1))) ==
        where + "image value: reference to key value 1 of 1");
  CHECK(refused(payload(varint(1) + varint(0), varint(0))) ==
        where + "image value: reference to key value 0 (NULL)");
  CHECK(refused(payload(varint(12))) == where + "image value: reserved value tag 12");
  CHECK(refused(payload(varint(6) + varint(0) + varint(2))) ==
        where + "image value: time zone offset 0 in an offset form");
  CHECK(refused(payload(varint(4) + varint(0))) ==
        where + "image value: whole-minute timestamp in a microsecond form");
  CHECK(refused(payload(varint(5) + varint(1ULL << 62))) ==
        where + "image value: timestamp minute 2305843009213693952 out of range");
  CHECK(refused(payload(varint(4) + varint(2 * 253'402'300'800'000'000ULL + 1)))
            .find("is outside years 1 to 9999") != std::string::npos);
  CHECK(refused(payload(varint(2) + "short")) ==
        where + "image value length 16 exceeds remaining 5 bytes");
  CHECK(refused(payload(varint(16 + 1) + "x", varint(1) + varint(0))) ==
        "table 0 key column 0, chunk 0 change 0: key value: key reference in a key column");
}

TEST_CASE("an encoder uses version 2 only once told, and a decoder reads both") {
  MeetingWorkload w(5);
  wire::Encoder enc;
  wire::Decoder dec;
  CHECK(enc.version() == 1);
  const wire::Batch b1{3, 1, {w.next_transaction()}};
  const std::string f1 = enc.encode(b1);
  CHECK(f1.substr(0, 4) == "MPFB");
  CHECK(enc.use_version(2).is_ok());
  const wire::Batch b2{3, 2, {w.next_transaction()}};
  const std::string f2 = enc.encode(b2);
  CHECK(f2.substr(0, 4) == "MPFC");
  CHECK(*dec.decode(f1) == wire::Message(b1));
  CHECK(*dec.decode(f2) == wire::Message(b2));
  CHECK(enc.use_version(1).is_ok());
  CHECK(enc.encode(wire::Batch{3, 3, {}}).substr(0, 4) == "MPFB");
  auto bad = enc.use_version(3);
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.message() ==
        "protocol version 3 chosen by the peer is not one this node offered (1 to 2)");
  CHECK(enc.version() == 1);
  // A version 1 node refuses a version 2 batch frame by its type, with a message saying so.
  CHECK(f2[3] == 'C');
}

TEST_CASE("version 2 has the documented bytes (the example in docs/protocol.md)") {
  // Two inserts of table 4 at hlc 1,795,346,475,708,057: meeting_id key, image (meeting_id,
  // number '00000081', starts_at a whole minute, ports 12, updated_at = now()), then the same
  // meeting's participant with a NULL user.
  const std::string meeting = "2610b5bb-f296-4468-bcd0-adab503f78bd";
  TxChunk c;
  c.position = {2, 41};
  c.txid = 736;
  c.total_changes = 2;
  const int64_t hlc = 1'795'346'475'708'057;
  c.changes = {
      change(4, Op::kInsert, 40, hlc, {Value(meeting)},
             {Value(meeting), Value("00000081"), Value("2026-12-24 03:41:00+00"), Value("12"),
              Value("2026-11-22 11:21:15.696868+00")}),
      change(4, Op::kInsert, 41, hlc, {Value(meeting)}, {Value(meeting), std::nullopt}),
  };
  CHECK(hex(wire::encode_batch_payload({c}, 2)) ==
        "01"
        "0452"
        "c00b"
        "04"
        "00"
        "01"
        "02"  // chunk header
        "0449"
        "50"
        "b2baf7cef5b6b006"
        "01"
        "05"  // change 0 header
        "0449"
        "02"
        "00"
        "01"
        "02"                                  // change 1 header
        "022610b5bbf2964468bcd0adab503f78bd"  // key column 0: change 0,
        "022610b5bbf2964468bcd0adab503f78bd"  //   change 1
        "0100"
        "0100"  // image column 0: references
        "183030303030303831"
        "00"          // image column 1
        "05e8c805"    // image column 2
        "0318"        // image column 3
        "04e9ae01");  // image column 4
}

TEST_CASE("hundreds of batches through one encoder and decoder come back in order") {
  MeetingWorkload w(7);
  std::mt19937_64 rng(11);
  wire::Encoder enc;
  wire::Decoder dec;
  SUBCASE("version 1") {}
  SUBCASE("version 2") { REQUIRE(enc.use_version(2).is_ok()); }
  for (uint64_t seq = 1; seq <= 300; ++seq) {
    wire::Batch b;
    b.session_id = 99;
    b.seq = seq;
    const size_t n = rng() % 6;  // 0 to 5 transactions, empty batches included
    for (size_t i = 0; i < n; ++i) b.chunks.push_back(w.next_transaction());
    auto r = dec.decode(enc.encode(b));
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    REQUIRE(*r == wire::Message(b));
  }
  CHECK(dec.batches() == 300);
  CHECK(enc.batches() == 300);
  CHECK(enc.wire_bytes() < enc.raw_bytes() / 2);
}

TEST_CASE("bytes per transaction shrink over a session of similar meeting rows") {
  // docs/design.md §11: the zstd window spans the session, so what repeats between transactions
  // (subjects, names, domains, user ids, column layout) costs almost nothing. Each transaction
  // is a new meeting with 3 participants (4 inserts, 4 fresh random UUIDs that no compressor
  // can shrink below ~16 bytes each). Measured at level 3 with a random 64-bit session id
  // (docs/protocol.md §10 has the table):
  // version 1, one transaction per batch (the thin-link worst case): raw 947 bytes, batch 1 =
  // 450, batch 10 = 266, batches 10-100 average 236; ten per batch: 167 bytes per transaction.
  // version 2 (values column by column, UUIDs in 16 octets, timestamps as differences): raw
  // 448, batch 1 = 352, batch 10 = 186, batches 10-100 average 168; ten per batch: 121.
  constexpr uint64_t kSession = 0x9e3779b97f4a7c15ULL;  // random ids take 10 varint bytes
  struct Figures {
    double raw_avg, first, tenth, later_avg, ten_per_batch;
  };
  auto measure = [&](uint32_t version) {
    MeetingWorkload w(2026);
    wire::Encoder enc;
    REQUIRE(enc.use_version(version).is_ok());
    wire::Decoder dec;
    std::vector<size_t> sizes;
    for (uint64_t seq = 1; seq <= 100; ++seq) {
      wire::Batch b{kSession, seq, {w.next_transaction()}};
      std::string frame = enc.encode(b);
      sizes.push_back(frame.size());
      auto back = dec.decode(frame);
      REQUIRE(back.is_ok());
      REQUIRE(*back == wire::Message(b));
    }
    Figures f{};
    f.raw_avg = double(enc.raw_bytes()) / double(sizes.size());
    f.first = double(sizes[0]);
    f.tenth = double(sizes[9]);
    size_t later = 0;
    for (size_t i = 9; i < sizes.size(); ++i) later += sizes[i];
    f.later_avg = double(later) / double(sizes.size() - 9);
    wire::Encoder enc10;
    REQUIRE(enc10.use_version(version).is_ok());
    for (uint64_t seq = 1; seq <= 30; ++seq) {
      wire::Batch b{kSession, seq, {}};
      for (int i = 0; i < 10; ++i) b.chunks.push_back(w.next_transaction());
      enc10.encode(b);
    }
    f.ten_per_batch = double(enc10.wire_bytes()) / 300;
    MESSAGE("version " << version << ", bytes per transaction, one per batch: raw " << f.raw_avg
                       << ", batch 1 = " << f.first << ", batch 10 = " << f.tenth
                       << ", batches 10-100 average = " << f.later_avg
                       << "; ten per batch: " << f.ten_per_batch);
    return f;
  };
  const Figures v1 = measure(1);
  CHECK(v1.tenth < 0.7 * v1.first);
  CHECK(v1.later_avg < v1.raw_avg / 3);
  CHECK(v1.later_avg < 300);
  CHECK(v1.ten_per_batch < 200);
  const Figures v2 = measure(2);
  CHECK(v2.tenth < 0.7 * v2.first);
  CHECK(v2.later_avg < 0.85 * v1.later_avg);
  CHECK(v2.ten_per_batch < 0.85 * v1.ten_per_batch);
}

TEST_CASE("every truncation of a valid frame is rejected cleanly") {
  Frames f = one_of_each();
  for (size_t i = 0; i < f.frames.size(); ++i) {
    const std::string& frame = f.frames[i];
    for (size_t len = 0; len < frame.size(); ++len) {
      CAPTURE(i);
      CAPTURE(len);
      wire::Decoder d = primed_for(f, i);
      check_rejected(d.decode(std::string_view(frame).substr(0, len)));
      CHECK(d.broken());
      // Resealed, the truncated body reaches the parser, which must refuse it on its own.
      if (len >= 8) {
        wire::Decoder d2 = primed_for(f, i);
        check_rejected(d2.decode(seal(frame.substr(0, len - 4))));
      }
    }
  }
}

TEST_CASE("random bit flips never crash the decoder") {
  // Fixed seed (docs/design.md §12). Flipped frames are mostly refused by the checksum; resealed
  // ones reach the parser and zstd with corrupted contents.
  Frames f = one_of_each();
  std::mt19937_64 rng(20261122);
  size_t accepted = 0;
  size_t accepted_resealed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const size_t i = rng() % f.frames.size();
    std::string frame = f.frames[i];
    const size_t flips = 1 + rng() % 3;
    std::vector<size_t> bits;
    while (bits.size() < flips) {
      const size_t bit = rng() % (frame.size() * 8);
      if (std::find(bits.begin(), bits.end(), bit) == bits.end()) bits.push_back(bit);
    }
    for (size_t bit : bits) frame[bit / 8] = static_cast<char>(frame[bit / 8] ^ (1 << (bit % 8)));
    const bool resealed = rng() % 2 == 0;
    if (resealed) frame = reseal(frame);
    wire::Decoder d = primed_for(f, i);
    auto r = d.decode(frame);
    if (r.is_ok()) {
      (resealed ? accepted_resealed : accepted)++;
    } else {
      CHECK(r.status().code() == Code::kInvalidArgument);
      CHECK(d.broken());
    }
  }
  MESSAGE("accepted after flips: " << accepted << " unsealed, " << accepted_resealed
                                   << " resealed, of 20000");
  CHECK(accepted == 0);  // CRC-32C catches every flip of 1 to 3 bits
}

TEST_CASE("malformed frames are refused with a message naming what is wrong") {
  wire::Encoder enc;
  auto decode = [](std::string_view frame) {
    wire::Decoder d;
    auto r = d.decode(frame);
    CHECK(d.broken() != r.is_ok());
    return r.is_ok() ? std::string("ok") : r.status().message();
  };
  const std::string ack = enc.encode(wire::Ack{1, 2, {3, 4}});

  SUBCASE("not ours") {
    CHECK(decode("GET / HTTP/1.1\r\n") ==
          "not an mpfailover frame: it starts with 0x47 0x45 0x54 0x20");
    CHECK(decode("") == "malformed frame: 0 bytes, shorter than the 4-byte header");
    CHECK(decode("MPFZxxxxxxxx") == "malformed frame: unknown message type 0x5a");
    CHECK(decode("MPFA") ==
          "malformed ack frame: 4 bytes, shorter than the 4-byte header and 4-byte checksum");
  }
  SUBCASE("corrupted: the checksum wins over what the parser says") {
    std::string bad = ack;
    bad[5] ^= 0x40;
    CHECK(decode(bad).rfind("corrupted ack frame: checksum 0x", 0) == 0);
  }
  SUBCASE("trailing garbage") {
    CHECK(decode(reseal(ack.substr(0, ack.size() - 4) + "zz" + "....")) ==
          "malformed ack frame: 2 trailing bytes after the message");
  }
  SUBCASE("varints: overflow and overlong encodings") {
    CHECK(decode(seal("MPFA" + std::string(10, '\xff') + "\x01")) ==
          "malformed ack frame: session id overflows 64 bits");
    CHECK(decode(seal("MPFA" + std::string(9, '\xff') + "\x02")) ==
          "malformed ack frame: session id overflows 64 bits");
    CHECK(decode(seal("MPFA" + bytes({0x81, 0x00}))) ==
          "malformed ack frame: session id has an overlong varint encoding");
    CHECK(decode(seal("MPFW" + varint(1ULL << 32))) ==
          "malformed welcome frame: version 4294967296 is out of range for 32 bits");
  }
  SUBCASE("a string length past the end") {
    CHECK(decode(seal("MPFR" + varint(1) + varint(4000000) + "twelve bytes")) ==
          "malformed refuse frame: reason length 4000000 exceeds remaining 12 bytes");
  }
  SUBCASE("batch payload: bad operation, reserved flags, value past the end") {
    auto payload = [](std::string chunk_body) { return varint(1) + chunk_body; };
    const std::string chunk = varint(2) + varint(2) + varint(2) + varint(2) + varint(0);
    CHECK(wire::decode_batch_payload(payload(chunk + "\x02" + varint(0))).status().message() ==
          "chunk 0: reserved flag bits set in 0x02");
    CHECK(wire::decode_batch_payload(payload(chunk + "\x01" + varint(1) + varint(0) + "X" +
                                             varint(0) + varint(0) + varint(0) + varint(0)))
              .status()
              .message() == "chunk 0 change 0: unknown operation 0x58");
    CHECK(wire::decode_batch_payload(payload(chunk + "\x01" + varint(1) + varint(0) + "I" +
                                             varint(0) + varint(0) + varint(1) + varint(4000001) +
                                             "twelve bytes" + varint(0)))
              .status()
              .message() ==
          "chunk 0 change 0: key value length 4000000 exceeds remaining 13 bytes");
    CHECK(
        wire::decode_batch_payload(payload(chunk + "\x01" + varint(0)) + "!").status().message() ==
        "1 trailing bytes after the last chunk");
  }
}

TEST_CASE("oversized counts are refused before anything big is allocated") {
  AllocationProbe probe;
  // Each claims far more elements than the bytes that follow could hold.
  auto r1 = wire::decode_batch_payload(varint(200000) + std::string(12, '\0'));
  auto r2 = wire::decode_batch_payload(varint(1ULL << 40));
  const std::string chunk = varint(1) + std::string(5, '\0') + "\x01";  // 1 chunk, last
  auto r3 = wire::decode_batch_payload(chunk + varint(1000000) + std::string(30, '\0'));
  auto r4 = wire::decode_batch_payload(chunk + varint(1) + varint(0) + "I" + varint(0) + varint(0) +
                                       varint(3000000) + std::string(20, '\0'));
  auto r4v2 =
      wire::decode_batch_payload(chunk + varint(1) + varint(0) + "I" + varint(0) + varint(0) +
                                     varint(1) + varint(3000000) + std::string(20, '\0'),
                                 2);
  wire::Decoder d;
  auto r5 = d.decode(seal("MPFH" + varint(1) + varint(1) + varint(0) + varint(0) + varint(0) +
                          varint(0) + varint(kU64Max) + std::string(40, '\0')));
  // A batch declaring a 64 MiB payload, with 5 bytes of zstd input behind it.
  wire::Decoder d2;
  auto r6 = d2.decode(seal("MPFB" + varint(1) + varint(1) + varint(0) +
                           varint(wire::kMaxPayloadBytes) + bytes({0x28, 0xb5, 0x2f, 0xfd, 0})));
  wire::Decoder d3;
  auto r7 = d3.decode(seal("MPFB" + varint(1) + varint(1) + varint(0) +
                           varint(wire::kMaxPayloadBytes + 1) + "zstd"));
  const size_t largest = probe.disarm();

  CHECK(r1.status().message() == "chunk count 200000 needs at least 1400000 bytes, 12 remain");
  CHECK(r2.status().message() == "chunk count 1099511627776 exceeds the limit of 262144");
  CHECK(r3.status().message() ==
        "chunk 0: change count 1000000 needs at least 6000000 bytes, 30 remain");
  CHECK(r4.status().message() ==
        "chunk 0 change 0: key value count 3000000 needs at least 3000000 bytes, 20 remain");
  CHECK(r4v2.status().message() ==
        "chunk 0 change 0: image value count 3000000 needs at least 3000000 bytes, 20 remain");
  CHECK(r5.status().message() ==
        "malformed hello frame: table count 18446744073709551615 exceeds the limit of 1048576");
  CHECK(r6.status().message().rfind("malformed batch frame seq 1: compressed data ends after 0 "
                                    "of the declared 67108864 payload bytes",
                                    0) == 0);
  CHECK(r7.status().message() ==
        "malformed batch frame seq 1: payload length 67108865 is outside 1 to 67108864");
#if MPF_WIRE_TEST_PROBE
  CHECK(largest <= (64 << 10) + 1);  // the first decompression buffer, nothing sized by a claim
#else
  (void)largest;
#endif
}

TEST_CASE("a lost, repeated or reordered batch frame is refused, then the decoder stays broken") {
  MeetingWorkload w(3);
  wire::Encoder enc;
  std::vector<std::string> frames;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    frames.push_back(enc.encode(wire::Batch{5, seq, {w.next_transaction()}}));
  }
  const std::string ack = enc.encode(wire::Ack{5, 1, {1, 1}});

  SUBCASE("lost") {
    wire::Decoder d;
    REQUIRE(d.decode(frames[0]).is_ok());
    auto r = d.decode(frames[2]);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message() ==
          "batch frame seq 3 is stream frame 2 where frame 1 was expected: a batch frame was "
          "lost, repeated or reordered; restart the session");
    CHECK(d.broken());
    // Even the right frame is refused now: the zstd stream may be out of step.
    auto again = d.decode(frames[1]);
    REQUIRE_FALSE(again.is_ok());
    CHECK(again.status().message().find("restart the session") != std::string::npos);
    // Uncompressed messages still decode.
    CHECK(d.decode(ack).is_ok());
  }
  SUBCASE("repeated") {
    wire::Decoder d;
    REQUIRE(d.decode(frames[0]).is_ok());
    check_rejected(d.decode(frames[0]));
  }
  SUBCASE("a batch of another session") {
    wire::Encoder other;
    wire::Decoder d;
    REQUIRE(d.decode(frames[0]).is_ok());
    auto r = d.decode(other.encode(wire::Batch{6, 1, {}}));
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message() ==
          "batch frame seq 1 belongs to session 6, not to this decoder's session 5");
  }
}

TEST_CASE("the encoder refuses a batch over the limits and stays usable") {
  wire::Encoder enc;
  wire::Batch big;
  big.seq = 4;
  big.chunks.resize(wire::kMaxBatchChunks + 1);
  auto r = enc.try_encode(big);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message() ==
        "batch seq 4: batch of 262145 chunks exceeds the limit of 262144; split the batch");
  CHECK_FALSE(enc.broken());
  wire::Decoder d;
  CHECK(d.decode(enc.encode(wire::Batch{1, 5, {}})).is_ok());
}

TEST_CASE("version negotiation picks the highest common version or says why there is none") {
  wire::Hello h;
  h.origin = "a";
  CHECK(*wire::negotiate_version(h) == wire::kProtocolVersion);
  h.min_version = 1;
  h.max_version = 9;
  CHECK(*wire::negotiate_version(h) == wire::kProtocolVersion);
  h.max_version = 1;  // a version 1 node: batches stay version 1
  CHECK(*wire::negotiate_version(h) == 1);
  h.min_version = 3;
  h.max_version = 9;
  auto r = wire::negotiate_version(h);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kFailedPrecondition);
  CHECK(r.status().message().find("no protocol version in common with node \"a\": it speaks "
                                  "versions 3 to 9, node \"\" speaks versions 1 to 2") == 0);
}

// Writes tests/fuzz/corpus when MPF_WRITE_FUZZ_CORPUS names that directory; otherwise does
// nothing. See tests/fuzz/CMakeLists.txt.
TEST_CASE("fuzz seed corpus generator") {
  const char* dir = std::getenv("MPF_WRITE_FUZZ_CORPUS");
  if (dir == nullptr) return;
  auto write = [&](const std::string& name, const std::string& data) {
    std::ofstream out(std::string(dir) + "/" + name, std::ios::binary | std::ios::trunc);
    out << data;
    REQUIRE(out.good());
  };
  const std::string sep = "#next-frame#";  // wire_fuzz.cpp splits inputs on it
  Frames f = one_of_each();
  const char* names[] = {"hello",        "hello_edge",   "welcome",     "refuse",
                         "ack",          "apply_error",  "batch_empty", "batch_edges",
                         "batch_second", "batch2_edges", "batch2_forms"};
  REQUIRE(f.frames.size() == std::size(names));
  for (size_t i = 0; i < f.frames.size(); ++i) write(names[i], f.frames[i]);
  write("stream_edges", f.frames[7] + sep + f.frames[8] + sep + f.frames[4]);
  {
    wire::Encoder enc2;
    REQUIRE(enc2.use_version(2).is_ok());
    write("stream2_forms", enc2.encode(forms_batch(4, 1)) + sep + enc2.encode(forms_batch(4, 2)));
  }
  write("payload2_forms", wire::encode_batch_payload(forms_batch(4, 1).chunks, 2));

  MeetingWorkload w(1);
  wire::Encoder enc;
  std::string stream = enc.encode(sample_hello());
  std::vector<TxChunk> two = {w.next_transaction(), w.next_transaction()};
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    stream += sep + enc.encode(wire::Batch{9, seq, {w.next_transaction(), w.next_transaction()}});
  }
  write("stream_meetings", stream);
  write("payload_meetings", wire::encode_batch_payload(two));
  write("payload2_meetings", wire::encode_batch_payload(two, 2));
  {
    MeetingWorkload w2(2);
    wire::Encoder enc2;
    REQUIRE(enc2.use_version(2).is_ok());
    std::string stream2 = enc2.encode(sample_hello());
    for (uint64_t seq = 1; seq <= 2; ++seq) {
      stream2 +=
          sep + enc2.encode(wire::Batch{9, seq, {w2.next_transaction(), w2.next_transaction()}});
    }
    write("stream2_meetings", stream2);
  }
  write("payload_edges", wire::encode_batch_payload(edge_batch().chunks));
  write("truncated_batch", f.frames[7].substr(0, f.frames[7].size() / 2));
  write("truncated_hello", f.frames[0].substr(0, 20));
  write("bad_magic", "GET / HTTP/1.1\r\n\r\n");
}

TEST_SUITE_END();
