#include <doctest/doctest.h>

#include <mpf/core/text.hpp>

TEST_CASE("log fields stay on one line and keep their quotes balanced") {
  CHECK(mpf::one_line("could not connect\nIs the server running locally?\n") ==
        "could not connect; Is the server running locally?");
  CHECK(mpf::one_line("say \"hi\"\tnow") == "say 'hi' now");
  CHECK(mpf::one_line("") == "");
}

// Issue #13: "could not be reached within 0 s" (5 s divided as if it were milliseconds).
TEST_CASE("durations for people keep their unit and are never truncated to 0") {
  using namespace std::chrono_literals;
  CHECK(mpf::duration_text(5s) == "5 s");
  CHECK(mpf::duration_text(30000ms) == "30 s");
  CHECK(mpf::duration_text(1500ms) == "1.5 s");
  CHECK(mpf::duration_text(500ms) == "500 ms");
  CHECK(mpf::duration_text(std::chrono::nanoseconds(250'000'000)) == "250 ms");
}
