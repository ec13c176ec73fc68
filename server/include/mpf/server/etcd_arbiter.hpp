// EtcdArbiter: the daemon's edge to the etcd arbiter (heartbeat.arbiter = etcd, docs/fencing.md).
//
// Why etcd's HTTP/JSON gateway through Boost.Beast rather than a gRPC client: Debian 12 packages
// etcd (etcd-server, etcd-client 3.4.23) and gRPC's C++ runtime, but not etcd's .proto files
// compiled for C++, nor a C++ etcd client (etcd-cpp-apiv3 is not in Debian); generating the
// stubs at build time would pull protoc, grpc_cpp_plugin and etcd's proto tree (with gogoproto
// and google/api imports) into the build for four calls. The gateway (/v3/kv/range, /v3/kv/txn,
// /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke) is part of every etcd 3.x server, and
// Boost.Beast is already in the dependency set (Boost), so the arbiter costs no new library
// beyond OpenSSL for https endpoints.
//
// What it does, on a thread of its own (every call blocks for at most heartbeat.timeout per
// endpoint, so the driver's io thread never waits on etcd):
// - acquire: make sure this node has a live lease (grant one of the configured TTL), then a
//   compare-and-swap txn on the leadership key: put it (value: epoch and node, with the lease)
//   if the key is absent, or if it holds exactly the value the caller may replace (the peer
//   that handed over, this node's own key from before a restart); with `force`, whatever it
//   holds. The answer says whether this node now holds the key, or who does.
// - renew: keepalive of the lease, then a read of the key: "holds" only if the lease is alive
//   and the key still carries this node's value and lease. The confirmation's time is the
//   keepalive's SEND time: etcd extends the lease from when it receives it, which is later.
// - release: delete the key if it still holds this node's value, and revoke the lease (a
//   switchover hands over without waiting for the lease to expire).
//
// Thread safety: the public methods may be called from any thread; callbacks run on the
// arbiter's thread (the driver posts them to its io_context).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/core/position.hpp>
#include <mpf/core/status.hpp>
#include <mpf/heartbeat/arbiter_value.hpp>

namespace mpf::server {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // http://host:port or https://host:port
  std::string key;                     // the leadership key (leader_key())
  std::string node;                    // this node
  std::string ca_file, cert_file, key_file;
  std::chrono::seconds lease_ttl{3};
  Duration request_timeout = std::chrono::seconds(1);
};

struct EtcdAnswer {
  bool holds = false;
  TimePoint sent_at{};  // steady time the confirming request (grant or keepalive) was sent
  std::optional<heartbeat::LeaderValue> holder;  // who holds the key, when known
  std::string detail;                            // an error, or what happened
};

// One HTTP/JSON round trip to etcd (also used by the arbiter test to inspect the key).
// `path` like "/v3/kv/range"; returns the response body, or an error naming the endpoint.
Result<std::string> etcd_post(const EtcdOptions& options, const std::string& endpoint,
                              const std::string& path, const std::string& body);

class EtcdArbiter {
 public:
  explicit EtcdArbiter(EtcdOptions options);
  ~EtcdArbiter();

  void acquire(Epoch epoch, std::optional<heartbeat::LeaderValue> replace, bool force,
               std::function<void(EtcdAnswer)> done);
  void renew(Epoch epoch, std::function<void(EtcdAnswer)> done);
  void release(Epoch epoch);

  // Requests still queued or running (status shows it; renewals are skipped while one is).
  bool busy() const;
  const EtcdOptions& options() const { return options_; }

 private:
  void run();
  void post(std::function<void()> job);
  Result<std::string> call(const std::string& path, const std::string& body);
  Status ensure_lease(TimePoint& sent_at);
  EtcdAnswer do_acquire(Epoch epoch, const std::optional<heartbeat::LeaderValue>& replace,
                        bool force);
  EtcdAnswer do_renew(Epoch epoch);
  void do_release(Epoch epoch);
  Result<std::optional<std::pair<heartbeat::LeaderValue, int64_t>>> read_key();

  EtcdOptions options_;
  SteadyClock clock_;
  // Arbiter thread only.
  int64_t lease_ = 0;    // 0: none
  size_t endpoint_ = 0;  // the endpoint that answered last: tried first
  // Shared.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool running_job_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace mpf::server
