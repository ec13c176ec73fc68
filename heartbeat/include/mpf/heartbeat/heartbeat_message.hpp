// Heartbeat frames: what the two nodes tell each other about themselves on port 2008, beside the
// replication sessions (format in docs/protocol.md, "Heartbeat frames").
//
// A Beat goes out every heartbeat.interval (and at once when the role changes or a switchover
// needs news); the peer answers each with an Answer carrying its own status and the Beat's seq
// and wall clock, so the sender measures round trip and clock skew without keeping a table. A
// Beat may carry a command for the peer: a switchover request, or a handover.
//
// Pure: no sockets. decode() refuses anything but a well-formed frame (magic, type, exact
// length, CRC), so garbage on the port is dropped with a reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/heartbeat/role_machine.hpp>

namespace mpf::heartbeat {

inline constexpr uint8_t kHeartbeatProtocol = 1;
inline constexpr std::string_view kHeartbeatMagic = "MPH";

// One node's state as it reports it.
struct NodeStatus {
  std::string node;    // the sender
  std::string target;  // the node it is addressed to (a misrouted frame is refused)
  Role role = Role::kStandby;
  Epoch epoch = 0;
  int64_t wall_us = 0;              // the sender's wall clock at sending, µs since the Unix epoch
  Position applied_from_peer;       // how far the sender applied the target's changes
  Position acked_by_peer;           // how far the target acknowledged the sender's changes
  int32_t catalog_version = 0;      // the sender's catalog
  uint64_t definitions_digest = 0;  // of the sender's replicated tables (names, columns, keys)

  bool operator==(const NodeStatus&) const = default;
};

enum class Command : uint8_t {
  kNone = 0,
  kSwitchoverRequest = 1,  // from a standby: "hand over to me"
  kHandover = 2,           // from the old active: "take over at epoch, my changes end at position"
};

struct HeartbeatMessage {
  enum class Kind : uint8_t { kBeat = 'B', kAnswer = 'A' };
  Kind kind = Kind::kBeat;
  uint64_t seq = 0;          // Beat: its number; Answer: the Beat's
  int64_t echo_wall_us = 0;  // Answer: the Beat's wall_us, echoed
  NodeStatus status;
  Command command = Command::kNone;
  Epoch command_epoch = 0;    // kHandover
  Position command_position;  // kHandover
  std::string note;           // Answer: the outcome of the Beat's command ("" = none/accepted)

  bool operator==(const HeartbeatMessage&) const = default;
};

// True when a frame starts with the heartbeat magic: the port's dispatcher routes it here.
bool is_heartbeat_frame(std::string_view frame);

// The protocol octet of a heartbeat frame (its 5th: magic, kind, protocol are the same in every
// version), 0 when the frame is too short to have one.
uint8_t heartbeat_protocol_of(std::string_view frame);

std::string encode(const HeartbeatMessage& m);
// kInvalidArgument for garbage; kFailedPrecondition for a well-formed frame (its CRC matches) of
// a heartbeat protocol this node does not speak: the peer runs another release.
Result<HeartbeatMessage> decode_heartbeat(std::string_view frame);

// FNV-1a 64 of the replicated tables' definitions, for the failover/check parity tests.
uint64_t definitions_digest(std::string_view canonical_text);

}  // namespace mpf::heartbeat
