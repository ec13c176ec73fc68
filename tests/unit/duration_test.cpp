#include <doctest/doctest.h>

#include <mpf/core/duration.hpp>

using namespace std::chrono_literals;

TEST_CASE("durations accept ms, s and min") {
  CHECK(*mpf::parse_duration("60s") == 60s);
  CHECK(*mpf::parse_duration("100ms") == 100ms);
  CHECK(*mpf::parse_duration("2min") == 120s);
  CHECK(*mpf::parse_duration(" 1.5 s ") == 1500ms);
}

TEST_CASE("a duration without a unit or with an unknown unit is refused with the reason") {
  SUBCASE("bare number") {
    auto d = mpf::parse_duration("60");
    REQUIRE_FALSE(d);
    CHECK(d.status().message().find("missing unit") != std::string::npos);
  }
  SUBCASE("unknown unit") {
    auto d = mpf::parse_duration("60 seconds");
    REQUIRE_FALSE(d);
    CHECK(d.status().message().find("unknown unit \"seconds\"") != std::string::npos);
  }
  SUBCASE("garbage") {
    CHECK_FALSE(mpf::parse_duration("abc"));
    CHECK_FALSE(mpf::parse_duration(""));
    CHECK_FALSE(mpf::parse_duration("1..2s"));
    CHECK_FALSE(mpf::parse_duration("-5s"));
  }
}
