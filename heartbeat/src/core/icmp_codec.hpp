// ICMP echo codec: builds echo requests and decides whether a received datagram is the reply
// to one of ours. Pure (no sockets, no clock), so every malformed or foreign packet can be
// unit-tested; the socket side is heartbeat/src/io/icmp_pinger.cpp.
//
// Thread safety: free functions over caller-owned bytes; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace mpf::heartbeat::icmp {

enum class Family { kV4, kV6 };

// How the kernel hands us a received datagram. A raw IPv4 socket delivers the IPv4 header in
// front of the ICMP message; datagram ("ping") sockets and raw IPv6 sockets deliver only ICMP.
enum class Framing { kIcmpOnly, kIpv4Header };

inline constexpr std::size_t kHeaderSize = 8;  // type, code, checksum, identifier, sequence
inline constexpr std::uint8_t kEchoReplyV4 = 0;
inline constexpr std::uint8_t kEchoRequestV4 = 8;
inline constexpr std::uint8_t kEchoRequestV6 = 128;
inline constexpr std::uint8_t kEchoReplyV6 = 129;
inline constexpr std::uint8_t kProtocolIcmpV4 = 1;  // IPv4 header "protocol" field

// RFC 1071 Internet checksum: the one's complement of the one's complement sum of the bytes
// taken as big-endian 16-bit words (an odd last byte is padded with zero). Stored big-endian.
// A message that already carries a correct checksum sums to 0.
std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes);

struct EchoHeader {
  std::uint8_t type = 0;
  std::uint8_t code = 0;
  std::uint16_t checksum = 0;
  std::uint16_t identifier = 0;
  std::uint16_t sequence = 0;
};

// Echo request (type 8, or 128 for ICMPv6) with `payload` after the header. The IPv4 checksum
// is filled in; for ICMPv6 it stays 0 because it covers an IPv6 pseudo-header only the kernel
// knows, and the kernel fills it in (as it does the identifier on a datagram socket).
std::vector<std::uint8_t> encode_echo_request(Family family, std::uint16_t identifier,
                                              std::uint16_t sequence,
                                              std::span<const std::uint8_t> payload);

// The first 8 bytes as a header, or nullopt when there are fewer.
std::optional<EchoHeader> decode_header(std::span<const std::uint8_t> icmp);

// The ICMP message inside a raw IPv4 datagram (checked: version 4, header length, protocol
// ICMP, total length), or nullopt when the datagram is not that or is cut short.
std::optional<std::span<const std::uint8_t>> strip_ipv4_header(
    std::span<const std::uint8_t> datagram);

// What we sent: replies are accepted for sequence numbers first_sequence .. first_sequence +
// count - 1 (mod 2^16). `identifier` is nullopt on datagram sockets, where the kernel chose it
// and delivers only replies carrying it.
struct EchoExpectation {
  Family family = Family::kV4;
  Framing framing = Framing::kIcmpOnly;
  std::optional<std::uint16_t> identifier;
  std::uint16_t first_sequence = 0;
  std::uint16_t count = 1;
};

enum class ReplyVerdict {
  kMatch,            // an echo reply to one of our requests
  kTruncated,        // shorter than its headers say
  kNotIcmp,          // raw IPv4 datagram that is not ICMP (or not IPv4)
  kBadChecksum,      // IPv4 ICMP message whose checksum does not add up
  kOtherType,        // another ICMP message: someone's echo request, an error, ...
  kWrongIdentifier,  // an echo reply to another process's requests
  kWrongSequence,    // an echo reply to a request that is not part of this ping
};

struct ReplyMatch {
  ReplyVerdict verdict = ReplyVerdict::kTruncated;
  std::uint16_t sequence = 0;  // valid when verdict == kMatch
};

ReplyMatch match_echo_reply(std::span<const std::uint8_t> datagram,
                            const EchoExpectation& expected);

const char* to_string(ReplyVerdict verdict);

}  // namespace mpf::heartbeat::icmp
