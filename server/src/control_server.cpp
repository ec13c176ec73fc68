#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mpf/core/text.hpp>
#include <mpf/server/control_server.hpp>

namespace mpf::server {

namespace local = boost::asio::local;
using json = nlohmann::json;

ControlServer::ControlServer(boost::asio::io_context& io, std::string path, std::string group,
                             Handler handler)
    : io_(io), path_(std::move(path)), group_(std::move(group)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  if (acceptor_) {
    boost::system::error_code ec;
    acceptor_->close(ec);
    ::unlink(path_.c_str());
  }
}

Status ControlServer::start() {
  if (!group_.empty()) {
    group* g = getgrnam(group_.c_str());
    if (!g) return invalid_argument("control.group \"" + group_ + "\" does not exist");
    gid_ = g->gr_gid;
    has_group_ = true;
  }
  std::error_code fec;
  const auto dir = std::filesystem::path(path_).parent_path();
  std::filesystem::create_directories(dir, fec);
  if (fec) {
    return unavailable("could not create directory \"" + dir.string() +
                       "\" for control.socket: " + fec.message());
  }
  if (std::filesystem::exists(path_)) {
    // Another daemon answering there is an error; a file left by a crash is replaced.
    local::stream_protocol::socket probe(io_);
    boost::system::error_code ec;
    probe.connect(local::stream_protocol::endpoint(path_), ec);
    if (!ec) {
      return failed_precondition("another mpfailoverd answers on control.socket \"" + path_ + "\"");
    }
    ::unlink(path_.c_str());
  }
  try {
    const mode_t old = ::umask(0177);  // the socket exists 0600 before chmod widens it
    acceptor_ = std::make_unique<local::stream_protocol::acceptor>(
        io_, local::stream_protocol::endpoint(path_));
    ::umask(old);
  } catch (const boost::system::system_error& e) {
    return unavailable("could not listen on control.socket \"" + path_ + "\": " + e.what());
  }
  if (has_group_) {
    // The owner stays the daemon's user: under the unit that is "mpfailover", which may not
    // give a file to root, only to a group it belongs to.
    if (::chown(path_.c_str(), static_cast<uid_t>(-1), gid_) != 0 ||
        ::chmod(path_.c_str(), 0660) != 0) {
      return unavailable("could not give control.socket \"" + path_ + "\" to group \"" + group_ +
                         "\": " + std::strerror(errno));
    }
  }
  accept();
  return Status::ok();
}

bool ControlServer::allowed(int fd, std::string& who) const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  // Who asked, for mpfailover.history: from the kernel, so a client cannot claim another name.
  const passwd* pw = ::getpwuid(cred.uid);
  who = (pw ? std::string(pw->pw_name) : std::string("uid")) + " (uid " + std::to_string(cred.uid) +
        ")";
  if (cred.uid == 0 || cred.uid == ::geteuid()) return true;
  if (!has_group_) return false;
  if (cred.gid == gid_) return true;
  // Supplementary groups of the peer: read from /proc, as the kernel does not pass them.
  std::ifstream status("/proc/" + std::to_string(cred.pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream in(line.substr(7));
    unsigned g = 0;
    while (in >> g) {
      if (g == gid_) return true;
    }
  }
  return false;
}

void ControlServer::accept() {
  auto s = std::make_shared<local::stream_protocol::socket>(io_);
  acceptor_->async_accept(*s, [this, s](const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (!ec) serve(s);
    accept();
  });
}

void ControlServer::serve(std::shared_ptr<local::stream_protocol::socket> s) {
  std::string who;
  if (!allowed(s->native_handle(), who)) {
    spdlog::warn("ControlRefused who=\"{}\" reason=\"not root or in control.group\"", who);
    auto msg = std::make_shared<std::string>(
        json{{"ok", false},
             {"error", "permission denied: the control socket is for root" +
                           (group_.empty() ? std::string() : " and group \"" + group_ + "\"")}}
            .dump() +
        "\n");
    boost::asio::async_write(*s, boost::asio::buffer(*msg),
                             [s, msg](const boost::system::error_code&, size_t) {});
    return;
  }
  auto buf = std::make_shared<boost::asio::streambuf>(64 * 1024);
  boost::asio::async_read_until(
      *s, *buf, '\n', [this, s, buf, who](const boost::system::error_code& ec, size_t n) {
        if (ec) return;
        std::string line(boost::asio::buffers_begin(buf->data()),
                         boost::asio::buffers_begin(buf->data()) + static_cast<long>(n));
        json reply;
        try {
          json request = json::parse(line);
          if (request.is_object()) request["who"] = who;  // the client's word is not taken
          reply = handler_(request);
        } catch (const json::exception& e) {
          reply = json{{"ok", false}, {"error", std::string("malformed request: ") + e.what()}};
        } catch (const std::exception& e) {
          reply = json{{"ok", false}, {"error", e.what()}};
        }
        auto out = std::make_shared<std::string>(reply.dump() + "\n");
        boost::asio::async_write(*s, boost::asio::buffer(*out),
                                 [s, out](const boost::system::error_code&, size_t) {});
      });
}

}  // namespace mpf::server
