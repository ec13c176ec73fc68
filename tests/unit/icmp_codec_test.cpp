#include "../../heartbeat/src/core/icmp_codec.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace icmp = mpf::heartbeat::icmp;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes hex(std::string_view s) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < s.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// An echo reply as a host sends it: the request with type 0 and the checksum redone.
Bytes echo_reply_v4(std::uint16_t id, std::uint16_t seq, const Bytes& payload = text("abcd")) {
  Bytes b = icmp::encode_echo_request(icmp::Family::kV4, id, seq, payload);
  b[0] = icmp::kEchoReplyV4;
  b[2] = b[3] = 0;
  const std::uint16_t sum = icmp::internet_checksum(b);
  b[2] = static_cast<std::uint8_t>(sum >> 8);
  b[3] = static_cast<std::uint8_t>(sum & 0xff);
  return b;
}

// The same inside an IPv4 header (20 bytes, no options unless ihl > 5), as a raw socket sees it.
Bytes in_ipv4(const Bytes& icmp_message, std::uint8_t ihl = 5, std::uint8_t protocol = 1) {
  Bytes b(ihl * 4u, 0);
  b[0] = static_cast<std::uint8_t>(0x40 | ihl);
  const auto total = static_cast<std::uint16_t>(b.size() + icmp_message.size());
  b[2] = static_cast<std::uint8_t>(total >> 8);
  b[3] = static_cast<std::uint8_t>(total & 0xff);
  b[8] = 64;  // ttl
  b[9] = protocol;
  b[12] = 198, b[13] = 18, b[14] = 0, b[15] = 32;  // source
  b[16] = 198, b[17] = 18, b[18] = 0, b[19] = 31;  // destination
  b.insert(b.end(), icmp_message.begin(), icmp_message.end());
  return b;
}

icmp::EchoExpectation raw_v4(std::uint16_t id, std::uint16_t first_seq, std::uint16_t count = 1) {
  return {icmp::Family::kV4, icmp::Framing::kIpv4Header, id, first_seq, count};
}

icmp::ReplyVerdict verdict(const Bytes& datagram, const icmp::EchoExpectation& expected) {
  return icmp::match_echo_reply(datagram, expected).verdict;
}

}  // namespace

TEST_CASE("the checksum matches known vectors") {
  SUBCASE("RFC 1071's example") {
    CHECK(icmp::internet_checksum(hex("0001f203f4f5f6f7")) == 0x220d);
  }
  SUBCASE("an IPv4 header") {
    CHECK(icmp::internet_checksum(hex("450000730000400040110000c0a80001c0a800c7")) == 0xb861);
  }
  SUBCASE("a Windows ping echo request, id 1 seq 1") {
    Bytes b = hex("0800000000010001");
    const Bytes payload = text("abcdefghijklmnopqrstuvwabcdefghi");
    b.insert(b.end(), payload.begin(), payload.end());
    CHECK(icmp::internet_checksum(b) == 0x4d5a);
  }
  SUBCASE("an odd length pads the last byte with zero") {
    CHECK(icmp::internet_checksum(hex("0001f203f4f5f6")) ==
          icmp::internet_checksum(hex("0001f203f4f5f600")));
    CHECK(icmp::internet_checksum(hex("0001f203f4f5f6")) == 0x2304);
  }
  SUBCASE("nothing sums to 0xffff") { CHECK(icmp::internet_checksum({}) == 0xffff); }
}

TEST_CASE("an encoded echo request decodes to the same fields and carries a valid checksum") {
  const Bytes payload = text("abcdefghijklmnopqrstuvwabcdefghi");
  const Bytes b = icmp::encode_echo_request(icmp::Family::kV4, 0x0001, 0x0001, payload);
  REQUIRE(b.size() == icmp::kHeaderSize + payload.size());
  CHECK(b[2] == 0x4d);  // the Windows vector above: the same bytes, the same checksum
  CHECK(b[3] == 0x5a);
  CHECK(icmp::internet_checksum(b) == 0);
  CHECK(Bytes(b.begin() + icmp::kHeaderSize, b.end()) == payload);

  for (const auto& [id, seq] :
       {std::pair<std::uint16_t, std::uint16_t>{0, 0}, {0xbeef, 0xffff}, {0x1234, 0x8001}}) {
    CAPTURE(id);
    CAPTURE(seq);
    const auto h = icmp::decode_header(icmp::encode_echo_request(icmp::Family::kV4, id, seq, {}));
    REQUIRE(h.has_value());
    CHECK(h->type == icmp::kEchoRequestV4);
    CHECK(h->code == 0);
    CHECK(h->identifier == id);
    CHECK(h->sequence == seq);
  }
}

TEST_CASE("an ICMPv6 echo request has type 128 and leaves the checksum to the kernel") {
  const Bytes b = icmp::encode_echo_request(icmp::Family::kV6, 0x0102, 0x0304, text("x"));
  CHECK(b == Bytes{128, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 'x'});
}

TEST_CASE("a reply to our request inside an IPv4 header matches") {
  const auto m = icmp::match_echo_reply(in_ipv4(echo_reply_v4(0x4242, 7)), raw_v4(0x4242, 7));
  CHECK(m.verdict == icmp::ReplyVerdict::kMatch);
  CHECK(m.sequence == 7);
  SUBCASE("also after IPv4 options (ihl 6)") {
    CHECK(verdict(in_ipv4(echo_reply_v4(0x4242, 7), 6), raw_v4(0x4242, 7)) ==
          icmp::ReplyVerdict::kMatch);
  }
}

TEST_CASE("a reply with another identifier is another process's") {
  CHECK(verdict(in_ipv4(echo_reply_v4(0x4243, 7)), raw_v4(0x4242, 7)) ==
        icmp::ReplyVerdict::kWrongIdentifier);
}

TEST_CASE("a datagram socket checks no identifier, because the kernel chose it") {
  const icmp::EchoExpectation datagram{icmp::Family::kV4, icmp::Framing::kIcmpOnly, std::nullopt, 7,
                                       1};
  CHECK(verdict(echo_reply_v4(0x9999, 7), datagram) == icmp::ReplyVerdict::kMatch);
  CHECK(verdict(echo_reply_v4(0x9999, 8), datagram) == icmp::ReplyVerdict::kWrongSequence);
}

TEST_CASE("only the sequence numbers of this ping match, also across the 16-bit wrap") {
  SUBCASE("an earlier ping's late reply") {
    CHECK(verdict(in_ipv4(echo_reply_v4(1, 6)), raw_v4(1, 7, 3)) ==
          icmp::ReplyVerdict::kWrongSequence);
  }
  SUBCASE("each of count requests") {
    for (std::uint16_t seq : {7, 8, 9}) {
      CAPTURE(seq);
      CHECK(verdict(in_ipv4(echo_reply_v4(1, seq)), raw_v4(1, 7, 3)) == icmp::ReplyVerdict::kMatch);
    }
    CHECK(verdict(in_ipv4(echo_reply_v4(1, 10)), raw_v4(1, 7, 3)) ==
          icmp::ReplyVerdict::kWrongSequence);
  }
  SUBCASE("first sequence 65535, count 3: 65535, 0 and 1 match, 2 does not") {
    for (std::uint16_t seq : {65535, 0, 1}) {
      CAPTURE(seq);
      CHECK(verdict(in_ipv4(echo_reply_v4(1, seq)), raw_v4(1, 65535, 3)) ==
            icmp::ReplyVerdict::kMatch);
    }
    CHECK(verdict(in_ipv4(echo_reply_v4(1, 2)), raw_v4(1, 65535, 3)) ==
          icmp::ReplyVerdict::kWrongSequence);
  }
  SUBCASE("nothing sent yet (count 0): nothing matches") {
    CHECK(verdict(in_ipv4(echo_reply_v4(1, 7)), raw_v4(1, 7, 0)) ==
          icmp::ReplyVerdict::kWrongSequence);
  }
}

TEST_CASE("ICMP messages other than echo replies never match") {
  SUBCASE("our own echo request, looped back") {
    CHECK(verdict(in_ipv4(icmp::encode_echo_request(icmp::Family::kV4, 1, 7, text("abcd"))),
                  raw_v4(1, 7)) == icmp::ReplyVerdict::kOtherType);
  }
  SUBCASE("destination unreachable") {
    Bytes b = echo_reply_v4(1, 7);
    b[0] = 3;  // a correct checksum for type 0 is wrong for type 3: redo it
    b[1] = 1;
    b[2] = b[3] = 0;
    const auto sum = icmp::internet_checksum(b);
    b[2] = static_cast<std::uint8_t>(sum >> 8);
    b[3] = static_cast<std::uint8_t>(sum & 0xff);
    CHECK(verdict(in_ipv4(b), raw_v4(1, 7)) == icmp::ReplyVerdict::kOtherType);
  }
  SUBCASE("an ICMPv4 echo reply type where ICMPv6 is expected") {
    const icmp::EchoExpectation v6{icmp::Family::kV6, icmp::Framing::kIcmpOnly, 1, 7, 1};
    CHECK(verdict(echo_reply_v4(1, 7), v6) == icmp::ReplyVerdict::kOtherType);
    Bytes b = echo_reply_v4(1, 7);
    b[0] = icmp::kEchoReplyV6;
    b[2] = b[3] = 0;  // ICMPv6: the kernel checked the checksum, we do not
    CHECK(verdict(b, v6) == icmp::ReplyVerdict::kMatch);
  }
}

TEST_CASE("a corrupted echo reply fails its checksum") {
  Bytes b = echo_reply_v4(1, 7);
  b.back() ^= 0x01;
  CHECK(verdict(in_ipv4(b), raw_v4(1, 7)) == icmp::ReplyVerdict::kBadChecksum);
}

TEST_CASE("a datagram that is not ICMP over IPv4 is not parsed as ICMP") {
  CHECK(verdict(in_ipv4(echo_reply_v4(1, 7), 5, /*udp*/ 17), raw_v4(1, 7)) ==
        icmp::ReplyVerdict::kNotIcmp);
  Bytes v6ish = in_ipv4(echo_reply_v4(1, 7));
  v6ish[0] = 0x65;
  CHECK(verdict(v6ish, raw_v4(1, 7)) == icmp::ReplyVerdict::kNotIcmp);
}

TEST_CASE("truncated packets are rejected at every length") {
  SUBCASE("raw: every prefix of a matching datagram") {
    const Bytes full = in_ipv4(echo_reply_v4(1, 7));
    for (std::size_t n = 0; n < full.size(); ++n) {
      CAPTURE(n);
      CHECK(verdict(Bytes(full.begin(), full.begin() + static_cast<long>(n)), raw_v4(1, 7)) ==
            icmp::ReplyVerdict::kTruncated);
    }
  }
  SUBCASE("datagram: fewer than 8 bytes of ICMP") {
    const icmp::EchoExpectation datagram{icmp::Family::kV4, icmp::Framing::kIcmpOnly, std::nullopt,
                                         7, 1};
    const Bytes full = echo_reply_v4(1, 7, {});
    for (std::size_t n = 0; n < full.size(); ++n) {
      CAPTURE(n);
      CHECK(verdict(Bytes(full.begin(), full.begin() + static_cast<long>(n)), datagram) ==
            icmp::ReplyVerdict::kTruncated);
    }
  }
  SUBCASE("an IPv4 header length beyond the datagram, or below 20 bytes") {
    Bytes b = in_ipv4(echo_reply_v4(1, 7));
    b[0] = 0x4f;  // 60-byte header in a 32-byte datagram
    CHECK(verdict(b, raw_v4(1, 7)) == icmp::ReplyVerdict::kTruncated);
    b[0] = 0x44;  // 16 bytes: not a valid header
    CHECK(verdict(b, raw_v4(1, 7)) == icmp::ReplyVerdict::kTruncated);
  }
  SUBCASE("an IPv4 total length that says the ICMP message is shorter than its header") {
    Bytes b = in_ipv4(echo_reply_v4(1, 7));
    b[3] = 24;  // 20-byte IP header + 4 bytes of ICMP
    CHECK(verdict(b, raw_v4(1, 7)) == icmp::ReplyVerdict::kTruncated);
  }
  SUBCASE("bytes after the IPv4 total length are not part of the message") {
    Bytes b = in_ipv4(echo_reply_v4(1, 7));
    b.push_back(0xaa);  // link-layer padding; the checksum must still add up
    CHECK(verdict(b, raw_v4(1, 7)) == icmp::ReplyVerdict::kMatch);
  }
}

TEST_CASE("decode_header needs all 8 bytes") {
  CHECK_FALSE(icmp::decode_header(hex("00000000000000")).has_value());
  CHECK(icmp::decode_header(hex("0000000000000000")).has_value());
}
