// `mpfailover status` on screen, and the verdict monitoring reads from its exit code.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mpf::server {

// Why the pair is not healthy, from the daemon's status JSON (empty: healthy). Healthy: this
// node active or standby, the peer up in the other role, both links up, no version error, clock
// skew within heartbeat.max_skew, the same catalog and tables as the peer.
std::vector<std::string> unhealthy_reasons(const nlohmann::json& status);

// The human form of the status JSON, ending with a "health:" line.
std::string format_status(const nlohmann::json& status);

}  // namespace mpf::server
