// spdlog set-up shared by the daemon and the CLI: one line per event, to stderr with a timestamp
// that carries its zone, or, under systemd (stderr is the journal's stream, JOURNAL_STREAM), to
// journald with each line's priority.
#pragma once

#include <string>

namespace mpf::server {

// `level` is one of trace, debug, info, warn, error (validated by the config loader).
void setup_logging(const std::string& program, const std::string& level);

// True when stderr is connected to journald (JOURNAL_STREAM names stderr's device and inode).
bool stderr_is_journal();

}  // namespace mpf::server
