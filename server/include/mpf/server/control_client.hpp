// The CLI's end of the control socket: one JSON request, one JSON reply.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include <mpf/core/clock.hpp>
#include <mpf/core/status.hpp>

namespace mpf::server {

// How long a request may wait for the daemon's answer (the CLI's --timeout).
inline constexpr Duration kDefaultControlTimeout = std::chrono::seconds(10);
void set_control_timeout(Duration timeout);
Duration control_timeout();

// kUnavailable when no daemon answers (with a hint) or its answer does not come within
// control_timeout(), kFailedPrecondition when access is denied.
Result<nlohmann::json> control_request(const std::string& socket_path,
                                       const nlohmann::json& request);

}  // namespace mpf::server
