// ControlServer: the daemon's end of the CLI's control socket (control.socket), a Unix stream
// socket that never touches the network. One JSON request line in, one JSON reply line out, then
// the connection closes. Access: the socket file is mode 0660, owned by root and control.group
// (0600 without a group), and each connection's peer credentials are checked again (SO_PEERCRED):
// root, the daemon's own user, or a member of control.group.
//
// Threads: runs on the io_context's thread; the handler is called there.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <nlohmann/json.hpp>

#include <mpf/core/status.hpp>

namespace mpf::server {

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;

  ControlServer(boost::asio::io_context& io, std::string path, std::string group, Handler handler);
  ~ControlServer();  // removes the socket file

  // Creates the directory if needed, replaces a stale socket file, binds and listens. Refuses
  // when another daemon answers on the path.
  Status start();

 private:
  void accept();
  void serve(std::shared_ptr<boost::asio::local::stream_protocol::socket> s);
  bool allowed(int fd, std::string& who) const;

  boost::asio::io_context& io_;
  std::string path_;
  std::string group_;
  unsigned gid_ = 0;
  bool has_group_ = false;
  Handler handler_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
};

}  // namespace mpf::server
