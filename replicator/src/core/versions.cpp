#include <algorithm>

#include <mpf/replicator/versions.hpp>

namespace mpf::replicator {
namespace {

// Built by appending, not as `"\"" + std::string(s) + "\""`: GCC 12 at -O3 (Release) reports
// a false -Wrestrict inside the inlined operator+ (GCC bug 105329).
std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

std::string speaks(const VersionSide& s) {
  std::string out = s.speaks.min == s.speaks.max ? "version " + std::to_string(s.speaks.min)
                                                 : "versions " + std::to_string(s.speaks.min) +
                                                       " to " + std::to_string(s.speaks.max);
  if (s.pinned()) out += " (pinned by replication.max_protocol_version)";
  return out;
}

}  // namespace

std::string VersionRange::to_string() const {
  return min == max ? std::to_string(min) : std::to_string(min) + "-" + std::to_string(max);
}

Result<uint32_t> negotiate(const VersionSide& source, const VersionSide& target) {
  const uint32_t lo = std::max(source.speaks.min, target.speaks.min);
  const uint32_t hi = std::min(source.speaks.max, target.speaks.max);
  if (lo <= hi) return hi;
  std::string msg = "no protocol version in common with node " + quoted(source.node) +
                    ": it speaks " + speaks(source) + ", node " + quoted(target.node) + " speaks " +
                    speaks(target);
  // The side whose range lies below the other's is the older one. A pin that alone keeps them
  // apart is lifted; otherwise the older node is upgraded.
  const VersionSide& older = source.speaks.max < target.speaks.min ? source : target;
  const VersionSide& newer = &older == &source ? target : source;
  if (older.pinned() && older.build_max >= newer.speaks.min) {
    msg += "\nhint: remove replication.max_protocol_version on node " + quoted(older.node) +
           " (its release speaks up to " + std::to_string(older.build_max) +
           ") and restart it, or pin node " + quoted(newer.node) + " to " +
           std::to_string(older.speaks.max);
  } else if (newer.build_max == 0 || newer.speaks.min <= older.speaks.max) {
    msg += "\nhint: upgrade node " + quoted(older.node) +
           " to a release that speaks protocol version " + std::to_string(newer.speaks.min) +
           " or later";
  } else {
    msg += "\nhint: upgrade node " + quoted(older.node) +
           " to a release that speaks protocol version " + std::to_string(newer.speaks.min) +
           " or later; node " + quoted(newer.node) + " cannot speak protocol version " +
           std::to_string(older.speaks.max);
  }
  return failed_precondition(std::move(msg));
}

Status check_catalog_versions(std::string_view this_node, int32_t this_version,
                              std::string_view peer_node, int32_t peer_version) {
  if (this_version <= 0 || peer_version <= 0) return Status::ok();
  const int64_t gap = static_cast<int64_t>(peer_version) - this_version;
  if (gap >= -kCatalogVersionSkew && gap <= kCatalogVersionSkew) return Status::ok();
  const bool peer_older = gap < 0;
  const std::string_view older = peer_older ? peer_node : this_node;
  const std::string_view newer = peer_older ? this_node : peer_node;
  return failed_precondition(
      "catalog version " + std::to_string(peer_version) + " of node " + quoted(peer_node) + " is " +
      std::to_string(peer_older ? -gap : gap) +
      (peer_older ? " behind catalog version " : " ahead of catalog version ") +
      std::to_string(this_version) + " of node " + quoted(this_node) +
      ": two nodes pair across at most " + std::to_string(kCatalogVersionSkew) +
      " catalog version\nhint: upgrade node " + quoted(older) +
      " (stop mpfailoverd, install the package of node " + quoted(newer) +
      ", run mpfailover init-db, start it), one release at a time");
}

}  // namespace mpf::replicator
