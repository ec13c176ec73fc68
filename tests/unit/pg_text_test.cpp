#include "../../replicator/src/io/pg_text.hpp"

#include <doctest/doctest.h>

using mpf::replicator::pg::array_literal;
using mpf::replicator::pg::parse_array_text;
using Values = std::vector<std::optional<std::string>>;

TEST_CASE("array text parses as PostgreSQL writes it, ';' and all") {
  CHECK(parse_array_text("{}") == Values{});
  CHECK(parse_array_text("{a,NULL,\"\",b}") == Values{"a", std::nullopt, "", "b"});
  CHECK(parse_array_text("{FREQ=WEEKLY;COUNT=4,x}") == Values{"FREQ=WEEKLY;COUNT=4", "x"});
  CHECK(parse_array_text("{\"a,b\",\"q\\\"uote\",\"back\\\\slash\",\"NULL\"}") ==
        Values{"a,b", "q\"uote", "back\\slash", "NULL"});
  CHECK(parse_array_text("{\"2026-11-22 08:00:00+00\"}") == Values{"2026-11-22 08:00:00+00"});
}

TEST_CASE("array literals round-trip through the parser") {
  const Values v{"plain",    std::nullopt, "",     "with \"quotes\"", "back\\slash",
                 "{braces}", "a,b",        "NULL", " spaced "};
  CHECK(parse_array_text(array_literal(v)) == v);
}

TEST_CASE("malformed array text throws") {
  CHECK_THROWS(parse_array_text(""));
  CHECK_THROWS(parse_array_text("{a"));
  CHECK_THROWS(parse_array_text("{\"a}"));
  CHECK_THROWS(parse_array_text("{{a}}"));
  CHECK_THROWS(parse_array_text("{a}x"));
}
