// NodeDriver: the thin edge around the heartbeat core. It owns the heartbeat socket (a ZeroMQ
// DEALER to the peer's port 2008), the ICMP pingers of the peer and the witnesses, the node's
// database connection for role and write fencing, and the hook runner; it feeds what they report
// to the PeerMonitor and the RoleMachine (heartbeat/) and carries out what those decide.
//
// Threads: everything runs on the io_context's thread, except on_port_frame(), which the
// receiver's port thread calls for every frame on port 2008: it answers heartbeats at once from
// a copy of this node's status and posts the rest to the io_context.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <mpf/core/clock.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>
#include <mpf/heartbeat/node_facts.hpp>
#include <mpf/heartbeat/peer_monitor.hpp>
#include <mpf/heartbeat/role_machine.hpp>
#include <mpf/replicator/security.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/etcd_arbiter.hpp>
#include <mpf/server/hook_runner.hpp>
#include <mpf/server/node_database.hpp>

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace mpf::heartbeat {
class IcmpPinger;
}

namespace mpf::replicator {
class Shipper;
class Receiver;
}  // namespace mpf::replicator

namespace mpf::server {

class MetricsSampler;

class NodeDriver {
 public:
  NodeDriver(boost::asio::io_context& io, zmq::context_t& zmq, const Config& config,
             const replicator::Security& security, replicator::Shipper& shipper,
             replicator::Receiver& receiver);
  ~NodeDriver();

  // Reads the persisted role, opens the heartbeat socket and the pingers, and starts ticking.
  Status start();

  // For Receiver's side channel (any thread): the answer to a heartbeat frame, or nullopt when
  // the frame is not a heartbeat.
  std::optional<std::string> on_port_frame(std::string_view frame);

  // Control socket requests (io thread). Every reply has "ok" and, on failure, "error".
  nlohmann::json handle(const nlohmann::json& request);
  nlohmann::json status_json();

  // The database sampler (backlog numbers for status, list and the facts sent to the peer);
  // set before start(), outlives the driver. Without one the backlog is unknown.
  void set_sampler(const MetricsSampler* sampler) { sampler_ = sampler; }

  // Counters since start, for the metrics (io thread).
  uint64_t role_changes() const { return role_changes_; }
  uint64_t hook_failures() const { return hook_failures_; }

  // Deletes conflicts older than conflicts.retention (the daemon's report timer calls it; it
  // does the work at most every 10 minutes).
  void prune_conflicts();
  // SIGHUP (io thread). The caller has updated the config this driver reads for the hook and
  // failover keys; carry hooks.timeout and failover.automatic into the hook runner and the role
  // machine.
  void config_reloaded();
  // SIGHUP changed heartbeat.witness (io thread): opens the new pingers first, so on error the
  // old witnesses stay; swapped in once no witness ping is in flight.
  Status set_witnesses(const std::vector<std::string>& addresses);

  // Reads this node's catalog version again (every heartbeat.interval, from the daemon's report
  // timer): init-db of a newer release run while this daemon runs leaves it older than its
  // catalog, which status and the log then say (CatalogMigratedUnderDaemon), until a restart.
  void recheck_catalog();

 private:
  void tick();
  void schedule_tick();
  void poll_heartbeat_socket();
  void arm_heartbeat_wakeup();
  void send_beat(uint64_t seq, heartbeat::Command command, Epoch epoch, Position position);
  void on_peer_message(const heartbeat::HeartbeatMessage& m, int64_t received_wall_us);
  void apply(const heartbeat::Decision& d, const char* trigger);
  void apply_monitor(const std::vector<heartbeat::MonitorAction>& actions);
  void run_hook(const char* name, const std::string& program);
  void start_hook(const char* name, const std::string& program,
                  std::map<std::string, std::string> env);
  void set_writes(bool writable);
  void publish_status();
  void watch_drain();
  heartbeat::NodeStatus my_status();
  bool definitions_match() const;
  std::optional<std::string> shared_address_holder();
  nlohmann::json command_failover(bool force);
  // The etcd arbiter (heartbeat.arbiter = etcd): acquire on the role machine's word, renew every
  // interval while active, release when no longer active.
  void arbiter_acquire(const heartbeat::RoleAction& a);
  void arbiter_tick();
  void on_arbiter_answer(const EtcdAnswer& answer, bool acquire, Epoch epoch);
  nlohmann::json arbiter_status() const;
  heartbeat::NodeFacts my_facts();
  // A row of mpfailover.history for this node (positions and epoch filled in here).
  void record(HistoryEvent e);
  void run_role_change_hook(heartbeat::Role from, heartbeat::Role to, const std::string& reason);

  boost::asio::io_context& io_;
  zmq::context_t& zmq_;
  const Config& config_;
  replicator::Security security_;
  replicator::Shipper& shipper_;
  replicator::Receiver& receiver_;
  NodeDatabase db_;
  HookRunner hooks_;
  SteadyClock clock_;
  boost::asio::steady_timer timer_;
  std::unique_ptr<zmq::socket_t> beat_socket_;
  // ZMQ_FD of beat_socket_, so an answer is read the moment it arrives (timing feeds the skew).
  std::unique_ptr<boost::asio::posix::stream_descriptor> beat_wakeup_;
  std::unique_ptr<heartbeat::IcmpPinger> peer_pinger_;
  std::vector<std::unique_ptr<heartbeat::IcmpPinger>> witness_pingers_;
  std::unique_ptr<heartbeat::PeerMonitor> monitor_;
  std::unique_ptr<heartbeat::RoleMachine> role_;
  std::unique_ptr<EtcdArbiter> arbiter_;
  std::optional<TimePoint> arbiter_renew_at_;  // the last renewal asked
  std::optional<Epoch> arbiter_held_;          // the epoch this node took the key at
  bool arbiter_in_flight_ = false;
  std::string arbiter_detail_;  // the arbiter's last word (status)
  std::optional<TimePoint> arbiter_confirmed_at_;

  int32_t catalog_version_ = 0;
  uint64_t definitions_digest_ = 0;
  std::optional<heartbeat::NodeStatus> peer_status_;  // the peer's latest word
  std::optional<TimePoint> peer_status_at_;
  std::optional<TimePoint> drain_watch_since_;
  std::string writes_ = "unknown";  // open | closed | unfenced | unknown
  std::string last_error_;
  nlohmann::json last_hook_;
  const MetricsSampler* sampler_ = nullptr;
  std::optional<heartbeat::NodeFacts> peer_facts_;  // from the peer's latest Beat
  std::optional<TimePoint> peer_facts_at_;
  std::string command_who_;  // the operator of the control request being handled
  uint64_t role_changes_ = 0;
  uint64_t hook_failures_ = 0;
  bool history_unavailable_logged_ = false;
  std::optional<TimePoint> conflicts_pruned_at_;
  // New witnesses from a reload, waiting for the pings in flight to the old ones.
  std::optional<std::vector<std::unique_ptr<heartbeat::IcmpPinger>>> staged_witness_pingers_;
  void swap_staged_witnesses();
  int witness_replies_pending_ = 0;
  bool witness_any_reply_ = false;

  // Shared with the port thread.
  std::mutex mu_;
  heartbeat::NodeStatus published_;  // what answers carry
  std::string command_note_;         // the outcome of the peer's last command, for its answer
  // The latest heartbeat of a protocol this node does not speak (a peer of another release):
  // its protocol, when, the message, and when it was last logged.
  uint8_t foreign_heartbeat_protocol_ = 0;
  std::optional<TimePoint> foreign_heartbeat_at_;
  std::string foreign_heartbeat_error_;
  std::optional<TimePoint> foreign_heartbeat_logged_at_;

  // Answers a heartbeat of another protocol (port thread): see on_port_frame.
  std::string answer_foreign_heartbeat(std::string_view frame);
  // The peer's catalog as heartbeats report it, judged by the pair's catalog rule.
  void check_peer_catalog(int32_t peer_catalog_version);
  std::string catalog_error_;
  std::string catalog_moved_error_;  // recheck_catalog's finding
  int32_t catalog_checked_ = 0;      // the peer catalog version last judged (and logged)
};

}  // namespace mpf::server
