// NOTES
//
// Raw or datagram socket. A raw ICMP socket (SOCK_RAW, IPPROTO_ICMP) needs CAP_NET_RAW; Linux
// also offers an unprivileged "ping socket" (SOCK_DGRAM, IPPROTO_ICMP or IPPROTO_ICMPV6) to
// processes whose group lies in net.ipv4.ping_group_range (the sysctl covers IPv6 too; the
// kernel's default, also in each new network namespace, is the empty range "1 0", which some
// distributions' systemd sysctl files widen to all groups). open() tries raw first because it is
// the one that works under a systemd unit granting CAP_NET_RAW (AmbientCapabilities=)
// whatever the sysctl says, and falls back to datagram, so an unprivileged daemon on a host that
// widened the range still has its ping fallback. When neither opens, the error names both remedies;
// a heartbeat without its ping cannot tell "service down" from "host unreachable", so the caller
// must not carry on silently.
//
// What each kind delivers. Raw IPv4: every ICMP datagram the host receives, IPv4 header first,
// so the codec strips and checks the header, and an ICMP_FILTER socket option lets only echo
// replies through (ICMP6_FILTER for raw IPv6, which delivers no IP header). Datagram: only the
// ICMP message, and only echo replies whose identifier is the one the kernel chose for this
// socket (it overwrites ours on send, as it fills in the checksum).
//
// Matching replies. Each IcmpPinger takes a fresh identifier (raw) and numbers its requests
// with a 16-bit sequence that keeps growing across pings, so a late reply to an earlier ping
// (or to another process's ping of the same host) is not taken as an answer now: a reply counts
// only when it is an echo reply, its checksum adds up (IPv4), its identifier is ours (raw
// only) and its sequence is one this ping has sent, compared mod 2^16
// (core/icmp_codec.cpp: match_echo_reply). The sender address must be the peer's; besides, the
// socket is connect()ed to the peer, so the kernel drops other hosts' replies before we see
// them.
//
// Why connect(). A connected ICMP socket also gets the "hard" ICMP errors about our requests
// (administratively prohibited, as an nft "reject with icmp type admin-prohibited" sends;
// protocol or port unreachable) as a socket error on the next receive, so such a ping ends with
// kError at once instead of at its timeout. "Soft" errors, host or network unreachable
// (including the one the kernel makes itself when ARP for a host on the link fails), reach a
// socket only with IP_RECVERR, whose error queue we would then have to drain: they are left to
// the timeout, which gives the caller the same verdict (no answer) a little later. connect()
// needs a route, so it happens at the first ping, not in open(): a pinger opened while the link
// is down still works once it comes up.
//
// One receive is outstanding while the session lives, also between pings, so replies arriving
// late are read and dropped instead of piling up in the socket buffer. It stops on a socket
// error (so a lasting error cannot spin) and the next ping starts it again.
#include <array>
#include <atomic>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/datagram_protocol.hpp>
#include <boost/asio/generic/raw_protocol.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/icmp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mpf/heartbeat/icmp_pinger.hpp>

#include "../core/icmp_codec.hpp"

namespace mpf::heartbeat {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace detail {

class PingSession {
 public:
  virtual ~PingSession() = default;
  virtual void ping(std::chrono::milliseconds timeout, std::function<void(PingResult)> done,
                    int count) = 0;
  virtual void close() = 0;
};

}  // namespace detail

namespace {

// Bytes after the echo header; any will do, this one is recognisable in a packet capture.
constexpr std::array<std::uint8_t, 16> kPayload = {'m', 'p', 'f', 'a', 'i', 'l', 'o', 'v',
                                                   'e', 'r', ' ', 'p', 'i', 'n', 'g', '\n'};
// Larger than any echo reply to our requests; longer datagrams arrive cut short and are ignored.
constexpr std::size_t kReceiveBufferSize = 2048;

// A socket option Boost.Asio does not name (ICMP_FILTER, ICMP6_FILTER), in its
// SettableSocketOption shape.
template <int Level, int Name, typename T>
class BinaryOption {
 public:
  explicit BinaryOption(const T& value) : value_(value) {}
  template <typename Protocol>
  int level(const Protocol&) const {
    return Level;
  }
  template <typename Protocol>
  int name(const Protocol&) const {
    return Name;
  }
  template <typename Protocol>
  const void* data(const Protocol&) const {
    return &value_;
  }
  template <typename Protocol>
  std::size_t size(const Protocol&) const {
    return sizeof(value_);
  }

 private:
  T value_;
};

// On a raw socket, let only echo replies through: it would otherwise get every ICMP message
// the host receives (others' echo requests, errors about others' traffic).
boost::system::error_code pass_only_echo_replies(asio::generic::raw_protocol::socket& socket,
                                                 bool v4) {
  boost::system::error_code ec;
  if (v4) {
    icmp_filter filter{};
    filter.data = ~(1u << ICMP_ECHOREPLY);  // a set bit blocks that type
    socket.set_option(BinaryOption<SOL_RAW, ICMP_FILTER, icmp_filter>(filter), ec);
  } else {
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
    socket.set_option(BinaryOption<IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter>(filter), ec);
  }
  return ec;
}

// A fresh identifier per raw pinger: two pingers of one process (or of two daemons on one
// host) share every echo reply the host receives and must not take each other's.
std::uint16_t next_identifier() {
  static std::atomic<std::uint16_t> counter{0};
  return static_cast<std::uint16_t>(static_cast<unsigned>(::getpid()) * 31u +
                                    counter.fetch_add(1) * 0x9e37u);
}

template <typename Endpoint>
asio::ip::address address_of(const Endpoint& endpoint) {
  asio::ip::icmp::endpoint ip_endpoint;
  if (endpoint.size() > ip_endpoint.capacity()) return {};
  std::memcpy(ip_endpoint.data(), endpoint.data(), endpoint.size());
  ip_endpoint.resize(endpoint.size());
  return ip_endpoint.address();
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string requests(int n) { return std::to_string(n) + (n == 1 ? " request" : " requests"); }

// One socket (raw or datagram: Protocol is asio::generic::raw_protocol or datagram_protocol)
// and the ping in flight. Every handler holds a shared_ptr to it, so it outlives its
// IcmpPinger until they have all run; close() makes them return without calling `done`.
template <typename Protocol>
class SocketSession final : public detail::PingSession,
                            public std::enable_shared_from_this<SocketSession<Protocol>> {
 public:
  using Socket = typename Protocol::socket;
  using Endpoint = typename Protocol::endpoint;

  SocketSession(Socket socket, asio::ip::address peer, std::string peer_text, icmp::Framing framing,
                std::optional<std::uint16_t> identifier)
      : socket_(std::move(socket)),
        send_timer_(socket_.get_executor()),
        deadline_(socket_.get_executor()),
        peer_(peer),
        peer_text_(quoted(peer_text)),
        family_(peer.is_v4() ? icmp::Family::kV4 : icmp::Family::kV6),
        framing_(framing),
        identifier_(identifier) {}

  void ping(std::chrono::milliseconds timeout, std::function<void(PingResult)> done,
            int count) override {
    MPF_ASSERT(done, "IcmpPinger::ping needs a done callback");
    if (active_) return fail_soon(std::move(done), "a ping to " + peer_text_ + " is in flight");
    if (timeout.count() <= 0 || count < 1) {
      return fail_soon(std::move(done), "ping of " + peer_text_ + ": timeout " +
                                            std::to_string(timeout.count()) + " ms and count " +
                                            std::to_string(count) + " must both be positive");
    }
    if (!connected_) {
      boost::system::error_code ec;
      socket_.connect(Endpoint(asio::ip::icmp::endpoint(peer_, 0)), ec);
      if (ec) {
        return fail_soon(std::move(done),
                         "could not send echo request to " + peer_text_ + ": " + ec.message());
      }
      connected_ = true;
    }
    active_ = true;
    const std::uint64_t generation = ++generation_;
    done_ = std::move(done);
    count_ = count;
    sent_at_.clear();
    first_sequence_ = next_sequence_;
    next_sequence_ = static_cast<std::uint16_t>(next_sequence_ + count);
    interval_ = timeout / count;
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = this->shared_from_this(), generation, timeout](auto ec) {
      if (ec || !self->current(generation)) return;
      self->finish(PingOutcome::kTimeout, {},
                   "no echo reply from " + self->peer_text_ + " within " +
                       std::to_string(timeout.count()) + " ms (" +
                       requests(static_cast<int>(self->sent_at_.size())) + " sent)");
    });
    if (!receiving_) receive();
    send(generation);
  }

  void close() override {
    closed_ = true;
    active_ = false;
    done_ = nullptr;
    send_timer_.cancel();
    deadline_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  bool current(std::uint64_t generation) const {
    return !closed_ && active_ && generation == generation_;
  }

  void fail_soon(std::function<void(PingResult)> done, std::string detail) {
    asio::post(socket_.get_executor(), [self = this->shared_from_this(), done = std::move(done),
                                        detail = std::move(detail)] {
      if (!self->closed_) done(PingResult{PingOutcome::kError, {}, detail});
    });
  }

  void send(std::uint64_t generation) {
    const auto sequence =
        static_cast<std::uint16_t>(first_sequence_ + static_cast<std::uint16_t>(sent_at_.size()));
    auto packet = std::make_shared<std::vector<std::uint8_t>>(
        icmp::encode_echo_request(family_, identifier_.value_or(0), sequence, kPayload));
    sent_at_.push_back(Clock::now());
    socket_.async_send(asio::buffer(*packet), [self = this->shared_from_this(), packet, generation](
                                                  auto ec, std::size_t) {
      if (!ec || !self->current(generation)) return;
      self->finish(PingOutcome::kError, {},
                   "could not send echo request to " + self->peer_text_ + ": " + ec.message());
    });
    if (static_cast<int>(sent_at_.size()) < count_) {
      send_timer_.expires_after(interval_);
      send_timer_.async_wait([self = this->shared_from_this(), generation](auto ec) {
        if (ec || !self->current(generation)) return;
        self->send(generation);
      });
    }
  }

  void receive() {
    receiving_ = true;
    socket_.async_receive_from(
        asio::buffer(rx_), sender_,
        [self = this->shared_from_this()](auto ec, std::size_t n) { self->on_receive(ec, n); });
  }

  void on_receive(const boost::system::error_code& ec, std::size_t n) {
    receiving_ = false;
    if (closed_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // A hard ICMP error about our requests, reported on the connected socket (NOTES).
      if (active_) {
        finish(PingOutcome::kError, {},
               "echo request to " + peer_text_ + " drew an ICMP error: " + ec.message());
      }
      return;  // the next ping receives again
    }
    if (active_ && address_of(sender_) == peer_) {
      const icmp::EchoExpectation expected{family_, framing_, identifier_, first_sequence_,
                                           static_cast<std::uint16_t>(sent_at_.size())};
      const auto match = icmp::match_echo_reply({rx_.data(), n}, expected);
      if (match.verdict == icmp::ReplyVerdict::kMatch) {
        const auto index = static_cast<std::uint16_t>(match.sequence - first_sequence_);
        const auto rtt =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent_at_[index]);
        finish(PingOutcome::kReply, rtt,
               "echo reply from " + peer_text_ + " to request " + std::to_string(index + 1) +
                   " of " + std::to_string(count_) + " in " + std::to_string(rtt.count()) + " us");
      }
    }
    // `done` may have started the next ping (and its receive) or closed us.
    if (!closed_ && !receiving_) receive();
  }

  void finish(PingOutcome outcome, std::chrono::microseconds rtt, std::string detail) {
    active_ = false;
    send_timer_.cancel();
    deadline_.cancel();
    auto done = std::move(done_);
    done_ = nullptr;
    done(PingResult{outcome, rtt, std::move(detail)});
  }

  Socket socket_;
  asio::steady_timer send_timer_;
  asio::steady_timer deadline_;
  const asio::ip::address peer_;
  const std::string peer_text_;
  const icmp::Family family_;
  const icmp::Framing framing_;
  const std::optional<std::uint16_t> identifier_;  // ours on raw sockets; the kernel's on datagram

  bool closed_ = false;
  bool connected_ = false;
  bool receiving_ = false;
  std::array<std::uint8_t, kReceiveBufferSize> rx_{};
  Endpoint sender_;
  std::uint16_t next_sequence_ = 1;

  // The ping in flight.
  bool active_ = false;
  std::uint64_t generation_ = 0;  // tells a stale timer or send handler from the current ping's
  std::function<void(PingResult)> done_;
  int count_ = 0;
  std::uint16_t first_sequence_ = 0;
  std::chrono::milliseconds interval_{0};
  std::vector<Clock::time_point> sent_at_;  // by request index
};

std::string ping_group_range() {
  std::ifstream in("/proc/sys/net/ipv4/ping_group_range");
  std::string low, high;
  if (!(in >> low >> high)) return "unknown";
  return low + " " + high;
}

}  // namespace

IcmpPinger::IcmpPinger(std::shared_ptr<detail::PingSession> session, std::string address,
                       std::string_view kind)
    : session_(std::move(session)), address_(std::move(address)), kind_(kind) {}

IcmpPinger::~IcmpPinger() { session_->close(); }

void IcmpPinger::ping(std::chrono::milliseconds timeout, std::function<void(PingResult)> done,
                      int count) {
  session_->ping(timeout, std::move(done), count);
}

std::string_view IcmpPinger::socket_kind() const { return kind_; }

Result<std::unique_ptr<IcmpPinger>> IcmpPinger::open(asio::io_context& io,
                                                     const std::string& address,
                                                     IcmpSocketChoice choice) {
  boost::system::error_code ec;
  const asio::ip::address peer = asio::ip::make_address(address, ec);
  if (ec) {
    return invalid_argument("invalid ping address " + quoted(address) +
                            ": expected an IPv4 or IPv6 address");
  }
  const bool v4 = peer.is_v4();
  const int family = v4 ? AF_INET : AF_INET6;
  const int protocol = v4 ? static_cast<int>(IPPROTO_ICMP) : static_cast<int>(IPPROTO_ICMPV6);

  std::string raw_error;
  if (choice != IcmpSocketChoice::kDatagram) {
    asio::generic::raw_protocol::socket socket(io);
    socket.open(asio::generic::raw_protocol(family, protocol), ec);
    if (!ec) ec = pass_only_echo_replies(socket, v4);
    if (!ec) {
      auto session = std::make_shared<SocketSession<asio::generic::raw_protocol>>(
          std::move(socket), peer, address,
          v4 ? icmp::Framing::kIpv4Header : icmp::Framing::kIcmpOnly, next_identifier());
      return std::unique_ptr<IcmpPinger>(new IcmpPinger(std::move(session), address, "raw"));
    }
    raw_error = "raw ICMP socket: " + ec.message();
  }

  std::string datagram_error;
  if (choice != IcmpSocketChoice::kRaw) {
    asio::generic::datagram_protocol::socket socket(io);
    socket.open(asio::generic::datagram_protocol(family, protocol), ec);
    if (!ec) {
      auto session = std::make_shared<SocketSession<asio::generic::datagram_protocol>>(
          std::move(socket), peer, address, icmp::Framing::kIcmpOnly, std::nullopt);
      return std::unique_ptr<IcmpPinger>(new IcmpPinger(std::move(session), address, "datagram"));
    }
    datagram_error = "datagram ICMP socket: " + ec.message() + " (net.ipv4.ping_group_range is \"" +
                     ping_group_range() + "\", this process's group is " +
                     std::to_string(::getegid()) + ")";
  }

  const std::string gid = std::to_string(::getegid());
  const std::string raw_hint =
      "grant the process CAP_NET_RAW (systemd: "
      "AmbientCapabilities=CAP_NET_RAW)";
  const std::string datagram_hint = "widen net.ipv4.ping_group_range to include group " + gid +
                                    " (sysctl -w net.ipv4.ping_group_range=\"" + gid + " " + gid +
                                    "\")";
  std::string detail, hint;
  if (choice == IcmpSocketChoice::kRaw) {
    detail = raw_error;
    hint = raw_hint;
  } else if (choice == IcmpSocketChoice::kDatagram) {
    detail = datagram_error;
    hint = datagram_hint;
  } else {
    detail = raw_error + "; " + datagram_error;
    hint = raw_hint + ", or " + datagram_hint;
  }
  return failed_precondition("could not open an ICMP socket to ping " + quoted(address) +
                             "\ndetail: " + detail + "\nhint: " + hint);
}

const char* to_string(PingOutcome outcome) {
  switch (outcome) {
    case PingOutcome::kReply:
      return "reply";
    case PingOutcome::kTimeout:
      return "timeout";
    case PingOutcome::kError:
      return "error";
  }
  return "unknown";
}

}  // namespace mpf::heartbeat
