// One INI file per node (see deploy/mpfailover.conf.example for every key).
//
// Loading validates everything that can be checked without touching the network or the
// database: unknown keys, missing required keys, malformed values. A failure names the file,
// the key and, where known, the line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mpf/core/clock.hpp>
#include <mpf/core/status.hpp>

namespace mpf::server {

inline constexpr const char* kDefaultConfigPath = "/etc/mpfailover/mpfailover.conf";

// This release ("0.1.0", the package's version).
const char* software_version();
// What --version prints: the release and, when built from a git checkout, `git describe`
// ("0.1.0 (git 85a5013-dirty)").
std::string build_version();

struct Config {
  std::string path;  // the file it was read from

  struct Node {
    std::string name;
    std::string database;                  // libpq conninfo
    std::string initial_role = "standby";  // a brand-new node's first role: active | standby
    std::string app_role;  // the application's PostgreSQL login, read-only on a standby
  } node;

  struct Peer {
    std::string name;
    std::string address;  // IP or hostname
    uint16_t port = 0;    // the peer's replication port; 0 = same as replication.port
  } peer;

  struct Replication {
    std::string listen = "0.0.0.0";
    uint16_t port = 2008;
    std::vector<std::string> tables = {"users", "groups", "group_members", "meetings",
                                       "meeting_participants"};
    Duration retention = Duration::zero();  // keep acknowledged log entries this long
    Duration tombstone_retention = std::chrono::hours(24 * 7);
    // The highest replication protocol version this node offers and accepts (a pin for rolling
    // upgrades); 0 (the key is absent): this release's highest. Read it through protocol_max().
    uint32_t max_protocol_version = 0;
  } replication;

  struct Heartbeat {
    Duration interval = std::chrono::seconds(60);
    Duration timeout = std::chrono::seconds(10);  // default: the smaller of 10s and interval
    Duration ping_timeout = std::chrono::seconds(1);
    Duration max_skew = std::chrono::milliseconds(1000);
    std::vector<std::string> witness;  // addresses pinged to tell "peer gone" from "I am cut off"
    std::string arbiter = "none";      // none | etcd (docs/fencing.md)
  } heartbeat;

  // heartbeat.arbiter = etcd: the cluster holding the pair's leadership key.
  struct Arbiter {
    std::vector<std::string> endpoints;   // http(s)://host:port of etcd's client URLs
    std::string prefix = "/mpfailover/";  // the key is <prefix><pair>/leader
    std::string ca_file, cert_file, key_file;
  } arbiter;

  struct Failover {
    bool automatic = false;
    int missed_heartbeats = 3;
    Duration switchover_timeout = std::chrono::seconds(30);
    // Self-fencing (docs/fencing.md): zero = derived from the heartbeat timing (fence_timing()).
    // Applies with automatic failover (ICMP witness) or with the arbiter.
    Duration fence_after = Duration::zero();
  } failover;

  struct Shared {
    std::string address;  // CIDR, e.g. 198.18.0.10/24; empty: no shared address
    std::string interface;
    std::string hostname;
  } shared;

  struct Hooks {
    std::string on_promote = "/usr/lib/mpfailover/hooks/on_promote";
    std::string on_demote = "/usr/lib/mpfailover/hooks/on_demote";
    // Run on every role change, whether or not shared.address is set (paging, DNS, load
    // balancers); empty (the default): none.
    std::string on_role_change;
    Duration timeout = std::chrono::seconds(30);
  } hooks;

  struct Control {
    std::string socket = "/run/mpfailover/mpfailover.sock";
    std::string group;  // besides root, members of this group may use the control socket
  } control;

  // The endpoints the transport uses.
  std::string listen_endpoint() const;
  // replication.max_protocol_version, or this release's highest version when it is not set.
  uint32_t protocol_max() const;
  bool protocol_pinned() const;
  std::string peer_endpoint() const;

  struct Log {
    std::string level = "info";
  } log;

  struct Metrics {
    // "ADDRESS:PORT" (IPv6 as "[::1]:9108") where mpfailoverd serves Prometheus metrics over
    // HTTP; empty (the default): no metrics endpoint. address and port are listen, parsed.
    std::string listen;
    std::string address;
    uint16_t port = 0;
  } metrics;

  struct Conflicts {
    // Rows of mpfailover.conflict older than this are deleted by the daemon (hourly); zero:
    // kept forever.
    Duration retention = std::chrono::hours(24 * 90);
  } conflicts;

  struct Queue {
    uint64_t warn_bytes = 1ull << 30;  // backlog size that raises a warning (nothing is dropped)
  } queue;

  struct Security {
    std::string mode = "curve";  // curve | plain
    std::string secret_key_file;
    std::string public_key_file;
    std::string peer_public_key_file;
  } security;
};

// What a reload (SIGHUP) of `next` over the running `now` does, by key name: the keys that take
// effect at once (log.level, hooks.*, heartbeat.witness, failover.automatic, metrics.listen)
// and the changed keys that need a restart (everything else).
struct ReloadPlan {
  std::vector<std::string> apply;
  std::vector<std::string> restart;
};
ReloadPlan plan_reload(const Config& now, const Config& next);

// Reads and validates the file at `path`.
Result<Config> load_config(const std::string& path);

// Same, from text (tests; `path` is used only in messages).
Result<Config> parse_config(const std::string& text, const std::string& path);

}  // namespace mpf::server
