#include <mpf/core/status.hpp>
#include <mpf/replicator/tx_assembler.hpp>

namespace mpf::replicator {

TxAssembler::TxAssembler(size_t max_chunk_changes) : max_chunk_(max_chunk_changes) {
  MPF_ASSERT(max_chunk_changes > 0, "chunk size must be positive");
}

void TxAssembler::add(RowOfTx row) {
  if (!open_ || row.position != current_.position) {
    MPF_ASSERT(!open_ || seen_in_tx_ == current_.total_changes,
               "transaction " + current_.position.to_string() + " ended after " +
                   std::to_string(seen_in_tx_) + " of " + std::to_string(current_.total_changes) +
                   " changes");
    MPF_ASSERT(!open_ || row.position > current_.position, "rows out of position order");
    current_ = TxChunk{};
    current_.position = row.position;
    current_.txid = row.txid;
    current_.origin = std::move(row.origin);
    current_.total_changes = row.total_changes;
    current_.part = 0;
    open_ = true;
    seen_in_tx_ = 0;
  }
  current_.changes.push_back(std::move(row.change));
  ++seen_in_tx_;
  if (seen_in_tx_ == current_.total_changes) {
    emit(/*last=*/true);
    open_ = false;
  } else if (current_.changes.size() >= max_chunk_) {
    emit(/*last=*/false);
  }
}

void TxAssembler::emit(bool last) {
  TxChunk out;
  out.position = current_.position;
  out.txid = current_.txid;
  out.origin = current_.origin;
  out.total_changes = current_.total_changes;
  out.part = current_.part++;
  out.last = last;
  out.changes = std::move(current_.changes);
  current_.changes.clear();
  ready_.push_back(std::move(out));
}

TxChunk TxAssembler::pop() {
  TxChunk c = std::move(ready_.front());
  ready_.pop_front();
  return c;
}

size_t TxAssembler::pending_changes() const {
  size_t n = current_.changes.size();
  for (const auto& c : ready_) n += c.changes.size();
  return n;
}

void TxAssembler::set_max_chunk(size_t max_chunk_changes) {
  MPF_ASSERT(max_chunk_changes > 0, "chunk size must be positive");
  max_chunk_ = max_chunk_changes;
}

void TxAssembler::reset() {
  open_ = false;
  seen_in_tx_ = 0;
  current_ = TxChunk{};
  ready_.clear();
}

}  // namespace mpf::replicator
