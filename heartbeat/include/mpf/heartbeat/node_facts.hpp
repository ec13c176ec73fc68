// NodeFacts: what a node tells its peer about itself beyond the heartbeat's fixed fields, so
// `mpfailover list` on either node shows both nodes without a connection of its own: whether
// the application's writes are open, the replication lag and backlog as the sender sees them,
// its links, whether it is standalone (out of the pair on purpose).
//
// They ride in the note of every Beat (PROTOCOL.md, heartbeat frames): heartbeat protocol 1
// leaves a Beat's note unused and every release ignores it, so a peer of an older release simply
// never learns them (its facts are then "unknown", never guessed). Format: "facts1" followed by
// space-separated key=value pairs; unknown keys are ignored, so later releases may add some.
//
// Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mpf::heartbeat {

struct NodeFacts {
  std::string writes;                           // open | closed | unfenced | unknown
  std::optional<double> lag_s;                  // status's lag_s
  std::optional<int64_t> backlog_transactions;  // as `queue` counts them (sampled)
  std::optional<int64_t> backlog_bytes;
  std::optional<bool> outbound_up;  // the sender's shipper session
  std::optional<bool> inbound_up;   // the sender's receiver session
  bool standalone = false;          // out of the pair on purpose (maintenance)
  bool automatic_failover = false;

  bool operator==(const NodeFacts&) const = default;
};

inline constexpr std::string_view kFactsPrefix = "facts1";

// "facts1 writes=open lag_s=0.012 ..."; an absent optional has no pair.
std::string encode_facts(const NodeFacts& f);

// nullopt when the note is not facts (empty, or another kind of note); malformed values are
// left unknown rather than refusing the whole note.
std::optional<NodeFacts> decode_facts(std::string_view note);

}  // namespace mpf::heartbeat
