#include <doctest/doctest.h>

#include <mpf/replicator/net_effect.hpp>

using mpf::replicator::NetEffect;
using mpf::replicator::Op;
using mpf::replicator::RowChange;

namespace {

RowChange change(int32_t table, Op op, std::vector<mpf::replicator::Value> key,
                 std::vector<mpf::replicator::Value> image, int64_t seq) {
  RowChange c;
  c.table_id = table;
  c.op = op;
  c.key = std::move(key);
  c.image = std::move(image);
  c.seq = seq;
  return c;
}

}  // namespace

TEST_CASE("the net effect keeps the last change per table and key, in first-touched order") {
  NetEffect net;
  net.add(change(1, Op::kInsert, {"k1"}, {"k1", "v1"}, 1));
  net.add(change(1, Op::kInsert, {"k2"}, {"k2", "v1"}, 2));
  net.add(change(1, Op::kUpdate, {"k1"}, {"k1", "v2"}, 3));
  net.add(change(2, Op::kInsert, {"k1"}, {"k1"}, 4));  // same key, other table: separate
  net.add(change(1, Op::kDelete, {"k2"}, {}, 5));
  CHECK(net.changes_added() == 5);
  const auto& t1 = net.tables().at(1);
  REQUIRE(t1.size() == 2);
  CHECK(t1[0].key[0] == "k1");
  CHECK(t1[0].image[1] == "v2");
  CHECK(t1[0].seq == 3);
  CHECK(t1[1].op == Op::kDelete);
  CHECK(net.tables().at(2).size() == 1);
}

TEST_CASE("composite keys do not collide when their parts concatenate alike, and NULL is not ''") {
  NetEffect net;
  net.add(change(1, Op::kInsert, {"a,b", "c"}, {"x"}, 1));
  net.add(change(1, Op::kInsert, {"a", "b,c"}, {"y"}, 2));
  net.add(change(1, Op::kInsert, {std::nullopt, "c"}, {"z"}, 3));
  net.add(change(1, Op::kInsert, {"", "c"}, {"w"}, 4));
  CHECK(net.tables().at(1).size() == 4);
}

TEST_CASE("a delete then a re-insert of a key leaves the insert") {
  NetEffect net;
  net.add(change(1, Op::kDelete, {"k"}, {}, 1));
  net.add(change(1, Op::kInsert, {"k"}, {"k", "new"}, 2));
  REQUIRE(net.tables().at(1).size() == 1);
  CHECK(net.tables().at(1)[0].op == Op::kInsert);
}
