// Shipper: the source side of replication. Reads committed transactions from this node's log
// and streams them to the peer's receiver over one ZeroMQ DEALER socket, at most `window`
// batches unacknowledged (memory stays bounded however large the backlog: docs/design.md §6). The
// peer's acknowledgements, sent after its commit, advance peer_ack and trim the log.
//
// Sessions: each connection attempt is a session (random id, fresh socket, fresh compression
// streams). Hello -> Welcome(applied position) -> the reader seeks there -> batches. Any doubt
// (disconnect seen by the socket monitor, ack timeout, Refuse) ends the session; the next one
// resumes from what the peer says it applied, so nothing is lost or applied twice.
//
// Thread safety: run() on one thread (it starts and joins a second one, which trims the log with
// its own database connection); stats() from any.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include <mpf/core/clock.hpp>
#include <mpf/replicator/link_stats.hpp>
#include <mpf/replicator/security.hpp>

namespace zmq {
class context_t;
}

namespace mpf::replicator {

struct ShipperOptions {
  std::string node;      // this node's name (the origin)
  std::string peer;      // the peer's name (the target)
  std::string endpoint;  // "tcp://198.18.0.12:2008"
  std::string conninfo;  // this node's database
  int32_t catalog_version = 0;
  // replication.max_protocol_version: the highest version offered and accepted (the pin);
  // 0: this build's highest.
  uint32_t max_protocol_version = 0;
  std::string software_version;  // this node's release, sent in the Hello (informational)
  size_t batch_changes = 1000;   // changes per batch at most: a few seconds at 128 kbit/s
  int window = 4;                // batches in flight at most
  Duration poll_interval = std::chrono::milliseconds(1);
  Duration safety_poll = std::chrono::milliseconds(100);
  Duration handshake_timeout = std::chrono::seconds(3);  // from TCP connect to Welcome
  Duration ack_timeout = std::chrono::seconds(60);       // upper bound of the adaptive stall limit
  Duration retry_interval = std::chrono::milliseconds(250);
  Duration trim_interval = std::chrono::seconds(1);  // on the shipper's own trim thread
  Duration retention = Duration::zero();             // keep acknowledged log entries this long
  Duration tombstone_retention = std::chrono::hours(24 * 7);
  Security security;
};

class Shipper {
 public:
  Shipper(zmq::context_t& context, ShipperOptions options);
  ~Shipper();

  // Runs until stop is requested. Never throws; every failure ends a session and is retried.
  void run(std::stop_token stop);

  LinkStats stats() const;

  // While paused (this node is standalone) no session is opened and a running one ends; from any
  // thread.
  void set_paused(bool paused) { paused_ = paused; }

 private:
  class Session;
  class Trimmer;
  zmq::context_t& context_;
  ShipperOptions options_;
  mutable std::mutex mu_;
  LinkStats stats_;
  std::atomic<bool> paused_{false};
};

}  // namespace mpf::replicator
