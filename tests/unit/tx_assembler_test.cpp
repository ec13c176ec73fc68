#include <doctest/doctest.h>

#include <mpf/replicator/tx_assembler.hpp>

using mpf::Position;
using mpf::replicator::RowOfTx;
using mpf::replicator::TxAssembler;

namespace {

RowOfTx row(Position pos, int64_t total, int64_t seq) {
  RowOfTx r;
  r.position = pos;
  r.txid = static_cast<uint64_t>(pos.seq);
  r.origin = std::string(1, 'a');  // not = "a": GCC 12 -Wrestrict false positive (PR 105329)
  r.total_changes = total;
  r.change.seq = seq;
  return r;
}

}  // namespace

TEST_CASE("small transactions come out whole, one chunk each, in order") {
  TxAssembler a(10);
  a.add(row({1, 5}, 2, 4));
  CHECK_FALSE(a.has_ready());
  a.add(row({1, 5}, 2, 5));
  REQUIRE(a.has_ready());
  auto c = a.pop();
  CHECK(c.position == Position{1, 5});
  CHECK(c.last);
  CHECK(c.part == 0);
  CHECK(c.changes.size() == 2);
  a.add(row({1, 6}, 1, 6));
  REQUIRE(a.has_ready());
  CHECK(a.pop().position == Position{1, 6});
  CHECK_FALSE(a.mid_transaction());
}

TEST_CASE("a transaction larger than the chunk size comes in bounded parts") {
  const int64_t total = 25;
  TxAssembler a(10);
  std::vector<mpf::replicator::TxChunk> out;
  for (int64_t i = 1; i <= total; ++i) {
    a.add(row({2, total}, total, i));
    CHECK(a.pending_changes() <= 10);
    while (a.has_ready()) out.push_back(a.pop());
  }
  REQUIRE(out.size() == 3);
  CHECK(out[0].changes.size() == 10);
  CHECK(out[1].changes.size() == 10);
  CHECK(out[2].changes.size() == 5);
  CHECK(out[0].part == 0);
  CHECK(out[2].part == 2);
  CHECK_FALSE(out[0].last);
  CHECK_FALSE(out[1].last);
  CHECK(out[2].last);
  CHECK(out[2].changes.back().seq == total);
}

TEST_CASE("a window cut inside a transaction is visible as mid_transaction") {
  TxAssembler a(10);
  a.add(row({1, 9}, 3, 7));
  CHECK(a.mid_transaction());
  a.reset();
  CHECK_FALSE(a.mid_transaction());
  CHECK(a.pending_changes() == 0);
}
