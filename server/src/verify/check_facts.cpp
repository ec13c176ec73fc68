#include <algorithm>
#include <map>
#include <set>

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

bool is_node_local(const std::string& name) {
  // Each node's own: addresses it listens on, where its key files are.
  return name == "peer.address" || name == "replication.listen";
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

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

size_t compared_facts(const CheckInput& in) {
  std::set<std::string> names;
  for (const auto& [k, v] : in.local) names.insert(k);
  for (const auto& [k, v] : in.peer) names.insert(k);
  return names.size();
}

}  // namespace mpf::server::verify
