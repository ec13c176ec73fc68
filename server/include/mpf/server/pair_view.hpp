// The pair view: both nodes of the pair as this node's daemon knows them, in the words of
// `mpfailover list --json` ({nodes: [this node, its peer], healthy, problems}). One function for
// the CLI and the daemon's status page (GET /status.json), so the page cannot say other than
// `list` at the same moment.
//
// Pure: the daemon's `status` answer (its JSON, as `status --json` prints it) and the config in,
// JSON out. The peer's writes, link, lag and backlog are what its latest heartbeat said, and only
// while it answers heartbeats: nothing is guessed.
#pragma once

#include <nlohmann/json.hpp>

#include <mpf/server/config.hpp>

namespace mpf::server {

nlohmann::ordered_json pair_view_json(const Config& cfg, const nlohmann::json& status);

}  // namespace mpf::server
