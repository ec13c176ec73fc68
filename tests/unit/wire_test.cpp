// The port-2008 wire codec (replicator/PROTOCOL.md): round trips, the compression stream across
// the batches of a session (NOTES.md §11), and hostile input (NOTES.md §6: whatever arrives on
// port 2008 may be truncated, corrupted, repeated or not ours at all).
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

// One valid frame of each message type, the batches from one Encoder (so batch 1 needs batch 0
// decoded first).
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
  };
  for (const auto& m : f.messages) f.frames.push_back(enc.encode(m));
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
// form the capture trigger produces (NOTES.md §11: subjects, domains, user ids repeat).
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
  CHECK(dec.batches() == 3);

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

TEST_CASE("frames have the documented bytes (the examples in PROTOCOL.md)") {
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
        "4d50464801010161016202ac02010c7075626c69632e75736572730207757365725f6964056c6f67696e"
        "0107757365725f69640039e90589");
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

TEST_CASE("hundreds of batches through one encoder and decoder come back in order") {
  MeetingWorkload w(7);
  std::mt19937_64 rng(11);
  wire::Encoder enc;
  wire::Decoder dec;
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
  // NOTES.md §11: the zstd window spans the session, so what repeats between transactions
  // (subjects, names, domains, user ids, column layout) costs almost nothing. Each transaction
  // is a new meeting with 3 participants (4 inserts, 4 fresh random UUIDs that no compressor
  // can shrink below ~16 bytes each). Measured at level 3 with a random 64-bit session id:
  // one transaction per batch (the thin-link worst case): raw 947 bytes, batch 1 = 450, batch 10
  // = 266, batches 10-100 average 236; ten per batch: 167 bytes per transaction.
  constexpr uint64_t kSession = 0x9e3779b97f4a7c15ULL;  // random ids take 10 varint bytes
  MeetingWorkload w(2026);
  wire::Encoder enc;
  wire::Decoder dec;
  std::vector<size_t> sizes;
  for (uint64_t seq = 1; seq <= 100; ++seq) {
    wire::Batch b{kSession, seq, {w.next_transaction()}};
    std::string frame = enc.encode(b);
    sizes.push_back(frame.size());
    REQUIRE(dec.decode(frame).is_ok());
  }
  const double raw_avg = double(enc.raw_bytes()) / double(sizes.size());
  size_t later = 0;
  for (size_t i = 9; i < sizes.size(); ++i) later += sizes[i];
  const double later_avg = double(later) / double(sizes.size() - 9);
  MESSAGE("bytes per transaction, one per batch: raw "
          << raw_avg << ", batch 1 = " << sizes[0] << ", batch 10 = " << sizes[9]
          << ", batches 10-100 average = " << later_avg);
  CHECK(double(sizes[9]) < 0.7 * double(sizes[0]));
  CHECK(later_avg < raw_avg / 3);
  CHECK(later_avg < 300);

  SUBCASE("ten transactions per batch") {
    wire::Encoder enc10;
    for (uint64_t seq = 1; seq <= 30; ++seq) {
      wire::Batch b{kSession, seq, {}};
      for (int i = 0; i < 10; ++i) b.chunks.push_back(w.next_transaction());
      enc10.encode(b);
    }
    const double per_tx = double(enc10.wire_bytes()) / 300;
    MESSAGE("bytes per transaction, ten per batch: " << per_tx);
    CHECK(per_tx < 200);
  }
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
  // Fixed seed (tests/STYLE.md §6). Flipped frames are mostly refused by the checksum; resealed
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
  h.min_version = 2;
  auto r = wire::negotiate_version(h);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kFailedPrecondition);
  CHECK(r.status().message() ==
        "no protocol version in common with node \"a\": it speaks 2 to 9, this node speaks 1 to 1");
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
  const char* names[] = {"hello",       "hello_edge",  "welcome",     "refuse",      "ack",
                         "apply_error", "batch_empty", "batch_edges", "batch_second"};
  for (size_t i = 0; i < f.frames.size(); ++i) write(names[i], f.frames[i]);
  write("stream_edges", f.frames[7] + sep + f.frames[8] + sep + f.frames[4]);

  MeetingWorkload w(1);
  wire::Encoder enc;
  std::string stream = enc.encode(sample_hello());
  std::vector<TxChunk> two = {w.next_transaction(), w.next_transaction()};
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    stream += sep + enc.encode(wire::Batch{9, seq, {w.next_transaction(), w.next_transaction()}});
  }
  write("stream_meetings", stream);
  write("payload_meetings", wire::encode_batch_payload(two));
  write("payload_edges", wire::encode_batch_payload(edge_batch().chunks));
  write("truncated_batch", f.frames[7].substr(0, f.frames[7].size() / 2));
  write("truncated_hello", f.frames[0].substr(0, 20));
  write("bad_magic", "GET / HTTP/1.1\r\n\r\n");
}

TEST_SUITE_END();
