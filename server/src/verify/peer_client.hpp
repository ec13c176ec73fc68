// The CLI's end of the verify channel: a DEALER socket to the peer's port 2008, a CURVE client
// with this node's keys (as the shipper is), asking the peer's daemon one request at a time and
// polling while it answers Pending.
//
// Why the CLI connects itself rather than through its local daemon: the daemon's threads stay
// out of a long interactive job, the CLI owns its progress output and its own database
// connection for this node's side, and the peer sees the same authenticated key as for
// replication. It needs to read the secret key file (root, like the daemon).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <mpf/core/status.hpp>
#include <mpf/server/config.hpp>
#include <mpf/server/verify/verify_codec.hpp>

namespace mpf::server::verify {

class PeerClient {
 public:
  explicit PeerClient(const Config& config);
  ~PeerClient();

  // Reads the keys and connects (ZeroMQ connects in the background; errors show in ask()).
  Status open();

  static constexpr std::chrono::seconds kConnectTimeout{5};

  // Sends `request` and returns the peer's answer body: an ErrorAnswer becomes a failed Status;
  // no connection within kConnectTimeout, or no answer within `timeout` after the last sign of
  // progress (an answer may take seconds to cross a 128 kbit/s link): kUnavailable with a hint.
  Result<VerifyBody> ask(VerifyBody request,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t round_trips() const { return round_trips_; }

 private:
  struct Impl;
  std::string where() const;
  const Config& config_;
  std::unique_ptr<Impl> impl_;
  uint64_t next_id_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
  uint64_t round_trips_ = 0;
};

}  // namespace mpf::server::verify
