// Groups the rows of a window, fed in (position, seq) order, into TxChunks of bounded size.
// Pure: no I/O. Memory held is at most one chunk in progress plus the chunks not yet taken.
#pragma once

#include <deque>

#include <mpf/replicator/change.hpp>

namespace mpf::replicator {

struct RowOfTx {
  Position position;
  uint64_t txid = 0;
  std::string origin;
  int64_t total_changes = 0;
  RowChange change;
};

class TxAssembler {
 public:
  explicit TxAssembler(size_t max_chunk_changes);

  // REQUIRES: rows of one transaction are contiguous and number exactly total_changes.
  void add(RowOfTx row);

  // True when a chunk is ready to take.
  bool has_ready() const { return !ready_.empty(); }
  const TxChunk& front() const { return ready_.front(); }
  TxChunk pop();

  // The window ended. A transaction still open here is a broken invariant (rows missing).
  bool mid_transaction() const { return open_ && !current_.changes.empty(); }
  size_t pending_changes() const;

  void reset();

  // Applies to chunks emitted from now on.
  void set_max_chunk(size_t max_chunk_changes);

 private:
  void emit(bool last);

  size_t max_chunk_;
  bool open_ = false;
  int64_t seen_in_tx_ = 0;
  TxChunk current_;
  std::deque<TxChunk> ready_;
};

}  // namespace mpf::replicator
