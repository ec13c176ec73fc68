// `mpfailover check`'s pure core: compares this node's configuration facts with the peer's
// (both as verify's FactsAnswer: name -> value) and names every mismatch.
//
// Mirrored facts: this node's node.name is the peer's peer.name and the other way round; this
// node's peer.port is the peer's replication.port and back; this node's public key fingerprint
// is the peer's peer key fingerprint and back; the peer's peer.address is an address of this
// node. Versions are compared by compatibility, so a rolling upgrade in progress passes:
// `protocol.replication` ranges ("1-2") must share a version, `catalog.version`s must pair under
// the catalog rule (replicator/versions.hpp), `software.version` is for information only (absent
// on releases before it). `database.encoding`s must be equal: two different ones make a lossy pair
// (absent on releases before it: not compared). Every other fact (security mode, heartbeat,
// collation, tables and their columns) must be equal on both nodes.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mpf::server::verify {

using Facts = std::vector<std::pair<std::string, std::string>>;

struct CheckInput {
  Facts local;
  Facts peer;
  // This node's own addresses (interfaces, listen address), and the peer's peer.address as
  // this node resolves it; they must meet.
  std::vector<std::string> local_addresses;
  std::vector<std::string> peer_view_of_here;
};

struct Mismatch {
  std::string fact;     // e.g. "peer.name", "table.public.users"
  std::string message;  // one line, names both values
};

std::vector<Mismatch> compare_facts(const CheckInput& in);

// Differences that do not fail the check: versions that differ but are compatible (a rolling
// upgrade in progress), each with a one-line note.
std::vector<Mismatch> compatible_differences(const CheckInput& in);

// The number of facts compared (for "N facts match").
size_t compared_facts(const CheckInput& in);

}  // namespace mpf::server::verify
