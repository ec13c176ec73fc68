// Verify frames ("MPV"): every message round-trips, and garbage is refused with a reason.
#include <doctest/doctest.h>

#include <mpf/core/crc32c.hpp>
#include <mpf/server/verify/verify_codec.hpp>

using namespace mpf::server::verify;

namespace {

std::vector<VerifyMessage> samples() {
  std::vector<VerifyMessage> out;
  out.push_back({1, FactsRequest{}});
  out.push_back({2, PollRequest{}});
  out.push_back({3, PendingAnswer{}});
  out.push_back({4, ErrorAnswer{"table \"public.nope\" is not replicated on node \"b\""}});
  out.push_back({5, SummarizeBatch{"public.users",
                                   {{Range{std::nullopt, std::nullopt}, 1000, 1},
                                    {Range{Key{"a"}, Key{"z\0q"}}, 7, 16}}}});
  out.push_back(
      {6, RowsBatch{"public.group_members", {{Range{Key{"g1", "u1"}, std::nullopt}, 64}}}});
  out.push_back({7, FetchRequest{"public.users", {Key{"x"}, Key{""}}}});
  out.push_back(
      {8, FactsAnswer{{{"node.name", "b"}, {"peer.name", "a"}, {"table.public.users", "…"}}}});
  Summary s;
  s.complete = false;
  s.buckets = {{3, 0xdeadbeefcafef00dull, {"k3"}}, {1, 0, {"k4"}}};
  out.push_back({9, SummarizeAnswer{{s, Summary{}}}});
  RowList l;
  l.rows = {{{"k1"}, 1}, {{"k2"}, ~0ull}};
  out.push_back({10, RowsAnswer{{l, RowList{{}, false}}}});
  FetchedRow present{
      {"k1"}, true, {std::string("x"), std::nullopt, std::string()}, 1'700'000'000'000'000};
  FetchedRow absent{{"k2"}, false, {}, 0};
  out.push_back({~0ull, FetchAnswer{{present, absent}}});
  // Snapshot copy (resync).
  out.push_back({12, SnapshotBegin{"b"}});
  out.push_back({13, SnapshotFetch{0xfeedull, "public.users", 7, 2000}});
  out.push_back({14, SnapshotEnd{0xfeedull}});
  out.push_back({15, BacklogRequest{"b"}});
  out.push_back(
      {16, SnapshotBeginAnswer{0xfeedull,
                               mpf::Position{812, 40'221},
                               mpf::Position{-1, 0},
                               {{"public.users", 12, 5000}, {"mpfailover.tombstone", 5, 0}}}});
  out.push_back({17, SnapshotChunk{true,
                                   3,
                                   {{std::string("a"), std::nullopt, std::string()},
                                    {std::string("b\0c", 3), std::string("x"), std::nullopt}}}});
  out.push_back({18, SnapshotChunk{false, 1, {}}});
  out.push_back({19, SnapshotEndAnswer{mpf::Position{3, 9}}});
  out.push_back({20, BacklogAnswer{12, 30, 1500}});
  return out;
}

}  // namespace

TEST_SUITE("unit") {
  TEST_CASE("every verify message round-trips and re-encodes to the same bytes") {
    for (const auto& m : samples()) {
      const std::string bytes = encode(m);
      CHECK(is_verify_frame(bytes));
      auto back = decode_verify(bytes);
      REQUIRE_MESSAGE(back, back.status().message());
      CHECK(*back == m);
      CHECK(encode(*back) == bytes);
    }
  }

  TEST_CASE("the frame layout is magic, type, version, request id, body, CRC-32C") {
    const std::string bytes = encode({300, PollRequest{}});
    CHECK(bytes.substr(0, 6) == std::string("MPVP\x01\xac", 6));
    CHECK(bytes.substr(6, 1) == "\x02");
    CHECK(bytes.size() == 11);
    const uint32_t crc = mpf::crc32c(std::string_view(bytes).substr(0, 7));
    CHECK(static_cast<uint8_t>(bytes[7]) == (crc & 0xff));
  }

  TEST_CASE("garbage, truncation, a flipped bit and trailing bytes are refused with a reason") {
    SUBCASE("foreign and short frames") {
      CHECK(!decode_verify(""));
      CHECK(!decode_verify("GET / HTTP/1.1\r\n\r\n"));
      CHECK(!is_verify_frame("MPF"));
      auto r = decode_verify("MPH12345678901");
      CHECK(!r);
      CHECK(r.status().message().find("magic") != std::string::npos);
    }
    SUBCASE("every truncation of every sample") {
      for (const auto& m : samples()) {
        const std::string bytes = encode(m);
        for (size_t n = 0; n < bytes.size(); ++n) CHECK(!decode_verify(bytes.substr(0, n)));
      }
    }
    SUBCASE("every single flipped bit") {
      const std::string bytes = encode(samples()[8]);
      for (size_t i = 0; i < bytes.size() * 8; ++i) {
        std::string b = bytes;
        b[i / 8] = static_cast<char>(b[i / 8] ^ (1 << (i % 8)));
        CHECK(!decode_verify(b));
      }
    }
    // Re-seals a body with a valid CRC, so the parser itself must refuse it.
    auto seal = [](std::string covered) {
      const uint32_t crc = mpf::crc32c(covered);
      for (int i = 0; i < 4; ++i) covered.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
      return covered;
    };
    SUBCASE("trailing bytes, unknown type, wrong version, overlong varint, huge counts") {
      std::string poll = encode({1, PollRequest{}});
      poll.resize(poll.size() - 4);
      auto r = decode_verify(seal(poll + "x"));
      REQUIRE(!r);
      CHECK(r.status().message().find("trailing") != std::string::npos);
      CHECK(!decode_verify(seal(std::string("MPVZ\x01\x01", 6))));
      r = decode_verify(seal(std::string("MPVP\x02\x01", 6)));
      REQUIRE(!r);
      CHECK(r.status().message().find("version") != std::string::npos);
      CHECK(!decode_verify(seal(std::string("MPVP\x01\x81\x00", 7))));
      // A summarize batch claiming 200 ranges in a few bytes: refused before allocating.
      r = decode_verify(seal(std::string("MPVS\x01\x01\x01x\xc8\x01", 10)));
      REQUIRE(!r);
      CHECK(r.status().message().find("exceeds remaining") != std::string::npos);
      // Facts out of order.
      FactsAnswer f{{{"b", "1"}, {"a", "2"}}};
      std::string bad = encode({1, f});
      CHECK(!decode_verify(bad));
    }
    SUBCASE("a limit of 0 and an empty key are refused") {
      CHECK(!decode_verify(encode({1, RowsBatch{"t", {{Range{}, 0}}}})));
      CHECK(!decode_verify(encode({1, FetchRequest{"t", {Key{}}}})));
    }
  }

  TEST_CASE("snapshot frames outside their limits are refused before anything is allocated") {
    SUBCASE("a chunk claiming more rows than its octets could hold") {
      SnapshotChunk c{
          false, 4, {{std::string("a"), std::string("b"), std::string("c"), std::string("d")}}};
      std::string bytes = encode({1, c});
      // Row count 1 -> 127 (still a one-octet varint): 127 rows of 4 values need 508 octets.
      const size_t at =
          bytes.find(std::string("\x01\x02"
                                 "a",
                                 3));
      REQUIRE(at != std::string::npos);
      bytes[at] = 127;
      bytes.resize(bytes.size() - 4);
      const uint32_t crc = mpf::crc32c(bytes);
      for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
      auto r = decode_verify(bytes);
      REQUIRE_FALSE(r);
      CHECK(r.status().message().find("row count 127 exceeds remaining") != std::string::npos);
    }
    SUBCASE("a fetch of 0 rows, or of more than the limit") {
      for (uint64_t n : {uint64_t{0}, kMaxSnapshotRows + 1}) {
        auto r = decode_verify(encode({1, SnapshotFetch{1, "public.users", 0, n}}));
        REQUIRE_FALSE(r);
        CHECK(r.status().message().find("max rows") != std::string::npos);
      }
    }
    SUBCASE("a chunk of 0 columns") {
      auto r = decode_verify(encode({1, SnapshotChunk{true, 0, {}}}));
      REQUIRE_FALSE(r);
      CHECK(r.status().message().find("column count 0") != std::string::npos);
    }
  }
}
