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

struct Config {
  std::string path;  // the file it was read from

  struct Node {
    std::string name;
    std::string database;  // libpq conninfo
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
  } replication;

  struct Heartbeat {
    Duration interval = std::chrono::seconds(60);
  } heartbeat;

  struct Control {
    std::string socket = "/run/mpfailover/mpfailover.sock";
  } control;

  // The endpoints the transport uses.
  std::string listen_endpoint() const;
  std::string peer_endpoint() const;

  struct Log {
    std::string level = "info";
  } log;

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

// Reads and validates the file at `path`.
Result<Config> load_config(const std::string& path);

// Same, from text (tests; `path` is used only in messages).
Result<Config> parse_config(const std::string& text, const std::string& path);

}  // namespace mpf::server
