// CurveZMQ on port 2008: encryption and peer authentication (docs/design.md §6).
//
// Each node has a key pair (`mpfailover keygen`); its config names its own pair and the peer's
// public key. The receiver is the CURVE server; a ZAP handler admits exactly one client key,
// the peer's, and logs every refusal. The shipper is a CURVE client that only talks to a
// server holding the peer's secret key. `security.mode = plain` turns all of it off.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <mpf/core/status.hpp>

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace mpf::replicator {

struct Security {
  bool curve = true;
  std::string public_key;       // Z85, 40 characters
  std::string secret_key;       // Z85, 40 characters
  std::string peer_public_key;  // Z85, 40 characters
};

struct KeyPair {
  std::string public_key;
  std::string secret_key;
};

Result<KeyPair> generate_key_pair();

// Writes the secret key (mode 0600) and the public key (0644); refuses to overwrite.
Status write_key_pair(const KeyPair& keys, const std::string& secret_path,
                      const std::string& public_path);

// Reads a key file written by write_key_pair. A secret key file readable by others than its
// owner is refused, as ssh does.
Result<std::string> read_key_file(const std::string& path, bool secret);

// Socket set-up; call before bind/connect.
void configure_server(zmq::socket_t& socket, const Security& security);
void configure_client(zmq::socket_t& socket, const Security& security);

// ZAP handler (RFC 27) admitting only the peer's public key. Owns the REP socket bound to
// inproc://zeromq.zap.01 of `context`; the owner polls socket() and calls handle() when readable.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, std::string peer_name, std::string peer_public_key);
  ~ZapHandler();
  zmq::socket_t& socket();
  void handle();
  uint64_t refused() const { return refused_; }

 private:
  std::string peer_name_;
  std::string peer_public_key_;  // Z85
  std::unique_ptr<zmq::socket_t> socket_;
  uint64_t refused_ = 0;
};

}  // namespace mpf::replicator
