#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <mpf/server/logging.hpp>

namespace mpf::server {

void setup_logging(const std::string& program, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(program);
  // journald adds its own timestamp; keep ours for plain stderr and files.
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace mpf::server
