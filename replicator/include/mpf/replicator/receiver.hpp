// Receiver: the target side of replication. A ZeroMQ ROUTER bound to the replication port
// accepts one session at a time from the configured peer, applies its batches through a
// PgApplier and acknowledges each after commit (NOTES.md §2). Garbage, truncated, foreign or
// out-of-order frames are dropped with a log line; the receiver keeps serving.
//
// Thread safety: bind() then run() on one thread; stats() from any.
#pragma once

#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include <mpf/core/status.hpp>
#include <mpf/replicator/link_stats.hpp>
#include <mpf/replicator/security.hpp>

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace mpf::replicator {

struct ReceiverOptions {
  std::string node;      // this node's name (the target)
  std::string peer;      // the only origin accepted
  std::string endpoint;  // "tcp://0.0.0.0:2008"
  std::string conninfo;  // this node's database
  int32_t catalog_version = 0;
  Security security;
};

class Receiver {
 public:
  Receiver(zmq::context_t& context, ReceiverOptions options);
  ~Receiver();

  // Binds the socket; an address in use or not local is an error naming it.
  Status bind();

  void run(std::stop_token stop);

  LinkStats stats() const;

 private:
  class Sessions;
  zmq::context_t& context_;
  ReceiverOptions options_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<ZapHandler> zap_;
  mutable std::mutex mu_;
  LinkStats stats_;
};

}  // namespace mpf::replicator
