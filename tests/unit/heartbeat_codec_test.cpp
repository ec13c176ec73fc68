// Heartbeat frames: round trip, and garbage refused with a reason (never a crash).
#include <doctest/doctest.h>

#include <mpf/core/crc32c.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>

using mpf::heartbeat::Command;
using mpf::heartbeat::decode_heartbeat;
using mpf::heartbeat::HeartbeatMessage;
using mpf::heartbeat::Role;

namespace {

HeartbeatMessage sample() {
  HeartbeatMessage m;
  m.kind = HeartbeatMessage::Kind::kAnswer;
  m.seq = 42;
  m.echo_wall_us = 1'700'000'000'000'000;
  m.status.node = "a";
  m.status.target = "b";
  m.status.role = Role::kActive;
  m.status.epoch = 7;
  m.status.wall_us = -5;
  m.status.applied_from_peer = {12, 345};
  m.status.acked_by_peer = {6, 78};
  m.status.catalog_version = 3;
  m.status.definitions_digest = 0xdeadbeefcafef00dull;
  m.command = Command::kHandover;
  m.command_epoch = 8;
  m.command_position = {99, 1000};
  m.note = "handover not yet";
  return m;
}

}  // namespace

TEST_CASE("a heartbeat frame round-trips field by field") {
  const auto m = sample();
  const auto frame = mpf::heartbeat::encode(m);
  CHECK(mpf::heartbeat::is_heartbeat_frame(frame));
  auto back = decode_heartbeat(frame);
  REQUIRE(back);
  CHECK(*back == m);
}

TEST_CASE("every truncation of a heartbeat frame is refused") {
  const auto frame = mpf::heartbeat::encode(sample());
  for (size_t n = 0; n < frame.size(); ++n) {
    CAPTURE(n);
    CHECK_FALSE(decode_heartbeat(frame.substr(0, n)));
  }
}

TEST_CASE("every single flipped bit of a heartbeat frame is refused") {
  const auto frame = mpf::heartbeat::encode(sample());
  for (size_t i = 0; i < frame.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = frame;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      CAPTURE(i);
      CAPTURE(bit);
      CHECK_FALSE(decode_heartbeat(bad));
    }
  }
}

TEST_CASE("a replication frame is not a heartbeat frame") {
  CHECK_FALSE(mpf::heartbeat::is_heartbeat_frame("MPFH"));
  CHECK_FALSE(mpf::heartbeat::is_heartbeat_frame(""));
  auto r = decode_heartbeat("GET / HTTP/1.1\r\n\r\n");
  REQUIRE_FALSE(r);
  CHECK(r.status().message().find("magic") != std::string::npos);
}

TEST_CASE("trailing bytes inside a valid CRC are refused") {
  auto m = sample();
  m.note.clear();
  auto frame = mpf::heartbeat::encode(m);
  // Re-seal a frame with one extra byte before the CRC: the layout check must catch it.
  std::string body = frame.substr(0, frame.size() - 4) + "x";
  const uint32_t crc = mpf::crc32c(body);
  for (int i = 0; i < 4; ++i) body.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  auto r = decode_heartbeat(body);
  REQUIRE_FALSE(r);
  CHECK(r.status().message().find("trailing") != std::string::npos);
}

TEST_CASE("a sealed heartbeat of another protocol is told apart from garbage") {
  // docs/protocol.md §6: the node answers the first (a peer of another release), drops the second.
  auto frame = mpf::heartbeat::encode(sample());
  CHECK(mpf::heartbeat::heartbeat_protocol_of(frame) == 1);
  frame[4] = 2;
  CHECK(mpf::heartbeat::heartbeat_protocol_of(frame) == 2);
  auto unsealed = decode_heartbeat(frame);  // the CRC no longer matches: garbage
  REQUIRE_FALSE(unsealed);
  CHECK(unsealed.status().code() == mpf::Code::kInvalidArgument);
  std::string body = frame.substr(0, frame.size() - 4);
  const uint32_t crc = mpf::crc32c(body);
  for (int i = 0; i < 4; ++i) body.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  auto foreign = decode_heartbeat(body);
  REQUIRE_FALSE(foreign);
  CHECK(foreign.status().code() == mpf::Code::kFailedPrecondition);
  CHECK(foreign.status().message() == "heartbeat protocol 2 is not supported (this node speaks 1)");
  CHECK(mpf::heartbeat::heartbeat_protocol_of("MPH") == 0);
}

TEST_CASE("the definitions digest tells different definitions apart") {
  using mpf::heartbeat::definitions_digest;
  CHECK(definitions_digest("users(id uuid)") == definitions_digest("users(id uuid)"));
  CHECK(definitions_digest("users(id uuid)") != definitions_digest("users(id text)"));
}
