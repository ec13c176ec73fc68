// Verify frames ("MPV"): what `mpfailover verify` and `mpfailover check` ask the peer's daemon
// on port 2008, and its answers (format in docs/protocol.md, "Verify frames").
//
// A client (the CLI) sends a request with a request id of its choosing; the peer answers with
// the same id: the answer, Pending ("not ready: poll again") or an Error. A Poll asks again for
// the answer to an earlier request id. Only hashes and keys cross the link, except in a Fetch
// answer (the rows `verify --repair` copies).
//
// Pure: no sockets. decode_verify() refuses anything but a well-formed frame (magic, type,
// version, canonical varints, counts that fit the bytes left, limits, no trailing bytes, CRC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/server/verify/narrower.hpp>

namespace mpf::server::verify {

inline constexpr std::string_view kVerifyMagic = "MPV";
inline constexpr uint8_t kVerifyProtocol = 1;
inline constexpr size_t kMaxVerifyFrameBytes = 8u << 20;
inline constexpr size_t kMaxRangesPerRequest = 256;
inline constexpr size_t kMaxKeysPerFetch = 1024;
inline constexpr size_t kMaxKeyColumns = 32;
inline constexpr uint64_t kMaxLimit = 1'000'000;
inline constexpr uint32_t kMaxParts = 1024;
// Snapshot copy (`mpfailover resync`): rows per chunk, columns per row, tables per snapshot.
inline constexpr uint64_t kMaxSnapshotRows = 100'000;
inline constexpr size_t kMaxSnapshotColumns = 1600;
inline constexpr size_t kMaxSnapshotTables = 4096;

// Requests (client -> peer daemon).
struct FactsRequest {
  bool operator==(const FactsRequest&) const = default;
};
struct SummarizeBatch {
  std::string relation;  // schema-qualified, as in mpfailover.replicated_table
  std::vector<SummarizeRequest> requests;
  bool operator==(const SummarizeBatch&) const = default;
};
struct RowsBatch {
  std::string relation;
  std::vector<RowsRequest> requests;
  bool operator==(const RowsBatch&) const = default;
};
struct FetchRequest {
  std::string relation;
  std::vector<Key> keys;
  bool operator==(const FetchRequest&) const = default;
};
struct PollRequest {
  bool operator==(const PollRequest&) const = default;
};
// Snapshot copy (`mpfailover resync`, run on the standby `node`): open one consistent snapshot
// of the replicated tables on the active and tell where it lies in the active's change stream.
struct SnapshotBegin {
  std::string node;  // the node asking: it must be the answering node's peer
  bool operator==(const SnapshotBegin&) const = default;
};
// The next chunk of `relation`'s rows in the snapshot: chunk 0, 1, 2, ... in turn (a repeated or
// skipped number is an error, so a lost answer cannot silently drop or repeat rows).
struct SnapshotFetch {
  uint64_t snapshot_id = 0;
  std::string relation;
  uint64_t chunk = 0;
  uint64_t max_rows = 0;  // 1..kMaxSnapshotRows; the answer may hold fewer (a byte budget)
  bool operator==(const SnapshotFetch&) const = default;
};
// Releases the snapshot (its transaction ends on the active).
struct SnapshotEnd {
  uint64_t snapshot_id = 0;
  bool operator==(const SnapshotEnd&) const = default;
};
// The answering node's backlog for `node` (what `mpfailover queue` counts there).
struct BacklogRequest {
  std::string node;
  bool operator==(const BacklogRequest&) const = default;
};

// Answers (peer daemon -> client).
struct FactsAnswer {
  // name -> value, sorted by name, names unique (e.g. "node.name", "table.public.users").
  std::vector<std::pair<std::string, std::string>> facts;
  bool operator==(const FactsAnswer&) const = default;
};
struct SummarizeAnswer {
  std::vector<Summary> summaries;  // one per request, in order
  bool operator==(const SummarizeAnswer&) const = default;
};
struct RowsAnswer {
  std::vector<RowList> lists;
  bool operator==(const RowsAnswer&) const = default;
};
struct FetchedRow {
  Key key;
  bool present = false;
  std::vector<std::optional<std::string>>
      values;             // text form, catalog column order; nullopt = NULL
  int64_t commit_us = 0;  // the row version's commit time (µs since the Unix epoch); 0 = unknown
  bool operator==(const FetchedRow&) const = default;
};
struct FetchAnswer {
  std::vector<FetchedRow> rows;  // one per requested key, in order
  bool operator==(const FetchAnswer&) const = default;
};
struct SnapshotTable {
  std::string relation;         // schema-qualified; "mpfailover.tombstone" for the tombstones
  uint64_t columns = 0;         // values per row
  uint64_t estimated_rows = 0;  // pg_class.reltuples, for progress only
  bool operator==(const SnapshotTable&) const = default;
};
struct SnapshotBeginAnswer {
  uint64_t snapshot_id = 0;
  // The snapshot holds exactly the active's transactions at or before this position of its
  // change stream (a tick recorded with the snapshot itself; docs/protocol.md "Snapshot copy").
  Position position;
  // The active's applied position for the asking node as origin, as of the snapshot.
  Position peer_applied;
  std::vector<SnapshotTable> tables;  // parents first, then the tombstones
  bool operator==(const SnapshotBeginAnswer&) const = default;
};
struct SnapshotChunk {
  bool last = false;     // the relation has no more rows after these
  uint64_t columns = 0;  // values per row
  std::vector<std::vector<std::optional<std::string>>> rows;  // text forms; nullopt = NULL
  bool operator==(const SnapshotChunk&) const = default;
};
struct SnapshotEndAnswer {
  Position peer_applied;  // the active's applied position for the asking node, now
  bool operator==(const SnapshotEndAnswer&) const = default;
};
struct BacklogAnswer {
  uint64_t transactions = 0;
  uint64_t rows = 0;
  uint64_t oldest_age_ms = 0;  // of the oldest waiting change; 0 when nothing waits
  bool operator==(const BacklogAnswer&) const = default;
};
struct PendingAnswer {
  bool operator==(const PendingAnswer&) const = default;
};
struct ErrorAnswer {
  std::string message;
  bool operator==(const ErrorAnswer&) const = default;
};

using VerifyBody =
    std::variant<FactsRequest, SummarizeBatch, RowsBatch, FetchRequest, PollRequest, FactsAnswer,
                 SummarizeAnswer, RowsAnswer, FetchAnswer, PendingAnswer, ErrorAnswer,
                 SnapshotBegin, SnapshotFetch, SnapshotEnd, BacklogRequest, SnapshotBeginAnswer,
                 SnapshotChunk, SnapshotEndAnswer, BacklogAnswer>;

struct VerifyMessage {
  uint64_t request_id = 0;
  VerifyBody body;
  bool operator==(const VerifyMessage&) const = default;
};

// True when a frame starts with "MPV": the port's dispatcher routes it to the verify responder.
bool is_verify_frame(std::string_view frame);

std::string encode(const VerifyMessage& m);
Result<VerifyMessage> decode_verify(std::string_view frame);

}  // namespace mpf::server::verify
