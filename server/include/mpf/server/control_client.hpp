// The CLI's end of the control socket: one JSON request, one JSON reply.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include <mpf/core/status.hpp>

namespace mpf::server {

// kUnavailable when no daemon answers (with a hint), kFailedPrecondition when access is denied.
Result<nlohmann::json> control_request(const std::string& socket_path,
                                       const nlohmann::json& request);

}  // namespace mpf::server
