#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <zmq.hpp>

#include <mpf/replicator/security.hpp>

namespace mpf::replicator {
namespace {

constexpr size_t kZ85KeyLength = 40;

bool is_z85_key(const std::string& k) {
  if (k.size() != kZ85KeyLength) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, k.c_str()) != nullptr;
}

}  // namespace

Result<KeyPair> generate_key_pair() {
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return internal_error(std::string("could not generate a CURVE key pair: ") +
                          zmq_strerror(zmq_errno()) +
                          "\nhint: libzmq must be built with CURVE support (Debian's is)");
  }
  return KeyPair{pub, sec};
}

Status write_key_pair(const KeyPair& keys, const std::string& secret_path,
                      const std::string& public_path) {
  for (const auto& p : {secret_path, public_path}) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) {
      return failed_precondition("key file \"" + p + "\" already exists; not overwriting it");
    }
  }
  auto write = [](const std::string& path, const std::string& text, mode_t mode) -> Status {
    const mode_t old = ::umask(0077);
    std::ofstream out(path);
    ::umask(old);
    if (!out)
      return unavailable("could not create key file \"" + path + "\": " + std::strerror(errno));
    out << text << "\n";
    out.close();
    if (!out || ::chmod(path.c_str(), mode) != 0) {
      return unavailable("could not write key file \"" + path + "\": " + std::strerror(errno));
    }
    return Status::ok();
  };
  if (auto s = write(secret_path, keys.secret_key, 0600); !s) return s;
  return write(public_path, keys.public_key, 0644);
}

Result<std::string> read_key_file(const std::string& path, bool secret) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return not_found("could not open key file \"" + path + "\": " + std::strerror(errno) +
                     "\nhint: create keys with mpfailover keygen");
  }
  if (secret && (st.st_mode & 0077) != 0) {
    return failed_precondition("secret key file \"" + path +
                               "\" is readable by group or others\nhint: chmod 600 " + path);
  }
  std::ifstream in(path);
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (!is_z85_key(key)) {
    return invalid_argument("key file \"" + path +
                            "\" does not hold a CURVE key (40 Z85 characters)");
  }
  return key;
}

void configure_server(zmq::socket_t& socket, const Security& security) {
  if (!security.curve) return;
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, security.secret_key);
  socket.set(zmq::sockopt::zap_domain, "mpfailover");
}

void configure_client(zmq::socket_t& socket, const Security& security) {
  if (!security.curve) return;
  socket.set(zmq::sockopt::curve_serverkey, security.peer_public_key);
  socket.set(zmq::sockopt::curve_publickey, security.public_key);
  socket.set(zmq::sockopt::curve_secretkey, security.secret_key);
}

ZapHandler::ZapHandler(zmq::context_t& context, std::string peer_name, std::string peer_public_key)
    : peer_name_(std::move(peer_name)), peer_public_key_(std::move(peer_public_key)) {
  socket_ = std::make_unique<zmq::socket_t>(context, zmq::socket_type::rep);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->bind("inproc://zeromq.zap.01");
}

ZapHandler::~ZapHandler() = default;

zmq::socket_t& ZapHandler::socket() { return *socket_; }

// RFC 27: version, request id, domain, address, identity, mechanism, credentials...
void ZapHandler::handle() {
  std::vector<zmq::message_t> parts;
  for (int i = 0; i < 16; ++i) {
    zmq::message_t part;
    if (!socket_->recv(part, zmq::recv_flags::dontwait)) break;
    const bool more = part.more();
    parts.push_back(std::move(part));
    if (!more) break;
  }
  if (parts.size() < 6) return;  // not a ZAP request; REP needs no reply to nothing
  auto text = [&](size_t i) { return parts[i].to_string(); };
  const std::string version = text(0);
  const std::string request_id = text(1);
  const std::string address = text(3);
  const std::string mechanism = text(5);
  std::string status = "400";
  std::string reason = "mechanism " + mechanism + " not allowed";
  if (mechanism == "CURVE" && parts.size() >= 7 && parts[6].size() == 32) {
    char z85[41] = {};
    zmq_z85_encode(z85, static_cast<const uint8_t*>(parts[6].data()), 32);
    if (peer_public_key_ == z85) {
      status = "200";
      reason = "OK";
    } else {
      reason = "unknown public key " + std::string(z85, 8) + "...";
    }
  }
  if (status != "200") {
    ++refused_;
    spdlog::warn("PeerRefused address={} reason=\"{}\" expected_peer={}", address, reason,
                 peer_name_);
  }
  socket_->send(zmq::buffer(version), zmq::send_flags::sndmore);
  socket_->send(zmq::buffer(request_id), zmq::send_flags::sndmore);
  socket_->send(zmq::buffer(status), zmq::send_flags::sndmore);
  socket_->send(zmq::buffer(reason), zmq::send_flags::sndmore);
  socket_->send(zmq::str_buffer(""), zmq::send_flags::sndmore);
  socket_->send(zmq::str_buffer(""), zmq::send_flags::none);
}

}  // namespace mpf::replicator
