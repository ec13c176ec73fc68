// NOTES
// - sd_notify(0, ...) keeps NOTIFY_SOCKET in the environment on purpose: the hooks inherit it,
//   but the unit's NotifyAccess=main (the default) makes systemd ignore anything they send.
// - The first ping is sent with READY=1 and the next after half the watchdog interval, as
//   sd_watchdog_enabled(3) recommends; systemd counts the watchdog only from READY=1, so the
//   time spent checking the database before it does not count against WatchdogSec=.
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <mpf/server/systemd_notify.hpp>

namespace mpf::server {

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io) : timer_(io) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    interval_ = std::chrono::microseconds(usec / 2);
  }
}

void SystemdNotifier::send(const std::string& state) {
  if (!enabled_) return;
  if (int r = sd_notify(0, state.c_str()); r < 0) {
    spdlog::warn("SystemdNotifyFailed state=\"{}\" errno={}", state.substr(0, state.find('\n')),
                 -r);
  }
}

void SystemdNotifier::ready(std::string_view status) {
  send("READY=1\nSTATUS=" + std::string(status));
  if (interval_.count() > 0) {
    spdlog::info("SystemdWatchdog interval_ms={}",
                 std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count());
    send("WATCHDOG=1");
    schedule_ping();
  }
}

void SystemdNotifier::status(std::string_view status) { send("STATUS=" + std::string(status)); }

void SystemdNotifier::stopping() {
  timer_.cancel();
  interval_ = std::chrono::microseconds(0);
  send("STOPPING=1");
}

void SystemdNotifier::schedule_ping() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || interval_.count() == 0) return;
    send("WATCHDOG=1");
    schedule_ping();
  });
}

}  // namespace mpf::server
