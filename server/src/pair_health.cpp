#include <mpf/server/pair_health.hpp>

namespace mpf::server {
namespace {

using json = nlohmann::json;

std::string str(const json& s, const char* key) {
  auto it = s.find(key);
  return it != s.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool settled(const std::string& role) { return role == "active" || role == "standby"; }

// Writes as the role wants them: open on the active, closed on the standby.
void judge_writes(const std::string& node, const std::string& role, const std::string& writes,
                  std::vector<std::string>& problems) {
  if (writes.empty() || writes == "unfenced") return;
  if (role == "active" && writes != "open") {
    problems.push_back("node " + node + " is active but its writes are " + writes);
  } else if (role == "standby" && writes != "closed") {
    problems.push_back("node " + node + " is standby but its writes are " + writes);
  }
}

}  // namespace

PairHealth pair_health(const json& s) {
  PairHealth h;
  auto& p = h.problems;
  const std::string node = str(s, "node");
  const std::string peer = str(s, "peer");
  const std::string role = str(s, "role");
  if (!settled(role)) p.push_back("node " + node + " is " + (role.empty() ? "unknown" : role));
  judge_writes(node, role, str(s, "writes"), p);

  const std::string peer_state = str(s, "peer_state");
  const std::string peer_role = str(s, "peer_role");
  if (peer_state != "up") {
    p.push_back("peer " + peer + " is " + (peer_state.empty() ? "unknown" : peer_state));
  } else if (!settled(peer_role)) {
    p.push_back("peer " + peer + " is " + (peer_role.empty() ? "unknown" : peer_role));
  } else if (settled(role) && peer_role == role) {
    p.push_back(role == "active" ? "both nodes are active"
                                 : "no node is active (both are standby)");
  }
  if (peer_state == "up" && s.contains("peer_facts") && s["peer_facts"].is_object()) {
    judge_writes(peer, peer_role, s["peer_facts"].value("writes", std::string()), p);
  }

  if (s.contains("link") && s["link"].is_object()) {
    for (const char* dir : {"outbound", "inbound"}) {
      if (str(s["link"], dir) != "up") {
        p.push_back(std::string("replication ") + dir + " of node " + node + " is " +
                    (str(s["link"], dir).empty() ? "unknown" : str(s["link"], dir)));
      }
    }
  }
  if (s.contains("version_error") && s["version_error"].is_string()) {
    p.push_back("version error: " + s["version_error"].get<std::string>());
  }
  h.healthy = p.empty();
  return h;
}

PairHealth node_health(const json& s) {
  PairHealth h;
  const std::string node = str(s, "node");
  const std::string role = str(s, "role");
  if (!settled(role) && role != "standalone") {
    h.problems.push_back("node " + node + " is " + (role.empty() ? "unknown" : role));
  }
  judge_writes(node, role, str(s, "writes"), h.problems);
  if (s.contains("version_error") && s["version_error"].is_string()) {
    h.problems.push_back("version error: " + s["version_error"].get<std::string>());
  }
  h.healthy = h.problems.empty();
  return h;
}

std::optional<EndpointAnswer> health_endpoint(std::string_view path, const json& s) {
  const std::string role = str(s, "role");
  const std::string writes = str(s, "writes");
  PairHealth verdict;
  if (path == "/active") {
    if (role != "active") verdict.problems.push_back("role is " + role + ", not active");
    if (writes != "open" && writes != "unfenced") {
      verdict.problems.push_back("writes are " + writes);
    }
  } else if (path == "/standby") {
    if (role != "standby") verdict.problems.push_back("role is " + role + ", not standby");
  } else if (path == "/health") {
    verdict = node_health(s);
  } else {
    return std::nullopt;
  }
  verdict.healthy = verdict.problems.empty();
  EndpointAnswer a;
  a.code = verdict.healthy ? 200 : 503;
  a.body = json{{"node", str(s, "node")},
                {"role", role},
                {"writes", writes},
                {"ok", verdict.healthy},
                {"problems", verdict.problems}}
               .dump() +
           "\n";
  return a;
}

}  // namespace mpf::server
