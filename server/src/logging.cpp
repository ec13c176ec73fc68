#include <cstdio>
#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpf/server/logging.hpp>

namespace mpf::server {

bool stderr_is_journal() {
  // systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connected stderr to; a child
  // whose stderr was redirected elsewhere inherits the variable, hence the comparison.
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  // The journal's native socket: without it (a container without journald) stderr it stays.
  if (::access("/run/systemd/journal/socket", W_OK) != 0) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void setup_logging(const std::string& program, const std::string& level) {
  std::shared_ptr<spdlog::logger> logger;
  if (stderr_is_journal()) {
    // Straight to journald with each line's priority (journalctl -p warning shows the warnings
    // and errors) and the program as SYSLOG_IDENTIFIER; journald stamps the time itself.
    logger = spdlog::systemd_logger_mt(program, program);
    logger->set_pattern("%v");
  } else {
    logger = spdlog::stderr_logger_mt(program);
    // Local time with its offset from UTC, so lines from two nodes compare without guessing.
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace mpf::server
