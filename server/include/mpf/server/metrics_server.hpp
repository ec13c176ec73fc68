// MetricsServer: Prometheus metrics over HTTP (Boost.Beast) on the daemon's io_context.
// GET /metrics answers the text exposition format 0.0.4; GET /active, /standby and /health answer
// 200 or 503 (set_health); GET / the status page and GET /status.json its data (set_page,
// status_page.hpp); any other path is 404, any other method 405. One request per connection
// (Connection: close).
//
// Bounded: a request's header may have at most kMaxHeaderBytes and its body kMaxBodyBytes; a
// client gets kTimeout to send its request and read the answer, then it is disconnected; at most
// kMaxConnections are served at once, further ones are closed at once. A malformed request gets
// 400 and is closed.
//
// Threads: everything runs on the io_context's thread, render included. The server may be
// destroyed while connections are open (their handlers hold what they need).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>

#include <mpf/core/status.hpp>
#include <mpf/server/metrics_text.hpp>

namespace mpf::replicator {
class Shipper;
class Receiver;
}  // namespace mpf::replicator

namespace mpf::server {

class NodeDriver;
class MetricsSampler;

class MetricsServer {
 public:
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;
  static constexpr size_t kMaxBodyBytes = 1024;
  static constexpr std::chrono::seconds kTimeout{10};
  static constexpr int kMaxConnections = 16;

  using Render = std::function<std::string()>;  // the body of a GET /metrics answer
  // The health endpoints (pair_health.hpp): status code and body for a path, nullopt for a path
  // that is not one (404).
  using Health = std::function<std::optional<std::pair<int, std::string>>(std::string_view path)>;

  // The body of a GET /status.json answer (the status page's data).
  using Page = std::function<std::string()>;

  MetricsServer(boost::asio::io_context& io, std::string address, uint16_t port, Render render);
  ~MetricsServer();

  // Binds and starts accepting; an error names the address.
  Status start();
  void set_health(Health health);  // before start()
  void set_page(Page page);        // before start(); without it, / and /status.json are 404
  uint16_t port() const;           // the bound port

  struct Shared;  // the acceptor and what connections share; outlives the server if need be

 private:
  void accept();

  boost::asio::io_context& io_;
  std::string address_;
  uint16_t port_;
  std::shared_ptr<Shared> shared_;
};

// The values the daemon reports: the node driver's status (role, epoch, peer state, heartbeat
// age, lag), the links' counters and the sampler's database numbers. io thread (status_json).
MetricsValues gather_metrics(NodeDriver& driver, const replicator::Shipper& shipper,
                             const replicator::Receiver& receiver, const MetricsSampler& sampler);

}  // namespace mpf::server
