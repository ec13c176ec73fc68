// SystemdNotifier: the daemon's side of systemd's Type=notify protocol (sd_notify(3)): READY=1
// once the receiver is bound and the node driver started, STATUS= lines, WATCHDOG=1 pings and
// STOPPING=1 at shutdown. Outside systemd (no NOTIFY_SOCKET: tests, the pair, a shell) every
// call is a cheap no-op.
//
// The watchdog pings come from a timer on the daemon's io_context, not from a thread of their
// own, so a wedged event loop (heartbeats, role changes, control socket) stops the pings and
// systemd restarts the daemon (WatchdogSec= in deploy/systemd/mpfailoverd.service).
//
// Thread safety: none; call from the thread that runs the io_context (or before it runs).
// Lifetime: the io_context must outlive this object.
#pragma once

#include <chrono>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace mpf::server {

class SystemdNotifier {
 public:
  explicit SystemdNotifier(boost::asio::io_context& io);

  // READY=1 with a STATUS= line; starts the watchdog pings (at half of WatchdogSec=) when
  // systemd asked for them (sd_watchdog_enabled).
  void ready(std::string_view status);
  // STATUS=<status>: shown by `systemctl status mpfailoverd`.
  void status(std::string_view status);
  // STOPPING=1; stops the watchdog pings.
  void stopping();

  // The ping interval, zero when systemd runs no watchdog for this process.
  std::chrono::microseconds watchdog_interval() const { return interval_; }

 private:
  void send(const std::string& state);
  void schedule_ping();

  boost::asio::steady_timer timer_;
  std::chrono::microseconds interval_{0};
  bool enabled_ = false;  // NOTIFY_SOCKET was set at construction
};

}  // namespace mpf::server
