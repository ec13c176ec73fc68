#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <mpf/replicator/versions.hpp>
#include <mpf/server/verify/check_facts.hpp>

namespace mpf::server::verify {
namespace {

// Facts that are one node's view of the other: compared crosswise, not for equality.
const std::vector<std::pair<std::string, std::string>>& mirrored() {
  static const std::vector<std::pair<std::string, std::string>> kMirrored = {
      {"node.name", "peer.name"},
      {"peer.port", "replication.port"},
      {"key.public", "key.peer_public"},
  };
  return kMirrored;
}

// check prints one line per mismatch: a hint line follows the primary after "; ".
std::string one_line_of(std::string s) {
  for (size_t at = s.find('\n'); at != std::string::npos; at = s.find('\n', at)) {
    s.replace(at, 1, "; ");
  }
  return s;
}

bool is_node_local(const std::string& name) {
  // Each node's own: addresses it listens on, where its key files are.
  return name == "peer.address" || name == "replication.listen";
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// Values cross port 2008 in UTF8 and are converted into each database's encoding (PROTOCOL.md,
// "Encoding"). Two different encodings always make a lossy pair: one of them is not UTF8, so
// some character the other database holds has no equivalent there, and its row stops apply on
// that node (named, nothing skipped) instead of arriving.
std::string encoding_mismatch(const std::string& here, const std::string& there) {
  const std::string narrow = here == "UTF8" ? there : here;
  const std::string wide = here == "UTF8" ? here : there;
  return "database.encoding differs: here " + quoted(here) + ", peer " + quoted(there) +
         ": a lossy pair: a character a " + wide + " database holds that " + narrow +
         " cannot represent stops apply on the " + narrow +
         " node, naming the table, key and transaction; hint: create both databases with the "
         "same encoding (UTF8)";
}

// "1-2" or "1" -> range; nullopt for anything else.
std::optional<replicator::VersionRange> parse_range(const std::string& s) {
  unsigned lo = 0, hi = 0;
  char dash = 0;
  std::istringstream in(s);
  if (!(in >> lo)) return std::nullopt;
  hi = lo;
  if (in >> dash && (dash != '-' || !(in >> hi))) return std::nullopt;
  if (lo == 0 || hi < lo) return std::nullopt;
  return replicator::VersionRange{lo, hi};
}

std::optional<int> parse_int(const std::string& s) {
  try {
    size_t used = 0;
    const int v = std::stoi(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The version facts: compatible or not, when both nodes have them and they differ. nullopt: not
// a version fact (compared for equality).
std::optional<bool> versions_compatible(const std::string& name, const std::string& here,
                                        const std::string& there, const std::string& node,
                                        const std::string& peer, std::string* why) {
  if (name == "software.version") return true;
  if (name == "protocol.replication") {
    auto a = parse_range(here);
    auto b = parse_range(there);
    if (!a || !b) return std::nullopt;
    auto v = replicator::negotiate({peer, *b, 0}, {node, *a, 0});
    if (!v) *why = v.status().message();
    return v.is_ok();
  }
  if (name == "catalog.version") {
    auto a = parse_int(here);
    auto b = parse_int(there);
    if (!a || !b) return std::nullopt;
    auto st = replicator::check_catalog_versions(node, *a, peer, *b);
    if (!st) *why = st.message();
    return st.is_ok();
  }
  return std::nullopt;
}

}  // namespace

std::vector<Mismatch> compare_facts(const CheckInput& in) {
  const std::map<std::string, std::string> here(in.local.begin(), in.local.end());
  const std::map<std::string, std::string> there(in.peer.begin(), in.peer.end());
  auto get = [](const std::map<std::string, std::string>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("(none)") : it->second;
  };
  const std::string peer_name = get(there, "node.name");
  std::vector<Mismatch> out;
  std::set<std::string> handled;
  for (const auto& [a, b] : mirrored()) {
    handled.insert(a);
    handled.insert(b);
    for (const auto& [mine, theirs] : {std::pair{a, b}, std::pair{b, a}}) {
      if (get(here, mine) != get(there, theirs)) {
        out.push_back({mine, "this node's " + mine + " is " + quoted(get(here, mine)) +
                                 " but the peer's " + theirs + " is " +
                                 quoted(get(there, theirs))});
      }
    }
  }
  // The peer's peer.address must lead here.
  handled.insert("peer.address");
  handled.insert("replication.listen");
  bool reaches_here = false;
  for (const auto& a : in.peer_view_of_here) {
    if (std::find(in.local_addresses.begin(), in.local_addresses.end(), a) !=
        in.local_addresses.end()) {
      reaches_here = true;
    }
  }
  if (!reaches_here) {
    out.push_back({"peer.address", "the peer's peer.address " + quoted(get(there, "peer.address")) +
                                       " is not an address of this node"});
  }
  std::set<std::string> names;
  for (const auto& [k, v] : here) names.insert(k);
  for (const auto& [k, v] : there) names.insert(k);
  for (const auto& name : names) {
    if (handled.count(name) || is_node_local(name)) continue;
    if (name == "software.version") continue;  // information only (compatible_differences)
    if (name == "database.encoding") {
      // Absent on a release before it was reported: nothing to compare.
      if (!here.count(name) || !there.count(name) || here.at(name) == there.at(name)) continue;
      out.push_back({name, encoding_mismatch(here.at(name), there.at(name))});
      continue;
    }
    if (here.count(name) && there.count(name) && here.at(name) != there.at(name)) {
      std::string why;
      auto ok = versions_compatible(name, here.at(name), there.at(name), get(here, "node.name"),
                                    peer_name, &why);
      if (ok && *ok) continue;
      if (ok) {
        out.push_back({name, name + " differs: here " + quoted(here.at(name)) + ", peer " +
                                 quoted(there.at(name)) + ": " + one_line_of(why)});
        continue;
      }
    }
    const bool in_here = here.count(name) > 0;
    const bool in_there = there.count(name) > 0;
    if (in_here && !in_there) {
      out.push_back({name, name + " is " + quoted(here.at(name)) + " here but absent on the peer"});
    } else if (!in_here && in_there) {
      out.push_back(
          {name, name + " is absent here but " + quoted(there.at(name)) + " on the peer"});
    } else if (here.at(name) != there.at(name)) {
      out.push_back({name, name + " differs: here " + quoted(here.at(name)) + ", peer " +
                               quoted(there.at(name))});
    }
  }
  return out;
}

std::vector<Mismatch> compatible_differences(const CheckInput& in) {
  const std::map<std::string, std::string> here(in.local.begin(), in.local.end());
  const std::map<std::string, std::string> there(in.peer.begin(), in.peer.end());
  auto name_of = [](const std::map<std::string, std::string>& m) {
    auto it = m.find("node.name");
    return it == m.end() ? std::string("(none)") : it->second;
  };
  std::vector<Mismatch> out;
  for (const char* name : {"software.version", "protocol.replication", "catalog.version"}) {
    const bool in_here = here.count(name) > 0;
    const bool in_there = there.count(name) > 0;
    if (in_here && !in_there && std::string(name) == "software.version") {
      out.push_back({name, std::string(name) + " is " + quoted(here.at(name)) +
                               " here; the peer runs a release before " + name + " was reported"});
      continue;
    }
    if (!in_here || !in_there || here.at(name) == there.at(name)) continue;
    std::string why;
    auto ok = versions_compatible(name, here.at(name), there.at(name), name_of(here),
                                  name_of(there), &why);
    if (ok && *ok) {
      out.push_back({name, std::string(name) + " differs: here " + quoted(here.at(name)) +
                               ", peer " + quoted(there.at(name)) +
                               " (compatible: a rolling upgrade in progress; finish it)"});
    }
  }
  return out;
}

size_t compared_facts(const CheckInput& in) {
  std::set<std::string> names;
  for (const auto& [k, v] : in.local) names.insert(k);
  for (const auto& [k, v] : in.peer) names.insert(k);
  return names.size();
}

}  // namespace mpf::server::verify
