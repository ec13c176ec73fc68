// spdlog set-up shared by the daemon and the CLI: one line per event, to stderr.
#pragma once

#include <string>

namespace mpf::server {

// `level` is one of trace, debug, info, warn, error (validated by the config loader).
void setup_logging(const std::string& program, const std::string& level);

}  // namespace mpf::server
