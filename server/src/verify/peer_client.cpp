#include "peer_client.hpp"

#include <cstring>
#include <random>
#include <thread>

#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/replicator/security.hpp>

namespace mpf::server::verify {

struct PeerClient::Impl {
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
  zmq::socket_t monitor{context, zmq::socket_type::pair};
  bool handshake_ok = false;
  std::string refusal;  // from the socket monitor: a failed CURVE handshake
  ~Impl() { zmq_socket_monitor(socket.handle(), nullptr, 0); }
};

PeerClient::PeerClient(const Config& config) : config_(config) {}
PeerClient::~PeerClient() = default;

std::string PeerClient::where() const {
  return "peer \"" + config_.peer.name + "\" at " + config_.peer_endpoint().substr(6);
}

Status PeerClient::open() {
  replicator::Security security;
  security.curve = config_.security.mode == "curve";
  if (security.curve) {
    auto pub = replicator::read_key_file(config_.security.public_key_file, false);
    auto sec = replicator::read_key_file(config_.security.secret_key_file, true);
    auto peer = replicator::read_key_file(config_.security.peer_public_key_file, false);
    for (const auto* r : {&pub, &sec, &peer}) {
      if (!*r) return r->status().with_context("this node's CURVE keys (run as root)");
    }
    security.public_key = *pub;
    security.secret_key = *sec;
    security.peer_public_key = *peer;
  }
  std::random_device rd;
  next_id_ = (uint64_t{rd()} << 32 | rd()) & 0x7fffffffffffffffull;
  try {
    impl_ = std::make_unique<Impl>();
    impl_->socket.set(zmq::sockopt::linger, 0);
    impl_->socket.set(zmq::sockopt::reconnect_ivl, 200);
    impl_->socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxVerifyFrameBytes));
    const std::string monitor_addr =
        "inproc://mpf-verify-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    if (zmq_socket_monitor(impl_->socket.handle(), monitor_addr.c_str(),
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
      throw zmq::error_t();
    }
    impl_->monitor.set(zmq::sockopt::linger, 0);
    impl_->monitor.connect(monitor_addr);
    replicator::configure_client(impl_->socket, security);
    impl_->socket.connect(config_.peer_endpoint());
  } catch (const zmq::error_t& e) {
    return unavailable("could not connect to " + where() + ": " + e.what());
  }
  return Status::ok();
}

Result<VerifyBody> PeerClient::ask(VerifyBody request, std::chrono::milliseconds timeout) {
  MPF_ASSERT(impl_ != nullptr, "PeerClient::ask before open");
  using Clock = std::chrono::steady_clock;
  const uint64_t id = next_id_++;
  auto send = [&](const VerifyBody& body) {
    const std::string frame = encode(VerifyMessage{id, body});
    bytes_sent_ += frame.size();
    ++round_trips_;
    impl_->socket.send(zmq::buffer(frame), zmq::send_flags::none);
  };
  const bool curve = config_.security.mode == "curve";
  try {
    send(request);
    // Until the connection is up, a short deadline: an unreachable peer is told quickly.
    auto deadline = Clock::now() + (impl_->handshake_ok ? timeout : kConnectTimeout);
    auto backoff = std::chrono::milliseconds(1);
    for (;;) {
      zmq::pollitem_t items[] = {{impl_->socket.handle(), 0, ZMQ_POLLIN, 0},
                                 {impl_->monitor.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t event;
        zmq::message_t address;
        if (impl_->monitor.recv(event, zmq::recv_flags::dontwait) &&
            impl_->monitor.recv(address, zmq::recv_flags::dontwait)) {
          uint16_t kind = 0;
          if (event.size() >= 2) std::memcpy(&kind, event.data(), 2);
          if (kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            impl_->handshake_ok = true;
            deadline = Clock::now() + timeout;
          } else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            impl_->refusal = where() + " refused this node's public key (" +
                             config_.security.public_key_file +
                             "): its security.peer_public_key_file must hold this node's public "
                             "key (mpfailover check names both fingerprints when it can connect)";
          } else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                     kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                     (kind == ZMQ_EVENT_DISCONNECTED && curve && !impl_->handshake_ok)) {
            if (impl_->refusal.empty()) {
              impl_->refusal = "security handshake with " + where() +
                               " failed: is security.peer_public_key_file (" +
                               config_.security.peer_public_key_file +
                               ") the peer's public key, and security.mode the same on both?";
            }
          }
        }
        if (!impl_->refusal.empty()) return unavailable(impl_->refusal);
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t frame;
        while (impl_->socket.recv(frame, zmq::recv_flags::dontwait)) {
          bytes_received_ += frame.size();
          auto m =
              decode_verify(std::string_view(static_cast<const char*>(frame.data()), frame.size()));
          if (!m)
            return unavailable("undecodable answer from " + where() + ": " + m.status().message());
          if (auto* e = std::get_if<ErrorAnswer>(&m->body); e && m->request_id == 0) {
            return failed_precondition(where() + " could not read the request: " + e->message);
          }
          if (m->request_id != id) continue;  // a late answer to an earlier request
          if (auto* e = std::get_if<ErrorAnswer>(&m->body)) return failed_precondition(e->message);
          if (std::holds_alternative<PendingAnswer>(m->body)) {
            // Working on it: ask again soon; the peer is alive, so the deadline moves.
            deadline = Clock::now() + timeout;
            std::this_thread::sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(50));
            send(PollRequest{});
            continue;
          }
          return std::move(m->body);
        }
      }
      if (Clock::now() > deadline) {
        return unavailable(where() +
                           (impl_->handshake_ok ? " did not answer within " + duration_text(timeout)
                                                : " could not be reached within " +
                                                      duration_text(kConnectTimeout)) +
                           ": is mpfailoverd running there, and port " +
                           config_.peer_endpoint().substr(config_.peer_endpoint().rfind(':') + 1) +
                           " reachable? (mpfailover status shows the link)");
      }
    }
  } catch (const zmq::error_t& e) {
    return unavailable("verify channel to " + where() + ": " + e.what());
  }
}

}  // namespace mpf::server::verify
