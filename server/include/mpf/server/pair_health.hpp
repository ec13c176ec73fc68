// pair_health: the one rule that says whether the pair is healthy, from a daemon's `status`
// answer (its JSON, as `status --json` prints it). `mpfailover list` and `status` exit non-zero
// when it is not, and say why; a monitoring check can rely on that exit code.
//
// Healthy means all of: this node is active or standby (not starting, promoting, demoting or
// standalone); the peer answers heartbeats (peer_state "up") and is in the other of those two
// roles, so exactly one node is active; both replication links are up; writes are open on the
// active and closed on the standby (or deliberately unfenced: node.app_role unset); no version
// error. Lag and backlog are figures to watch, not verdicts: they have no threshold here.
//
// Pure: JSON in, verdict out; a field a daemon of an older release does not send is not judged.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace mpf::server {

struct PairHealth {
  bool healthy = true;
  std::vector<std::string> problems;  // one line each, naming the node
};

PairHealth pair_health(const nlohmann::json& status);

// This node alone (for /health): active, standby or standalone (not starting, promoting or
// demoting), writes as the role wants them, no version error. The peer is not judged: a load
// balancer or keepalived must keep trusting the survivor when its peer is gone.
PairHealth node_health(const nlohmann::json& status);

// The metrics listener's health endpoints (HAProxy `option httpchk GET /active`, keepalived
// track_script with curl): GET /active is 200 while this node is active with writes open,
// /standby 200 while it is standby, /health 200 while node_health() holds; 503 otherwise. The
// body is a JSON object {node, role, writes, ok, problems}. nullopt for any other path.
struct EndpointAnswer {
  int code = 503;
  std::string body;
};
std::optional<EndpointAnswer> health_endpoint(std::string_view path, const nlohmann::json& status);

}  // namespace mpf::server
