// `mpfailover resync` inside the standby's daemon: copies one consistent snapshot of the active's
// replicated tables (and tombstones) over port 2008, replacing this node's content in one
// transaction that also stores the active's position the snapshot holds, then watches the
// catch-up from the log (docs/protocol.md "Snapshot copy").
//
// Why in the daemon and not in the CLI: the daemon's receiver must not apply while the copy
// runs, and must start a fresh session (reading the stored position) afterwards. Holding it for
// a CLI process would leave it held, or released mid-copy, if that process died or stalled; in
// the daemon the hold and the copy's transaction live and die together. The CLI only starts the
// job and follows its progress through the control socket (as Patroni's reinit works).
//
// Thread safety: handle() on the io thread; the job runs on a thread of its own.
#pragma once

#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include <nlohmann/json.hpp>

#include <mpf/server/config.hpp>

namespace mpf::replicator {
class Receiver;
class Shipper;
}  // namespace mpf::replicator

namespace mpf::server {

class ResyncRunner {
 public:
  ResyncRunner(const Config& config, replicator::Receiver& receiver, replicator::Shipper& shipper);
  ~ResyncRunner();  // stops a running job: its transaction rolls back, the receiver is released
  ResyncRunner(const ResyncRunner&) = delete;
  ResyncRunner& operator=(const ResyncRunner&) = delete;

  // True for the control requests it answers ("resync", "resync_status").
  static bool handles(const nlohmann::json& request);

  // "resync" {force, catch_up_timeout_s}: checks the roles in `status` (the node driver's
  // status_json()) and starts the job. "resync_status": the job's progress.
  nlohmann::json handle(const nlohmann::json& request, const nlohmann::json& status);

 private:
  struct Job;
  void run(std::stop_token stop, Job& job);

  const Config& config_;
  replicator::Receiver& receiver_;
  replicator::Shipper& shipper_;
  std::mutex mu_;
  nlohmann::json progress_;  // guarded by mu_
  std::unique_ptr<Job> job_;
  std::jthread thread_;
};

}  // namespace mpf::server
