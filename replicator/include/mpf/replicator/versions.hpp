// What two nodes of different releases agree on, and what they refuse: the rolling-upgrade rules
// (docs/operations.md "Rolling upgrade", docs/protocol.md §6). Pure: no sockets, no database, no
// logging.
//
// - Replication protocol: the source offers a range in its Hello, the target picks the highest
//   version both speak. `replication.max_protocol_version` pins what a node offers and accepts,
//   so a node of a newer release behaves on the wire exactly as a node of the older one until
//   both are upgraded.
// - Catalog: each node's catalog (schema mpfailover) is its own, migrated by its own release.
//   Two nodes pair while their catalog versions differ by at most kCatalogVersionSkew, the same
//   verdict computed on both sides, so either both directions replicate or neither does.
//
// Every refusal names both versions and ends with a hint line ("\nhint: upgrade node \"b\" ...")
// saying which node to upgrade or unpin.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <mpf/core/status.hpp>

namespace mpf::replicator {

struct VersionRange {
  uint32_t min = 0;
  uint32_t max = 0;

  bool operator==(const VersionRange&) const = default;
  std::string to_string() const;  // "1-2", "1" for a single version
};

// One side of a negotiation: its node name, the range it speaks, and whether that range was cut
// short by replication.max_protocol_version (`build_max` is what the build itself speaks).
struct VersionSide {
  std::string node;
  VersionRange speaks;
  uint32_t build_max = 0;  // 0: unknown (the peer's)

  bool pinned() const { return build_max != 0 && speaks.max < build_max; }
};

// The highest version both speak, or an error (kFailedPrecondition) naming both ranges, with a
// hint line naming the node to upgrade (or to unpin, when the pin alone is in the way).
Result<uint32_t> negotiate(const VersionSide& source, const VersionSide& target);

// The pair's catalog rule: at most this many catalog versions apart. Releases upgrade one at a
// time, and a release adds at most one catalog version (its migrations land as one step).
inline constexpr int32_t kCatalogVersionSkew = 1;

// OK when the two nodes' catalogs may pair (a version <= 0 is unknown: not judged), else an
// error (kFailedPrecondition) naming both versions, with a hint naming the older node.
Status check_catalog_versions(std::string_view this_node, int32_t this_version,
                              std::string_view peer_node, int32_t peer_version);

}  // namespace mpf::replicator
