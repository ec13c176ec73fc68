#include <doctest/doctest.h>

#include <mpf/replicator/lww.hpp>

using mpf::replicator::later_wins;
using mpf::replicator::RowVersion;

TEST_CASE("the later timestamp wins, whichever node made it") {
  CHECK(later_wins({200, "a"}, {100, "b"}));
  CHECK_FALSE(later_wins({100, "b"}, {200, "a"}));
}

TEST_CASE("a timestamp tie is broken by node name, the same way on both nodes") {
  const RowVersion from_a{500, "a"};
  const RowVersion from_b{500, "b"};
  CHECK(later_wins(from_b, from_a));        // on node a, b's change arrives: b wins
  CHECK_FALSE(later_wins(from_a, from_b));  // on node b, a's change arrives: b stays
}

TEST_CASE("a version never beats itself") { CHECK_FALSE(later_wins({7, "a"}, {7, "a"})); }
