#include "icmp_codec.hpp"

namespace mpf::heartbeat::icmp {
namespace {

std::uint16_t load_be16(std::span<const std::uint8_t> b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

void store_be16(std::vector<std::uint8_t>& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v & 0xff);
}

constexpr std::size_t kIpv4MinHeaderSize = 20;

}  // namespace

std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes) {
  std::uint32_t sum = 0;
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) sum += load_be16(bytes, i);
  if (i < bytes.size()) sum += static_cast<std::uint32_t>(bytes[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::vector<std::uint8_t> encode_echo_request(Family family, std::uint16_t identifier,
                                              std::uint16_t sequence,
                                              std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out(kHeaderSize + payload.size(), 0);
  out[0] = family == Family::kV4 ? kEchoRequestV4 : kEchoRequestV6;
  out[1] = 0;  // code
  store_be16(out, 4, identifier);
  store_be16(out, 6, sequence);
  for (std::size_t i = 0; i < payload.size(); ++i) out[kHeaderSize + i] = payload[i];
  if (family == Family::kV4) store_be16(out, 2, internet_checksum(out));
  return out;
}

std::optional<EchoHeader> decode_header(std::span<const std::uint8_t> icmp) {
  if (icmp.size() < kHeaderSize) return std::nullopt;
  return EchoHeader{icmp[0], icmp[1], load_be16(icmp, 2), load_be16(icmp, 4), load_be16(icmp, 6)};
}

std::optional<std::span<const std::uint8_t>> strip_ipv4_header(
    std::span<const std::uint8_t> datagram) {
  if (datagram.size() < kIpv4MinHeaderSize) return std::nullopt;
  if ((datagram[0] >> 4) != 4) return std::nullopt;
  const std::size_t header_size = static_cast<std::size_t>(datagram[0] & 0x0f) * 4;
  const std::size_t total_size = load_be16(datagram, 2);
  if (header_size < kIpv4MinHeaderSize || total_size < header_size) return std::nullopt;
  // A datagram longer than our receive buffer arrives cut short: not ours to trust.
  if (total_size > datagram.size()) return std::nullopt;
  if (datagram[9] != kProtocolIcmpV4) return std::nullopt;
  return datagram.subspan(header_size, total_size - header_size);
}

ReplyMatch match_echo_reply(std::span<const std::uint8_t> datagram,
                            const EchoExpectation& expected) {
  std::span<const std::uint8_t> icmp = datagram;
  if (expected.framing == Framing::kIpv4Header) {
    if (datagram.size() < kIpv4MinHeaderSize) return {ReplyVerdict::kTruncated};
    if ((datagram[0] >> 4) != 4 || datagram[9] != kProtocolIcmpV4) return {ReplyVerdict::kNotIcmp};
    // Left: header or total length beyond the bytes that arrived, or lengths that contradict.
    const auto inner = strip_ipv4_header(datagram);
    if (!inner) return {ReplyVerdict::kTruncated};
    icmp = *inner;
  }
  const auto header = decode_header(icmp);
  if (!header) return {ReplyVerdict::kTruncated};
  // ICMPv6 checksums cover a pseudo-header; the kernel verifies those for us.
  if (expected.family == Family::kV4 && internet_checksum(icmp) != 0) {
    return {ReplyVerdict::kBadChecksum};
  }
  const std::uint8_t reply_type = expected.family == Family::kV4 ? kEchoReplyV4 : kEchoReplyV6;
  if (header->type != reply_type || header->code != 0) return {ReplyVerdict::kOtherType};
  if (expected.identifier && header->identifier != *expected.identifier) {
    return {ReplyVerdict::kWrongIdentifier};
  }
  // Unsigned 16-bit distance, so a ping whose sequence numbers wrap past 65535 still matches.
  const auto offset = static_cast<std::uint16_t>(header->sequence - expected.first_sequence);
  if (offset >= expected.count) return {ReplyVerdict::kWrongSequence};
  return {ReplyVerdict::kMatch, header->sequence};
}

const char* to_string(ReplyVerdict verdict) {
  switch (verdict) {
    case ReplyVerdict::kMatch:
      return "match";
    case ReplyVerdict::kTruncated:
      return "truncated";
    case ReplyVerdict::kNotIcmp:
      return "not_icmp";
    case ReplyVerdict::kBadChecksum:
      return "bad_checksum";
    case ReplyVerdict::kOtherType:
      return "other_type";
    case ReplyVerdict::kWrongIdentifier:
      return "wrong_identifier";
    case ReplyVerdict::kWrongSequence:
      return "wrong_sequence";
  }
  return "unknown";
}

}  // namespace mpf::heartbeat::icmp
