// mpfailover resync's arithmetic: chunk budgets, the snapshot boundary, where this node's own
// log resumes, when catch-up is done (server/include/mpf/server/verify/resync_plan.hpp).
#include <doctest/doctest.h>

#include <mpf/server/verify/resync_plan.hpp>

using namespace mpf::server::verify;
using mpf::Position;

TEST_SUITE("unit") {
  TEST_CASE("a chunk stops at its row limit or byte budget, and always takes one row") {
    SUBCASE("rows") {
      ChunkBudget b(3, 1000);
      CHECK(b.take(10));
      CHECK(b.take(10));
      CHECK(b.take(10));
      CHECK(b.full());
      CHECK_FALSE(b.take(1));
      CHECK(b.rows() == 3);
    }
    SUBCASE("bytes") {
      ChunkBudget b(100, 25);
      CHECK(b.take(10));
      CHECK(b.take(10));
      CHECK_FALSE(b.take(10));  // 30 > 25: waits for the next chunk
      CHECK(b.take(5));         // a smaller row still fits
      CHECK(b.bytes() == 25);
      CHECK(b.full());
    }
    SUBCASE("a row larger than the whole budget goes alone") {
      ChunkBudget b(100, 25);
      CHECK(b.take(1000));
      CHECK_FALSE(b.take(1));
    }
  }

  TEST_CASE("the snapshot boundary is its tick and the window's last change number") {
    CHECK(snapshot_position(812, 40221) == Position{812, 40221});
    // An empty window: resuming after (t, 0) reads the rest of window t, which is empty, then t+1.
    CHECK(snapshot_position(5, 0) == Position{5, 0});
    // Every transaction of window t sorts at or before the boundary, every later one after it.
    CHECK(Position{812, 40000} <= snapshot_position(812, 40221));
    CHECK(Position{813, 1} > snapshot_position(812, 40221));
  }

  TEST_CASE("this node's log resumes exactly after what the active applied of it") {
    SUBCASE("never applied: window 1 is read next, after tick 0") {
      CHECK(resume_ticks(Position{}, 0) == TickRange{0, 0});
    }
    SUBCASE("applied up to (t, s): window t (ticks t-1, t, equal) is empty, t+1 is new") {
      CHECK(resume_ticks(Position{40, 77}, 3) == TickRange{39, 40});  // a wiped node's fresh log
      CHECK(resume_ticks(Position{1, 3}, 0) == TickRange{0, 1});
    }
    SUBCASE("tick ids never go down: the reader remembers the newest it saw") {
      CHECK(resume_ticks(Position{}, 7) == TickRange{0, 7});
      CHECK(resume_ticks(Position{40, 77}, 45) == TickRange{39, 45});
      CHECK(resume_ticks(Position{40, 77}, 40) == TickRange{39, 40});
    }
  }

  TEST_CASE("catch-up is done when nothing waits or the oldest waiting change is recent") {
    CHECK(caught_up(0, 0, 1000));
    CHECK(caught_up(0, 99999, 1000));
    CHECK(caught_up(25, 300, 1000));
    CHECK_FALSE(caught_up(25, 1000, 1000));
    CHECK_FALSE(caught_up(1, 5000, 1000));
  }
}
