// ICMP echo ("ping") to one address, the heartbeat's fallback when the peer's daemon does not
// answer: a reply means "service down, host up", silence means "host unreachable".
//
// Lifetime and threading: an IcmpPinger lives on one io_context and must be used only from the
// thread running it (or before it runs). Destroying it cancels a ping in flight; `done` is
// then never called. The io_context must outlive the IcmpPinger.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

#include <mpf/core/status.hpp>

namespace mpf::heartbeat {

namespace detail {
class PingSession;  // the socket and the ping in flight (icmp_pinger.cpp)
}  // namespace detail

enum class PingOutcome {
  kReply,    // the address answered an echo request
  kTimeout,  // no reply within the timeout
  kError,    // the request could not be sent, or the network said the host is unreachable
};

struct PingResult {
  PingOutcome outcome;
  std::chrono::microseconds rtt{0};  // send of the answered request to its reply; kReply only
  std::string detail;                // what happened, for logs and status; names the address
};

// Which kind of ICMP socket open() may use. kAuto: raw when permitted (CAP_NET_RAW), else the
// unprivileged datagram socket. The others exist for tests and for sites that want one kind.
enum class IcmpSocketChoice { kAuto, kRaw, kDatagram };

class IcmpPinger {
 public:
  // Opens an ICMP socket for `address`, an IPv4 or IPv6 literal ("198.18.0.32", "fe80::1%eth0").
  // Fails with kInvalidArgument for a bad address and kFailedPrecondition when no permitted
  // socket kind exists; that message says how to grant one.
  static Result<std::unique_ptr<IcmpPinger>> open(
      boost::asio::io_context& io, const std::string& address,
      IcmpSocketChoice choice = IcmpSocketChoice::kAuto);

  ~IcmpPinger();
  IcmpPinger(const IcmpPinger&) = delete;
  IcmpPinger& operator=(const IcmpPinger&) = delete;

  // Sends `count` echo requests, timeout / count apart, and calls `done` once, from the
  // io_context (never from inside ping()): with the first reply to any of them, with kTimeout
  // when `timeout` has passed since the first was sent, or with kError.
  // REQUIRES: `done` is callable (else abort). No other ping of this IcmpPinger in flight (else
  // `done` gets kError and nothing is sent); timeout > 0 and count >= 1 (else likewise).
  void ping(std::chrono::milliseconds timeout, std::function<void(PingResult)> done, int count = 1);

  // "raw" or "datagram": the socket kind open() got.
  std::string_view socket_kind() const;

  // The address as given to open().
  const std::string& address() const { return address_; }

 private:
  IcmpPinger(std::shared_ptr<detail::PingSession> session, std::string address,
             std::string_view kind);

  std::shared_ptr<detail::PingSession> session_;
  std::string address_;
  std::string_view kind_;
};

const char* to_string(PingOutcome outcome);

}  // namespace mpf::heartbeat
