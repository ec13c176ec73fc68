// NOTES: the wire codec (layout in docs/protocol.md).
//
// - Batches of a session form one zstd stream per direction: the Encoder flushes (ZSTD_e_flush)
//   after each batch but never ends the zstd frame, so the window keeps the rows of earlier
//   batches and a repeated subject, domain or user id costs a few bits (docs/design.md §11). The
//   price is order: a batch frame decodes only right after the one before it, and zstd given the
//   wrong history may produce wrong bytes without an error. Each batch header therefore carries the
//   Encoder's stream frame number, so a lost, repeated or reordered frame (ZeroMQ reconnects
//   silently, docs/design.md §6) is refused with a message instead of decoding into wrong rows.
// - Every frame ends with a CRC-32C of the bytes before it. TCP's 16-bit checksum lets a rare
//   corrupted segment through; a flipped bit in an ack's position would let the source trim log
//   rows the target never applied (docs/design.md §2). The decoder parses first and checks the CRC
//   last, so hostile input always exercises the parser, and a corrupted frame is reported as
//   such even when it also fails to parse.
// - Hostile input: every count is checked against the bytes left before anything is reserved,
//   the decompressed size is declared up front and enforced while decompressing (output grows
//   with what zstd really produces, never to a size only claimed), the zstd window is capped
//   (ZSTD_d_windowLogMax), and batch contents are capped (kMaxBatchChunks/Changes/Values). So a
//   frame of n bytes costs O(n) work and memory, up to the fixed caps.
// - Canonical encoding: varints are minimal and reserved bits must be zero, so an accepted
//   payload re-encodes to the same bytes; the fuzzer checks that.
#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>

#include <zstd.h>

#include <mpf/replicator/wire.hpp>

#include "byte_io.hpp"
#include "crc32c.hpp"
#include "value_forms.hpp"

namespace mpf::replicator::wire {

namespace {

using codec::Reader;
using codec::Writer;

enum class Type : char {
  kHello = 'H',
  kWelcome = 'W',
  kRefuse = 'R',
  kBatch = 'B',   // version 1 payload
  kBatch2 = 'C',  // version 2 payload
  kAck = 'A',
  kApplyError = 'E',
};
constexpr size_t kHeaderBytes = 4;   // "MPF" + type
constexpr size_t kTrailerBytes = 4;  // CRC-32C of everything before it

// Smallest wire size of one element, for checking counts against the bytes left.
constexpr size_t kMinChunkBytes = 7;   // 5 varints, flags byte, change count
constexpr size_t kMinChangeBytes = 6;  // table, op, seq, hlc, key count, image count
constexpr size_t kMinTableBytes = 3;   // relation, column count, key count
constexpr size_t kMinExtensionBytes = 2;

constexpr uint8_t kFlagLast = 0x01;

std::string frame_header(Type t) { return std::string{'M', 'P', 'F', static_cast<char>(t)}; }

std::string hex_bytes(std::string_view s) {
  std::string out;
  char buf[8];
  for (size_t i = 0; i < s.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s0x%02x", i ? " " : "", static_cast<uint8_t>(s[i]));
    out += buf;
  }
  return out;
}

[[maybe_unused]] std::string hex32(uint32_t v) {  // unused when fuzzing
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string bytes_str(size_t bytes) { return std::to_string(bytes) + " bytes"; }

// ---- batch payload -----------------------------------------------------------------------------

void write_payload(Writer& w, const std::vector<TxChunk>& chunks) {
  Position prev_pos;
  uint64_t prev_txid = 0;
  int64_t prev_seq = 0;
  int64_t prev_hlc = 0;
  w.varint(chunks.size());
  for (const TxChunk& c : chunks) {
    w.zigzag(codec::wrapping_sub(c.position.tick, prev_pos.tick));
    w.zigzag(codec::wrapping_sub(c.position.seq, prev_pos.seq));
    w.zigzag(static_cast<int64_t>(c.txid - prev_txid));
    w.zigzag(c.total_changes);
    w.zigzag(c.part);
    w.byte(c.last ? kFlagLast : 0);
    w.varint(c.changes.size());
    prev_pos = c.position;
    prev_txid = c.txid;
    for (const RowChange& ch : c.changes) {
      w.varint(static_cast<uint32_t>(ch.table_id));
      w.byte(static_cast<uint8_t>(ch.op));
      w.zigzag(codec::wrapping_sub(ch.seq, prev_seq));
      w.zigzag(codec::wrapping_sub(ch.hlc, prev_hlc));
      prev_seq = ch.seq;
      prev_hlc = ch.hlc;
      w.varint(ch.key.size());
      for (const Value& v : ch.key) w.value(v);
      w.varint(ch.image.size());
      for (const Value& v : ch.image) w.value(v);
    }
  }
}

Status check_batch_limits(const std::vector<TxChunk>& chunks) {
  if (chunks.size() > kMaxBatchChunks) {
    return invalid_argument("batch of " + std::to_string(chunks.size()) +
                            " chunks exceeds the limit of " + std::to_string(kMaxBatchChunks));
  }
  size_t changes = 0;
  size_t values = 0;
  for (const TxChunk& c : chunks) {
    changes += c.changes.size();
    for (const RowChange& ch : c.changes) values += ch.key.size() + ch.image.size();
  }
  if (changes > kMaxBatchChanges) {
    return invalid_argument("batch of " + std::to_string(changes) +
                            " changes exceeds the limit of " + std::to_string(kMaxBatchChanges));
  }
  if (values > kMaxBatchValues) {
    return invalid_argument("batch of " + std::to_string(values) + " values exceeds the limit of " +
                            std::to_string(kMaxBatchValues));
  }
  return Status::ok();
}

bool read_values(Reader& r, std::vector<Value>* out, size_t* values_left, const char* count_what,
                 const char* value_what) {
  uint64_t n;
  if (!r.count(&n, 1, *values_left, count_what)) return false;
  *values_left -= static_cast<size_t>(n);
  out->resize(static_cast<size_t>(n));
  for (Value& v : *out) {
    if (!r.value(&v, value_what)) return false;
  }
  return true;
}

bool read_change(Reader& r, RowChange* ch, int64_t* prev_seq, int64_t* prev_hlc,
                 size_t* values_left) {
  uint32_t table;
  if (!r.u32(&table, "table index")) return false;
  ch->table_id = static_cast<int32_t>(table);
  uint8_t op;
  if (!r.byte(&op, "operation")) return false;
  if (op != 'I' && op != 'U' && op != 'D') {
    return r.fail("unknown operation " +
                  hex_bytes(std::string_view(reinterpret_cast<const char*>(&op), 1)));
  }
  ch->op = static_cast<Op>(op);
  int64_t d;
  if (!r.zigzag(&d, "change seq delta")) return false;
  ch->seq = *prev_seq = codec::wrapping_add(*prev_seq, d);
  if (!r.zigzag(&d, "hlc delta")) return false;
  ch->hlc = *prev_hlc = codec::wrapping_add(*prev_hlc, d);
  return read_values(r, &ch->key, values_left, "key value count", "key value") &&
         read_values(r, &ch->image, values_left, "image value count", "image value");
}

// What a chunk header is coded against: the previous chunk's position and txid.
struct ChunkCursor {
  Position pos;
  uint64_t txid = 0;
};

// A chunk's header, the same in payload versions 1 and 2: position and txid as deltas, total
// changes, part, flags, and the change count (checked against `changes_left` before anything is
// allocated). Sizes c->changes; the changes themselves are each version's own.
bool read_chunk_header(Reader& r, uint64_t i, ChunkCursor* cursor, size_t* changes_left,
                       TxChunk* c) {
  int64_t d;
  uint8_t flags;
  uint64_t nchanges;
  bool ok = r.zigzag(&d, "position tick delta");
  if (ok) c->position.tick = codec::wrapping_add(cursor->pos.tick, d);
  ok = ok && r.zigzag(&d, "position seq delta");
  if (ok) c->position.seq = codec::wrapping_add(cursor->pos.seq, d);
  ok = ok && r.zigzag(&d, "txid delta");
  if (ok) c->txid = cursor->txid + static_cast<uint64_t>(d);
  ok = ok && r.zigzag(&c->total_changes, "total changes") && r.i32(&c->part, "part") &&
       r.byte(&flags, "flags");
  if (ok && (flags & ~kFlagLast) != 0) {
    ok = r.fail("reserved flag bits set in " +
                hex_bytes(std::string_view(reinterpret_cast<const char*>(&flags), 1)));
  }
  ok = ok && r.count(&nchanges, kMinChangeBytes, *changes_left, "change count");
  if (!ok) return r.context("chunk " + std::to_string(i));
  c->last = (flags & kFlagLast) != 0;
  cursor->pos = c->position;
  cursor->txid = c->txid;
  *changes_left -= static_cast<size_t>(nchanges);
  c->changes.resize(static_cast<size_t>(nchanges));
  return true;
}

bool read_payload(Reader& r, std::vector<TxChunk>* out) {
  uint64_t nchunks;
  if (!r.count(&nchunks, kMinChunkBytes, kMaxBatchChunks, "chunk count")) return false;
  out->reserve(static_cast<size_t>(nchunks));
  ChunkCursor cursor;
  int64_t prev_seq = 0;
  int64_t prev_hlc = 0;
  size_t changes_left = kMaxBatchChanges;
  size_t values_left = kMaxBatchValues;
  for (uint64_t i = 0; i < nchunks; ++i) {
    TxChunk& c = out->emplace_back();
    if (!read_chunk_header(r, i, &cursor, &changes_left, &c)) return false;
    for (size_t k = 0; k < c.changes.size(); ++k) {
      if (!read_change(r, &c.changes[k], &prev_seq, &prev_hlc, &values_left)) {
        return r.context("chunk " + std::to_string(i) + " change " + std::to_string(k));
      }
    }
  }
  return true;
}

// ---- batch payload, version 2 -----------------------------------------------------------------
// The headers of every chunk and change first, then the values column by column: all values of
// (table 0, key column 0), of (table 0, key column 1), ..., (table 0, image column 0), ..., then
// table 1. Values of one column look alike (timestamps near each other, one domain, one status
// word), so zstd finds them close together; interleaved with the other columns they were not.
// Values take a compact form when their text is exactly what that form renders (value_forms.hpp).

// Value tags (docs/protocol.md §4.4). Tags 10 to 15 are reserved; text of n octets is tag n + 16.
constexpr uint64_t kTagNull = 0;
constexpr uint64_t kTagKeyRef = 1;  // an image value equal to a key value of the same change
constexpr uint64_t kTagUuid = 2;
constexpr uint64_t kTagInt = 3;
constexpr uint64_t kTagTsUtc = 4;           // "+00": zigzag µs delta from the change's hlc
constexpr uint64_t kTagTsUtcMinute = 5;     // "+00", whole minute: zigzag minute delta
constexpr uint64_t kTagTsOffset = 6;        // zigzag32 offset seconds (not 0), µs delta
constexpr uint64_t kTagTsOffsetMinute = 7;  // zigzag32 offset seconds (not 0), minute delta
constexpr uint64_t kTagTsLocal = 8;         // timestamp without time zone, µs delta
constexpr uint64_t kTagTsLocalMinute = 9;   // timestamp without time zone, minute delta
constexpr uint64_t kTagText = 16;
// A timestamp's tag is its base form (UTC, offset, local) plus 1 for a whole minute.
static_assert(kTagTsUtcMinute == kTagTsUtc + 1 && kTagTsOffsetMinute == kTagTsOffset + 1 &&
              kTagTsLocalMinute == kTagTsLocal + 1);

// One value of a payload: its column and its change (16 octets: a hostile payload may hold
// kMaxBatchValues of them). RowChange or const RowChange.
template <typename Change>
struct Slot {
  uint64_t column;  // table (32 bits) | image (1 bit) | value index (31 bits)
  Change* change;

  bool image() const { return (column >> 31 & 1) != 0; }
  size_t index() const { return static_cast<size_t>(column & 0x7fffffff); }
};

// Every value of these changes, in column order (stable: change order within a column).
// REQUIRES: fewer than 2^31 values per change (the batch limits ensure it).
template <typename Change, typename Changes>
std::vector<Slot<Change>> in_column_order(Changes& chunks, size_t values) {
  std::vector<Slot<Change>> slots;
  slots.reserve(values);
  for (auto& c : chunks) {
    for (Change& ch : c.changes) {
      const uint64_t table = uint64_t{static_cast<uint32_t>(ch.table_id)} << 32;
      for (size_t j = 0; j < ch.key.size(); ++j) slots.push_back({table | j, &ch});
      for (size_t j = 0; j < ch.image.size(); ++j) {
        slots.push_back({table | uint64_t{1} << 31 | j, &ch});
      }
    }
  }
  std::stable_sort(slots.begin(), slots.end(), [](const Slot<Change>& a, const Slot<Change>& b) {
    return a.column < b.column;
  });
  return slots;
}

int64_t minute_of(int64_t us) { return codec::floor_div(us, codec::kUsPerMinute); }

// The lowest j with key[j] == v, or -1.
int64_t key_ref(const std::vector<Value>& key, const std::string& v) {
  for (size_t j = 0; j < key.size(); ++j) {
    if (key[j] && *key[j] == v) return static_cast<int64_t>(j);
  }
  return -1;
}

// `key` is the change's key for an image value, nullptr for a key value.
void write_value2(Writer& w, const Value& v, int64_t hlc, const std::vector<Value>* key) {
  if (!v) {
    w.varint(kTagNull);
    return;
  }
  const std::string& s = *v;
  if (key != nullptr) {
    if (const int64_t j = key_ref(*key, s); j >= 0) {
      w.varint(kTagKeyRef);
      w.varint(static_cast<uint64_t>(j));
      return;
    }
  }
  codec::UuidBytes u;
  int64_t i;
  codec::Timestamp t;
  if (codec::parse_uuid(s, &u)) {
    w.varint(kTagUuid);
    w.raw(std::string_view(reinterpret_cast<const char*>(u.data()), u.size()));
  } else if (codec::parse_int(s, &i)) {
    w.varint(kTagInt);
    w.zigzag(i);
  } else if (codec::parse_timestamp(s, &t)) {
    const bool minute = t.utc_us % codec::kUsPerMinute == 0;
    const uint64_t base = !t.zoned ? kTagTsLocal : t.offset_s == 0 ? kTagTsUtc : kTagTsOffset;
    w.varint(base + (minute ? 1 : 0));
    if (base == kTagTsOffset) w.zigzag(t.offset_s);
    w.zigzag(minute ? codec::wrapping_sub(t.utc_us / codec::kUsPerMinute, minute_of(hlc))
                    : codec::wrapping_sub(t.utc_us, hlc));
  } else {
    w.varint(static_cast<uint64_t>(s.size()) + kTagText);
    w.raw(s);
  }
}

void write_change_header(Writer& w, const RowChange& ch, int64_t* prev_seq, int64_t* prev_hlc) {
  w.varint(static_cast<uint32_t>(ch.table_id));
  w.byte(static_cast<uint8_t>(ch.op));
  w.zigzag(codec::wrapping_sub(ch.seq, *prev_seq));
  w.zigzag(codec::wrapping_sub(ch.hlc, *prev_hlc));
  *prev_seq = ch.seq;
  *prev_hlc = ch.hlc;
}

void write_chunk_header(Writer& w, const TxChunk& c, Position* prev_pos, uint64_t* prev_txid) {
  w.zigzag(codec::wrapping_sub(c.position.tick, prev_pos->tick));
  w.zigzag(codec::wrapping_sub(c.position.seq, prev_pos->seq));
  w.zigzag(static_cast<int64_t>(c.txid - *prev_txid));
  w.zigzag(c.total_changes);
  w.zigzag(c.part);
  w.byte(c.last ? kFlagLast : 0);
  w.varint(c.changes.size());
  *prev_pos = c.position;
  *prev_txid = c.txid;
}

void write_payload2(Writer& w, const std::vector<TxChunk>& chunks) {
  Position prev_pos;
  uint64_t prev_txid = 0;
  int64_t prev_seq = 0;
  int64_t prev_hlc = 0;
  size_t values = 0;
  w.varint(chunks.size());
  for (const TxChunk& c : chunks) {
    write_chunk_header(w, c, &prev_pos, &prev_txid);
    for (const RowChange& ch : c.changes) {
      write_change_header(w, ch, &prev_seq, &prev_hlc);
      w.varint(ch.key.size());
      w.varint(ch.image.size());
      values += ch.key.size() + ch.image.size();
    }
  }
  for (const auto& s : in_column_order<const RowChange>(chunks, values)) {
    const RowChange& ch = *s.change;
    if (s.image()) {
      write_value2(w, ch.image[s.index()], ch.hlc, &ch.key);
    } else {
      write_value2(w, ch.key[s.index()], ch.hlc, nullptr);
    }
  }
}

bool read_timestamp2(Reader& r, uint64_t tag, int64_t hlc, std::string* out, const char* what) {
  codec::Timestamp t;
  t.zoned = tag < kTagTsLocal;
  if (tag == kTagTsOffset || tag == kTagTsOffsetMinute) {
    if (!r.i32(&t.offset_s, what)) return false;
    if (t.offset_s == 0)
      return r.fail(std::string(what) + ": time zone offset 0 in an offset form");
  }
  const bool minute = (tag - kTagTsUtc) % 2 == 1;
  int64_t d;
  if (!r.zigzag(&d, what)) return false;
  if (minute) {
    const int64_t m = codec::wrapping_add(minute_of(hlc), d);
    constexpr int64_t kMaxMinutes = INT64_MAX / codec::kUsPerMinute;
    if (m < -kMaxMinutes || m > kMaxMinutes) {
      return r.fail(std::string(what) + ": timestamp minute " + std::to_string(m) +
                    " out of range");
    }
    t.utc_us = m * codec::kUsPerMinute;
  } else {
    t.utc_us = codec::wrapping_add(hlc, d);
    if (t.utc_us % codec::kUsPerMinute == 0) {
      return r.fail(std::string(what) + ": whole-minute timestamp in a microsecond form");
    }
  }
  if (!codec::render_timestamp(t, out)) {
    return r.fail(std::string(what) + ": timestamp " + std::to_string(t.utc_us) +
                  " us with offset " + std::to_string(t.offset_s) +
                  " s is outside years 1 to 9999");
  }
  return true;
}

// The inverse of write_value2, refusing every form write_value2 would not have chosen.
bool read_value2(Reader& r, Value* out, int64_t hlc, const std::vector<Value>* key,
                 const char* what) {
  uint64_t tag;
  if (!r.varint(&tag, what)) return false;
  if (tag == kTagNull) {
    out->reset();
    return true;
  }
  std::string s;
  if (tag == kTagKeyRef) {
    uint64_t j;
    if (key == nullptr) return r.fail(std::string(what) + ": key reference in a key column");
    if (!r.varint(&j, what)) return false;
    if (j >= key->size() || !(*key)[j]) {
      return r.fail(std::string(what) + ": reference to key value " + std::to_string(j) +
                    (j >= key->size() ? " of " + std::to_string(key->size()) : " (NULL)"));
    }
    if (key_ref(*key, *(*key)[j]) != static_cast<int64_t>(j)) {
      return r.fail(std::string(what) + ": reference to key value " + std::to_string(j) +
                    ", equal to an earlier one");
    }
    *out = (*key)[j];
    return true;
  }
  if (tag == kTagUuid) {
    std::string_view b;
    if (!r.bytes(16, &b, what)) return false;
    codec::UuidBytes u;
    std::copy(b.begin(), b.end(), u.begin());
    s = codec::render_uuid(u);
  } else if (tag == kTagInt) {
    int64_t i;
    if (!r.zigzag(&i, what)) return false;
    s = std::to_string(i);
  } else if (tag >= kTagTsUtc && tag <= kTagTsLocalMinute) {
    if (!read_timestamp2(r, tag, hlc, &s, what)) return false;
  } else if (tag < kTagText) {
    return r.fail(std::string(what) + ": reserved value tag " + std::to_string(tag));
  } else {
    std::string_view b;
    if (!r.bytes(tag - kTagText, &b, what)) return false;
    s.assign(b.data(), b.size());
    codec::UuidBytes u;
    int64_t i;
    codec::Timestamp t;
    const char* form = codec::parse_uuid(s, &u)        ? "uuid"
                       : codec::parse_int(s, &i)       ? "integer"
                       : codec::parse_timestamp(s, &t) ? "timestamp"
                                                       : nullptr;
    if (form != nullptr) {
      return r.fail(std::string(what) + ": text \"" + s + "\" not in its " + form + " form");
    }
  }
  if (key != nullptr && key_ref(*key, s) >= 0) {
    return r.fail(std::string(what) + ": value equal to key value " +
                  std::to_string(key_ref(*key, s)) + " not sent as a reference to it");
  }
  out->emplace(std::move(s));
  return true;
}

bool read_payload2(Reader& r, std::vector<TxChunk>* out) {
  uint64_t nchunks;
  if (!r.count(&nchunks, kMinChunkBytes, kMaxBatchChunks, "chunk count")) return false;
  out->reserve(static_cast<size_t>(nchunks));
  ChunkCursor cursor;
  int64_t prev_seq = 0;
  int64_t prev_hlc = 0;
  size_t changes_left = kMaxBatchChanges;
  size_t values_left = kMaxBatchValues;
  for (uint64_t i = 0; i < nchunks; ++i) {
    TxChunk& c = out->emplace_back();
    if (!read_chunk_header(r, i, &cursor, &changes_left, &c)) return false;
    for (size_t k = 0; k < c.changes.size(); ++k) {
      RowChange& ch = c.changes[k];
      uint32_t table;
      uint8_t op;
      uint64_t nkey;
      uint64_t nimage;
      int64_t d;
      bool ok = r.u32(&table, "table index") && r.byte(&op, "operation");
      if (ok && op != 'I' && op != 'U' && op != 'D') {
        ok = r.fail("unknown operation " +
                    hex_bytes(std::string_view(reinterpret_cast<const char*>(&op), 1)));
      }
      ok = ok && r.zigzag(&d, "change seq delta");
      if (ok) ch.seq = prev_seq = codec::wrapping_add(prev_seq, d);
      ok = ok && r.zigzag(&d, "hlc delta");
      if (ok) ch.hlc = prev_hlc = codec::wrapping_add(prev_hlc, d);
      // Each value takes at least one octet after the headers: counts are checked against what
      // remains, before anything is allocated.
      ok = ok && r.count(&nkey, 1, values_left, "key value count");
      if (ok) values_left -= static_cast<size_t>(nkey);
      ok = ok && r.count(&nimage, 1, values_left, "image value count");
      if (!ok) return r.context("chunk " + std::to_string(i) + " change " + std::to_string(k));
      values_left -= static_cast<size_t>(nimage);
      ch.table_id = static_cast<int32_t>(table);
      ch.op = static_cast<Op>(op);
      ch.key.resize(static_cast<size_t>(nkey));
      ch.image.resize(static_cast<size_t>(nimage));
    }
  }
  for (const auto& s : in_column_order<RowChange>(*out, kMaxBatchValues - values_left)) {
    RowChange& ch = *s.change;
    const bool image = s.image();
    const bool ok = image ? read_value2(r, &ch.image[s.index()], ch.hlc, &ch.key, "image value")
                          : read_value2(r, &ch.key[s.index()], ch.hlc, nullptr, "key value");
    if (!ok) {
      // Where, for the operator: find the change (only on this error path).
      for (size_t i = 0; i < out->size(); ++i) {
        const auto& changes = (*out)[i].changes;
        if (changes.empty() || s.change < &changes.front() || s.change > &changes.back()) {
          continue;
        }
        return r.context("table " + std::to_string(static_cast<uint32_t>(ch.table_id)) +
                         (image ? " image column " : " key column ") + std::to_string(s.index()) +
                         ", chunk " + std::to_string(i) + " change " +
                         std::to_string(s.change - &changes.front()));
      }
      return false;
    }
  }
  return true;
}

// ---- other messages ----------------------------------------------------------------------------

void write_position(Writer& w, const Position& p) {
  w.zigzag(p.tick);
  w.zigzag(p.seq);
}

bool read_position(Reader& r, Position* p) {
  return r.zigzag(&p->tick, "position tick") && r.zigzag(&p->seq, "position seq");
}

void write_hello(Writer& w, const Hello& h) {
  w.varint(h.min_version);
  w.varint(h.max_version);
  w.string(h.origin);
  w.string(h.target);
  w.zigzag(h.catalog_version);
  w.varint(h.session_id);
  w.varint(h.tables.size());
  for (const TableSpec& t : h.tables) {
    w.string(t.relation);
    w.varint(t.columns.size());
    for (const auto& c : t.columns) w.string(c);
    w.varint(t.key_columns.size());
    for (const auto& c : t.key_columns) w.string(c);
  }
  // Extensions (§4.1): only the sender's software version so far, for the operator (status).
  if (h.software.empty()) {
    w.varint(0);
  } else {
    w.varint(1);
    w.varint(kHelloExtensionSoftware);
    w.string(h.software);
  }
}

size_t hello_names(const Hello& h) {
  size_t n = 0;
  for (const TableSpec& t : h.tables) n += 1 + t.columns.size() + t.key_columns.size();
  return n;
}

bool read_names(Reader& r, std::vector<std::string>* out, size_t* names_left,
                const char* count_what, const char* name_what) {
  uint64_t n;
  if (!r.count(&n, 1, *names_left, count_what)) return false;
  *names_left -= static_cast<size_t>(n);
  out->resize(static_cast<size_t>(n));
  for (auto& s : *out) {
    if (!r.string(&s, name_what)) return false;
  }
  return true;
}

bool read_hello(Reader& r, Hello* h) {
  if (!r.u32(&h->min_version, "min version") || !r.u32(&h->max_version, "max version") ||
      !r.string(&h->origin, "origin") || !r.string(&h->target, "target") ||
      !r.i32(&h->catalog_version, "catalog version") || !r.varint(&h->session_id, "session id")) {
    return false;
  }
  uint64_t ntables;
  if (!r.count(&ntables, kMinTableBytes, kMaxHelloNames, "table count")) return false;
  size_t names_left = kMaxHelloNames - static_cast<size_t>(ntables);
  h->tables.resize(static_cast<size_t>(ntables));
  for (size_t i = 0; i < h->tables.size(); ++i) {
    TableSpec& t = h->tables[i];
    if (!r.string(&t.relation, "relation") ||
        !read_names(r, &t.columns, &names_left, "column count", "column name") ||
        !read_names(r, &t.key_columns, &names_left, "key column count", "key column name")) {
      return r.context("table " + std::to_string(i));
    }
  }
  // Extensions let a later version add to the hello, which must stay readable by every version
  // (it carries the version range). Unknown tags are skipped, and so is a software version too
  // long to be one (it is for the operator's eyes only).
  uint64_t next;
  if (!r.count(&next, kMinExtensionBytes, UINT32_MAX, "extension count")) return false;
  for (uint64_t i = 0; i < next; ++i) {
    uint64_t tag;
    std::string_view data;
    if (!r.varint(&tag, "extension tag") || !r.string_view(&data, "extension")) {
      return r.context("extension " + std::to_string(i));
    }
    if (tag == kHelloExtensionSoftware && data.size() <= kMaxSoftwareVersionBytes) {
      h->software = std::string(data);
    }
  }
  return true;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kHello:
      return "hello";
    case Type::kWelcome:
      return "welcome";
    case Type::kRefuse:
      return "refuse";
    case Type::kBatch:
    case Type::kBatch2:
      return "batch";
    case Type::kAck:
      return "ack";
    case Type::kApplyError:
      return "apply error";
  }
  return "unknown";
}

Status malformed(Type t, const std::string& detail) {
  return invalid_argument(std::string("malformed ") + type_name(t) + " frame: " + detail);
}

}  // namespace

// ---- public helpers ----------------------------------------------------------------------------

bool operator==(const Batch& a, const Batch& b) {
  if (a.session_id != b.session_id || a.seq != b.seq || a.chunks.size() != b.chunks.size()) {
    return false;
  }
  for (size_t i = 0; i < a.chunks.size(); ++i) {
    const TxChunk& x = a.chunks[i];
    const TxChunk& y = b.chunks[i];
    if (x.position != y.position || x.txid != y.txid || x.total_changes != y.total_changes ||
        x.part != y.part || x.last != y.last || x.changes.size() != y.changes.size()) {
      return false;
    }
    for (size_t k = 0; k < x.changes.size(); ++k) {
      const RowChange& p = x.changes[k];
      const RowChange& q = y.changes[k];
      if (p.table_id != q.table_id || p.op != q.op || p.seq != q.seq || p.hlc != q.hlc ||
          p.key != q.key || p.image != q.image) {
        return false;
      }
    }
  }
  return true;
}

const char* message_name(const Message& m) {
  static constexpr Type kTypes[] = {Type::kHello, Type::kWelcome, Type::kRefuse,
                                    Type::kBatch, Type::kAck,     Type::kApplyError};
  return type_name(kTypes[m.index()]);
}

Result<uint32_t> negotiate_version(const Hello& hello, uint32_t max_version) {
  MPF_ASSERT(max_version >= kMinProtocolVersion && max_version <= kProtocolVersion,
             "max_version out of this build's range");
  return negotiate(VersionSide{hello.origin, {hello.min_version, hello.max_version}, 0},
                   VersionSide{hello.target, {kMinProtocolVersion, max_version}, kProtocolVersion});
}

std::string encode_batch_payload(const std::vector<TxChunk>& chunks, uint32_t version) {
  MPF_ASSERT(version >= kMinProtocolVersion && version <= kProtocolVersion,
             "batch payload version out of range");
  std::string out;
  Writer w(&out);
  if (version >= 2) {
    write_payload2(w, chunks);
  } else {
    write_payload(w, chunks);
  }
  return out;
}

Result<std::vector<TxChunk>> decode_batch_payload(std::string_view payload, uint32_t version) {
  MPF_ASSERT(version >= kMinProtocolVersion && version <= kProtocolVersion,
             "batch payload version out of range");
  Reader r(payload);
  std::vector<TxChunk> chunks;
  if (!(version >= 2 ? read_payload2(r, &chunks) : read_payload(r, &chunks))) {
    return invalid_argument(r.error());
  }
  if (r.remaining() != 0) {
    return invalid_argument(std::to_string(r.remaining()) + " trailing bytes after the last chunk");
  }
  return chunks;
}

// ---- Encoder -----------------------------------------------------------------------------------

void Encoder::CCtxFree::operator()(ZSTD_CCtx_s* c) const { ZSTD_freeCCtx(c); }

Encoder::Encoder(int zstd_level) : cctx_(ZSTD_createCCtx()) {
  MPF_ASSERT(cctx_ != nullptr, "out of memory for a zstd compression context");
  const int level = std::clamp(zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
  size_t rc = ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, level);
  MPF_ASSERT(!ZSTD_isError(rc), ZSTD_getErrorName(rc));
  rc = ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_windowLog, kZstdWindowLog);
  MPF_ASSERT(!ZSTD_isError(rc), ZSTD_getErrorName(rc));
}

Status Encoder::use_version(uint32_t version) {
  if (version < kMinProtocolVersion || version > kProtocolVersion) {
    return failed_precondition("protocol version " + std::to_string(version) +
                               " chosen by the peer is not one this node offered (" +
                               std::to_string(kMinProtocolVersion) + " to " +
                               std::to_string(kProtocolVersion) + ")");
  }
  version_ = version;
  return Status::ok();
}

Encoder::~Encoder() = default;
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder& Encoder::operator=(Encoder&&) noexcept = default;

std::string Encoder::encode(const Message& m) {
  Result<std::string> r = try_encode(m);
  MPF_ASSERT(r.is_ok(), r.status().message());
  return std::move(r).value();
}

Result<std::string> Encoder::try_encode(const Message& m) {
  if (const Batch* b = std::get_if<Batch>(&m)) return encode_batch(*b);
  std::string out;
  Writer w(&out);
  if (const Hello* h = std::get_if<Hello>(&m)) {
    if (hello_names(*h) > kMaxHelloNames) {
      return invalid_argument("hello with " + std::to_string(hello_names(*h)) +
                              " table and column names exceeds the limit of " +
                              std::to_string(kMaxHelloNames));
    }
    out = frame_header(Type::kHello);
    write_hello(w, *h);
  } else if (const Welcome* wl = std::get_if<Welcome>(&m)) {
    out = frame_header(Type::kWelcome);
    w.varint(wl->version);
    w.string(wl->node);
    w.varint(wl->session_id);
    write_position(w, wl->applied);
  } else if (const Refuse* rf = std::get_if<Refuse>(&m)) {
    out = frame_header(Type::kRefuse);
    w.varint(rf->session_id);
    w.string(rf->reason);
  } else if (const Ack* a = std::get_if<Ack>(&m)) {
    out = frame_header(Type::kAck);
    w.varint(a->session_id);
    w.varint(a->seq);
    write_position(w, a->position);
  } else {
    const ApplyError& e = std::get<ApplyError>(m);
    out = frame_header(Type::kApplyError);
    w.varint(e.session_id);
    write_position(w, e.position);
    w.string(e.message);
  }
  w.u32le(codec::crc32c(out));
  if (out.size() > kMaxFrameBytes) {
    return invalid_argument(std::string(message_name(m)) + " frame of " + bytes_str(out.size()) +
                            " exceeds the limit of " + bytes_str(kMaxFrameBytes));
  }
  raw_bytes_ += out.size();
  wire_bytes_ += out.size();
  return out;
}

Result<std::string> Encoder::encode_batch(const Batch& b) {
  const std::string which = "batch seq " + std::to_string(b.seq);
  if (broken_) {
    return failed_precondition(which +
                               " not encoded: the encoder failed earlier and its compression "
                               "stream is unusable; restart the session");
  }
  if (Status s = check_batch_limits(b.chunks); !s) {
    return invalid_argument(which + ": " + s.message() + "; split the batch");
  }
  std::string payload = encode_batch_payload(b.chunks, version_);
  if (payload.size() > kMaxPayloadBytes) {
    return invalid_argument(which + ": payload of " + bytes_str(payload.size()) +
                            " exceeds the limit of " + bytes_str(kMaxPayloadBytes) +
                            "; split the batch");
  }

  std::string frame = frame_header(version_ >= 2 ? Type::kBatch2 : Type::kBatch);
  Writer h(&frame);
  h.varint(b.session_id);
  h.varint(b.seq);
  h.varint(batches_);  // stream frame number: the decoder checks it is the next one
  h.varint(payload.size());
  const size_t header_bytes = frame.size();

  frame.resize(header_bytes + ZSTD_compressBound(payload.size()) + kTrailerBytes);
  ZSTD_inBuffer in{payload.data(), payload.size(), 0};
  size_t pos = header_bytes;
  for (;;) {
    ZSTD_outBuffer out{frame.data(), frame.size(), pos};
    const size_t left = ZSTD_compressStream2(cctx_.get(), &out, &in, ZSTD_e_flush);
    pos = out.pos;
    if (ZSTD_isError(left)) {
      broken_ = true;
      return internal_error(which + ": zstd compression failed: " + ZSTD_getErrorName(left));
    }
    if (left == 0 && in.pos == in.size) break;
    frame.resize(frame.size() + std::max<size_t>(left, 1 << 12));
  }
  frame.resize(pos);
  h.u32le(codec::crc32c(frame));
  if (frame.size() > kMaxFrameBytes) {
    broken_ = true;
    return invalid_argument(which + ": compressed frame of " + bytes_str(frame.size()) +
                            " exceeds the limit of " + bytes_str(kMaxFrameBytes) +
                            "; split the batch and restart the session");
  }
  ++batches_;
  raw_bytes_ += header_bytes + payload.size() + kTrailerBytes;
  wire_bytes_ += frame.size();
  return frame;
}

// ---- Decoder -----------------------------------------------------------------------------------

void Decoder::DCtxFree::operator()(ZSTD_DCtx_s* d) const { ZSTD_freeDCtx(d); }

Decoder::Decoder() : dctx_(ZSTD_createDCtx()) {
  MPF_ASSERT(dctx_ != nullptr, "out of memory for a zstd decompression context");
  const size_t rc = ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, kZstdWindowLog);
  MPF_ASSERT(!ZSTD_isError(rc), ZSTD_getErrorName(rc));
}

Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

Result<Message> Decoder::decode(std::string_view frame) {
  Result<Message> m = decode_frame(frame);
  if (!m.is_ok()) broken_ = true;
  return m;
}

Result<Message> Decoder::decode_frame(std::string_view frame) {
  if (frame.size() > kMaxFrameBytes) {
    return invalid_argument("frame of " + bytes_str(frame.size()) + " exceeds the limit of " +
                            bytes_str(kMaxFrameBytes));
  }
  if (frame.size() < kHeaderBytes) {
    return invalid_argument("malformed frame: " + std::to_string(frame.size()) +
                            " bytes, shorter than the 4-byte header");
  }
  if (frame.substr(0, 3) != "MPF") {
    return invalid_argument("not an mpfailover frame: it starts with " +
                            hex_bytes(frame.substr(0, kHeaderBytes)));
  }
  const Type type = static_cast<Type>(frame[3]);
  if (std::string_view("HWRBCAE").find(frame[3]) == std::string_view::npos) {
    return invalid_argument("malformed frame: unknown message type " +
                            hex_bytes(frame.substr(3, 1)));
  }
  if (frame.size() < kHeaderBytes + kTrailerBytes) {
    return malformed(type, std::to_string(frame.size()) +
                               " bytes, shorter than the 4-byte header and 4-byte checksum");
  }
  const std::string_view body =
      frame.substr(kHeaderBytes, frame.size() - kHeaderBytes - kTrailerBytes);
  uint32_t stored = 0;
  Reader(frame.substr(frame.size() - kTrailerBytes)).u32le(&stored, "checksum");

  Result<Message> parsed = parse_body(frame[3], body);

  const uint32_t actual = codec::crc32c(frame.substr(0, frame.size() - kTrailerBytes));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // lets the fuzzer's mutants reach acceptance
  if (actual != stored) {
    return invalid_argument("corrupted " + std::string(type_name(type)) + " frame: checksum " +
                            hex32(stored) + " does not match the " + hex32(actual) +
                            " computed over its " + std::to_string(frame.size()) + " bytes");
  }
#else
  (void)actual;
#endif
  return parsed;
}

Result<Message> Decoder::parse_body(char type_byte, std::string_view body) {
  const Type type = static_cast<Type>(type_byte);
  if (type == Type::kBatch || type == Type::kBatch2) {
    return decode_batch(body, type == Type::kBatch2 ? 2 : 1);
  }
  Reader r(body);
  Message out;
  bool ok = false;
  switch (type) {
    case Type::kHello:
      ok = read_hello(r, &out.emplace<Hello>());
      break;
    case Type::kWelcome: {
      Welcome& w = out.emplace<Welcome>();
      ok = r.u32(&w.version, "version") && r.string(&w.node, "node") &&
           r.varint(&w.session_id, "session id") && read_position(r, &w.applied);
      break;
    }
    case Type::kRefuse: {
      Refuse& f = out.emplace<Refuse>();
      ok = r.varint(&f.session_id, "session id") && r.string(&f.reason, "reason");
      break;
    }
    case Type::kAck: {
      Ack& a = out.emplace<Ack>();
      ok = r.varint(&a.session_id, "session id") && r.varint(&a.seq, "batch seq") &&
           read_position(r, &a.position);
      break;
    }
    case Type::kApplyError: {
      ApplyError& e = out.emplace<ApplyError>();
      ok = r.varint(&e.session_id, "session id") && read_position(r, &e.position) &&
           r.string(&e.message, "message");
      break;
    }
    case Type::kBatch:
    case Type::kBatch2:
      break;
  }
  if (!ok) return malformed(type, r.error());
  if (r.remaining() != 0) {
    return malformed(type, std::to_string(r.remaining()) + " trailing bytes after the message");
  }
  return out;
}

Result<Message> Decoder::decode_batch(std::string_view body, uint32_t version) {
  Reader r(body);
  Batch b;
  uint64_t stream_frame;
  uint64_t payload_bytes;
  if (!r.varint(&b.session_id, "session id") || !r.varint(&b.seq, "batch seq") ||
      !r.varint(&stream_frame, "stream frame number") ||
      !r.varint(&payload_bytes, "payload length")) {
    return malformed(Type::kBatch, r.error());
  }
  const std::string which = "batch frame seq " + std::to_string(b.seq);
  const std::string bad = "malformed " + which + ": ";
  if (broken_) {
    return invalid_argument(which +
                            " refused: this decoder failed on an earlier frame and its "
                            "compression stream is out of step with the sender's; restart the "
                            "session");
  }
  if (batches_ > 0 && b.session_id != session_id_) {
    return invalid_argument(which + " belongs to session " + std::to_string(b.session_id) +
                            ", not to this decoder's session " + std::to_string(session_id_));
  }
  if (stream_frame != batches_) {
    return invalid_argument(which + " is stream frame " + std::to_string(stream_frame) +
                            " where frame " + std::to_string(batches_) +
                            " was expected: a batch frame was lost, repeated or reordered; "
                            "restart the session");
  }
  if (payload_bytes == 0 || payload_bytes > kMaxPayloadBytes) {
    return invalid_argument(bad + "payload length " + std::to_string(payload_bytes) +
                            " is outside 1 to " + std::to_string(kMaxPayloadBytes));
  }

  // Decompress into a buffer that grows with what zstd produces, capped one byte past the
  // declared length so that "more than declared" is seen without reading further.
  const size_t declared = static_cast<size_t>(payload_bytes);
  const std::string_view compressed = r.rest();
  std::string payload;
  payload.resize(std::min(declared + 1, std::max<size_t>(compressed.size() * 4, 1 << 16)));
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  size_t produced = 0;
  for (;;) {
    if (produced == payload.size()) {
      if (payload.size() > declared) {
        return invalid_argument(bad + "payload decompresses to more than the declared " +
                                std::to_string(declared) + " bytes");
      }
      payload.resize(std::min(declared + 1, payload.size() * 2));
    }
    ZSTD_outBuffer out{payload.data(), payload.size(), produced};
    const size_t in_before = in.pos;
    const size_t rc = ZSTD_decompressStream(dctx_.get(), &out, &in);
    if (ZSTD_isError(rc)) {
      return invalid_argument(bad + "zstd: " + ZSTD_getErrorName(rc));
    }
    const bool progress = out.pos != produced || in.pos != in_before;
    produced = out.pos;
    if (in.pos == in.size && out.pos < out.size) break;  // input used up and output flushed
    if (!progress) return invalid_argument(bad + "zstd stream makes no progress");
  }
  if (produced != declared) {
    return invalid_argument(bad + "compressed data ends after " + std::to_string(produced) +
                            " of the declared " + std::to_string(declared) + " payload bytes");
  }
  payload.resize(produced);

  Reader p(payload);
  if (!(version >= 2 ? read_payload2(p, &b.chunks) : read_payload(p, &b.chunks))) {
    return invalid_argument(bad + p.error());
  }
  if (p.remaining() != 0) {
    return invalid_argument(bad + std::to_string(p.remaining()) +
                            " trailing payload bytes after the last chunk");
  }
  if (batches_ == 0) session_id_ = b.session_id;
  ++batches_;
  return Message(std::move(b));
}

uint32_t crc32c(std::string_view data) { return codec::crc32c(data); }

}  // namespace mpf::replicator::wire
