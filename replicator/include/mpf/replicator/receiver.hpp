// Receiver: the target side of replication. A ZeroMQ ROUTER bound to the replication port
// accepts one session at a time from the configured peer, applies its batches through a
// PgApplier and acknowledges each after commit (docs/design.md §2). Garbage, truncated, foreign or
// out-of-order frames are dropped with a log line; the receiver keeps serving.
//
// Thread safety: bind() then run() on one thread; stats() from any.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include <mpf/core/status.hpp>
#include <mpf/replicator/link_stats.hpp>
#include <mpf/replicator/security.hpp>

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace mpf::replicator {

namespace wire {
struct Hello;
}

struct ReceiverOptions {
  std::string node;      // this node's name (the target)
  std::string peer;      // the only origin accepted
  std::string endpoint;  // "tcp://0.0.0.0:2008"
  std::string conninfo;  // this node's database
  int32_t catalog_version = 0;
  // replication.max_protocol_version: the highest version offered and accepted (the pin);
  // 0: this build's highest.
  uint32_t max_protocol_version = 0;
  std::string software_version;  // this node's release, sent in the Hello (informational)
  Security security;
  // Frames for another protocol on the same port (heartbeats): called on the port's thread for
  // every frame; returns nullopt when the frame is not its own (it then goes to apply), else the
  // answer to send back ("" for none). Must be quick and thread-safe.
  std::function<std::optional<std::string>(std::string_view frame)> side_channel;
};

class Receiver {
 public:
  Receiver(zmq::context_t& context, ReceiverOptions options);
  ~Receiver();

  // Binds the socket; an address in use or not local is an error naming it.
  Status bind();

  // Serves the port until stop: the calling thread answers side-channel frames and forwards
  // replication frames to an apply thread of its own.
  void run(std::stop_token stop);

  LinkStats stats() const;

  // While paused (this node is standalone) sessions are refused; from any thread.
  void set_paused(bool paused) { paused_ = paused; }

  // While held (`mpfailover resync` is replacing this node's data) sessions are refused, and
  // the apply thread ends the current one and closes its applier's connection (which frees the
  // peer's replication origin): the next session binds afresh and reads the applied position the
  // resync stored. quiet() is true once the apply thread has done so. From any thread.
  void set_held(bool held) {
    quiet_ = false;
    held_ = held;
  }
  bool quiet() const { return quiet_; }

 private:
  void apply_loop(std::stop_token stop, const std::string& inproc);
  // Whether a Hello may open a session: "" or why not (logged). Sets `version` to the one agreed.
  std::string check_hello(const wire::Hello& hello, uint32_t& version,
                          std::string& version_refusal);
  zmq::context_t& context_;
  ReceiverOptions options_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<ZapHandler> zap_;
  mutable std::mutex mu_;
  LinkStats stats_;
  std::atomic<bool> paused_{false};
  std::atomic<bool> held_{false};
  std::atomic<bool> quiet_{false};
  uint32_t session_version_ = 0;  // apply thread only: the version of the Hello being accepted
  uint64_t applied_batches_ = 0;  // apply thread only: batches in the group being applied
};

}  // namespace mpf::replicator
