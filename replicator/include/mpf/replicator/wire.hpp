// The port-2008 wire format: the messages two nodes exchange and their byte encoding.
//
// One ZeroMQ frame carries one message. The exact layout is in docs/protocol.md; this
// header is the contract for the code. Pure: no sockets, no clock, no logging.
//
// A session is one connection attempt, named by Hello::session_id. Within it each direction has
// one Encoder (sender) and one Decoder (receiver). Batches are compressed as one zstd stream per
// direction (docs/design.md §11: what repeats between transactions then costs almost nothing), so:
// - every batch frame must reach the Decoder exactly once and in the order it was encoded; a
//   lost, duplicated or reordered batch frame is detected (a per-stream frame counter) and
//   reported as an error, never decoded into wrong rows; every frame also ends with a CRC-32C,
//   so a corrupted frame (a wrong ack position would let the source trim too much) is refused;
// - to re-send a batch (say, after an ack timeout), encode it again; never re-send stored bytes;
// - after any decode error the Decoder is broken(): the session must be restarted with a new
//   Hello, a new Encoder and a new Decoder on both sides.
// Replay and duplicate detection at the level of transactions is the caller's job: apply is keyed
// by origin position (docs/design.md §2), and Batch/Ack carry session_id and seq for matching.
//
// Thread safety: none; an Encoder or Decoder belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/replicator/change.hpp>
#include <mpf/replicator/versions.hpp>

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace mpf::replicator::wire {

// Version 2: batch payloads with values column by column and in compact forms (docs/protocol.md
// §4.4).
inline constexpr uint32_t kProtocolVersion = 2;  // this build speaks [kMinProtocolVersion, this]
inline constexpr uint32_t kMinProtocolVersion = 1;
inline constexpr size_t kMaxFrameBytes = 16 << 20;    // any frame, as carried (compressed)
inline constexpr size_t kMaxPayloadBytes = 64 << 20;  // a batch payload, decompressed

// Bounds on what one batch may hold, so that a small hostile frame cannot make the receiver build
// gigabytes of objects (a NULL value is 1 byte on the wire and ~40 in memory). A batcher should
// stay far below them; Encoder::try_encode refuses a batch that exceeds one.
inline constexpr size_t kMaxBatchChunks = 1 << 18;
inline constexpr size_t kMaxBatchChanges = 1 << 20;
inline constexpr size_t kMaxBatchValues = 1 << 22;  // key and image values, NULLs included
// Hello extension tags (docs/protocol.md §4.1); a decoder skips the ones it does not know.
inline constexpr uint64_t kHelloExtensionSoftware = 1;  // the sender's software version
inline constexpr size_t kMaxSoftwareVersionBytes = 64;  // a longer one is skipped
// Bound on the names (relations and columns) one Hello may carry.
inline constexpr size_t kMaxHelloNames = 1 << 20;
// zstd window: encoders must not use a larger one; decoders refuse a stream that asks for more.
inline constexpr int kZstdWindowLog = 23;  // 8 MiB

struct TableSpec {
  std::string relation;  // schema-qualified, as TableDef::relation
  std::vector<std::string> columns;
  std::vector<std::string> key_columns;

  bool operator==(const TableSpec&) const = default;
};

// source -> target, the first message of a session.
struct Hello {
  uint32_t min_version = kMinProtocolVersion, max_version = kProtocolVersion;
  std::string origin;  // sender node name
  std::string target;  // the node name the sender expects to reach
  int32_t catalog_version = 0;
  uint64_t session_id = 0;        // random per connection attempt
  std::vector<TableSpec> tables;  // RowChange::table_id in Batch = index into this list
  // The sender's release ("0.1.0"), an extension: empty when not sent (releases before it).
  std::string software;

  bool operator==(const Hello&) const = default;
};

// target -> source: session accepted; send batches after `applied`.
struct Welcome {
  uint32_t version = 0;  // the version both sides use from now on
  std::string node;      // the target's node name
  uint64_t session_id = 0;
  Position applied;  // last origin position the target has applied (docs/design.md §2)

  bool operator==(const Welcome&) const = default;
};

// target -> source: session refused (wrong node, no common version, catalog mismatch, ...).
struct Refuse {
  uint64_t session_id = 0;
  std::string reason;

  bool operator==(const Refuse&) const = default;
};

// source -> target. TxChunk::origin is not sent (it is the session's origin); decode leaves it
// empty. RowChange::table_id indexes Hello::tables; the codec does not check it against them, nor
// value counts against columns: the receiver must.
struct Batch {
  uint64_t session_id = 0;
  uint64_t seq = 0;
  std::vector<TxChunk> chunks;
};
// Compares every field the wire carries (so not TxChunk::origin).
bool operator==(const Batch& a, const Batch& b);

// target -> source: everything of batch `seq` is applied and committed up to `position`.
struct Ack {
  uint64_t session_id = 0;
  uint64_t seq = 0;
  Position position;

  bool operator==(const Ack&) const = default;
};

// target -> source: apply stopped at `position` (the first transaction not applied).
struct ApplyError {
  uint64_t session_id = 0;
  Position position;
  std::string message;

  bool operator==(const ApplyError&) const = default;
};

using Message = std::variant<Hello, Welcome, Refuse, Batch, Ack, ApplyError>;

// "hello", "welcome", "refuse", "batch", "ack", "apply error": for logs and messages.
const char* message_name(const Message& m);

// The version a target speaking [kMinProtocolVersion, max_version] uses for this Hello: the
// highest both speak. Error (kFailedPrecondition) naming both ranges, with a hint naming the node
// to upgrade or unpin, when there is none (replicator::negotiate). `max_version` is this node's
// replication.max_protocol_version. REQUIRES: kMinProtocolVersion <= max_version <=
// kProtocolVersion.
Result<uint32_t> negotiate_version(const Hello& hello, uint32_t max_version = kProtocolVersion);

// Encodes messages of one session and direction.
class Encoder {
 public:
  explicit Encoder(int zstd_level = 3);
  ~Encoder();
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // The protocol version of the session (Welcome::version) for the batches encoded from now on;
  // version 1 until called, so that no batch the peer may not read goes out before the Welcome
  // says what it reads. Error (kFailedPrecondition) for a version this build does not speak (a
  // peer answering with a version the Hello did not offer). Other messages are the same in
  // every version.
  Status use_version(uint32_t version);
  uint32_t version() const { return version_; }

  // The bytes of one ZeroMQ frame. REQUIRES: try_encode(m) would succeed (aborts otherwise).
  std::string encode(const Message& m);

  // As encode, or an error (kInvalidArgument) when the message breaks a limit above. A batch
  // refused before compression leaves the Encoder usable. A batch whose compressed frame turns out
  // larger than kMaxFrameBytes (only possible for payloads near that size that do not compress)
  // has already entered the compression stream: the Encoder is then broken() and the session
  // must be restarted. Keep payloads under kMaxFrameBytes - 1 MiB to rule this out.
  Result<std::string> try_encode(const Message& m);

  // Bytes the frames produced so far would take without compression (headers + raw payloads),
  // and the bytes actually produced. Their ratio is the compression achieved.
  size_t raw_bytes() const { return raw_bytes_; }
  size_t wire_bytes() const { return wire_bytes_; }
  uint64_t batches() const { return batches_; }  // batch frames produced
  bool broken() const { return broken_; }

 private:
  struct CCtxFree {
    void operator()(ZSTD_CCtx_s* c) const;
  };
  Result<std::string> encode_batch(const Batch& b);

  std::unique_ptr<ZSTD_CCtx_s, CCtxFree> cctx_;
  uint32_t version_ = kMinProtocolVersion;
  size_t raw_bytes_ = 0;
  size_t wire_bytes_ = 0;
  uint64_t batches_ = 0;
  bool broken_ = false;
};

// Decodes the frames of one session and direction, in the order they were encoded. Batch frames
// say which version's payload they carry (their type octet), so a Decoder needs no version.
class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Never crashes, hangs or allocates beyond the limits above on any input: a malformed frame is
  // an error (kInvalidArgument) in PostgreSQL message style, and makes the Decoder broken().
  Result<Message> decode(std::string_view frame);

  // True after any decode error. A broken Decoder still decodes non-batch messages (they are
  // not compressed) but refuses every batch: its compression stream is out of step with the
  // sender's. Restart the session (new Hello, new Encoder and Decoder on both sides).
  bool broken() const { return broken_; }
  uint64_t batches() const { return batches_; }  // batch frames decoded

 private:
  struct DCtxFree {
    void operator()(ZSTD_DCtx_s* d) const;
  };
  Result<Message> decode_frame(std::string_view frame);
  Result<Message> parse_body(char type, std::string_view body);
  Result<Message> decode_batch(std::string_view body, uint32_t version);

  std::unique_ptr<ZSTD_DCtx_s, DCtxFree> dctx_;
  uint64_t batches_ = 0;
  uint64_t session_id_ = 0;  // of the first batch; all later ones must match
  bool broken_ = false;
};

// CRC-32C (Castagnoli) as the frame trailer uses it; for tests and other implementations.
uint32_t crc32c(std::string_view data);

// The lower layer: a batch's uncompressed payload (its chunks), as docs/protocol.md describes. For
// tests, tools and fuzzing; sessions use Encoder and Decoder. Decoding checks the same limits.
// REQUIRES: kMinProtocolVersion <= version <= kProtocolVersion.
std::string encode_batch_payload(const std::vector<TxChunk>& chunks,
                                 uint32_t version = kMinProtocolVersion);
Result<std::vector<TxChunk>> decode_batch_payload(std::string_view payload,
                                                  uint32_t version = kMinProtocolVersion);

}  // namespace mpf::replicator::wire
