#include <doctest/doctest.h>

#include <mpf/core/text.hpp>

TEST_CASE("log fields stay on one line and keep their quotes balanced") {
  CHECK(mpf::one_line("could not connect\nIs the server running locally?\n") ==
        "could not connect; Is the server running locally?");
  CHECK(mpf::one_line("say \"hi\"\tnow") == "say 'hi' now");
  CHECK(mpf::one_line("") == "");
}
