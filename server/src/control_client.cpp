#include <atomic>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <mpf/core/text.hpp>
#include <mpf/server/control_client.hpp>

namespace mpf::server {

namespace {

std::atomic<int64_t> g_timeout_ms{
    std::chrono::duration_cast<std::chrono::milliseconds>(kDefaultControlTimeout).count()};

}  // namespace

void set_control_timeout(Duration timeout) {
  g_timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
}

Duration control_timeout() { return std::chrono::milliseconds(g_timeout_ms.load()); }

Result<nlohmann::json> control_request(const std::string& socket_path,
                                       const nlohmann::json& request) {
  namespace local = boost::asio::local;
  boost::asio::io_context io;
  local::stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(local::stream_protocol::endpoint(socket_path), ec);
  if (ec == boost::asio::error::access_denied) {
    return failed_precondition("permission denied on control socket \"" + socket_path +
                               "\"\nhint: run as root or as a member of control.group");
  }
  if (ec) {
    return unavailable("could not reach mpfailoverd on control socket \"" + socket_path +
                       "\": " + ec.message() +
                       "\nhint: is the daemon running? (systemctl status mpfailoverd; "
                       "control.socket in the config names the socket)");
  }
  // Write the request and read one line back, all within the timeout: a daemon that accepts
  // and never answers (wedged) must not hang the operator's shell.
  const std::string line = request.dump() + "\n";
  boost::asio::streambuf buf(1 << 20);
  size_t n = 0;
  bool done = false;
  boost::asio::async_write(
      s, boost::asio::buffer(line), [&](boost::system::error_code wec, size_t) {
        if (wec) {
          ec = wec;
          done = true;
          return;
        }
        boost::asio::async_read_until(s, buf, '\n', [&](boost::system::error_code rec, size_t got) {
          ec = rec;
          n = got;
          done = true;
        });
      });
  const Duration timeout = control_timeout();
  io.run_for(timeout);
  if (!done) {
    return unavailable("mpfailoverd on \"" + socket_path + "\" did not answer within " +
                       duration_text(timeout) +
                       " (the daemon accepted the request but is not answering)\nhint: "
                       "systemctl status mpfailoverd; journalctl -u mpfailoverd; a slow host may "
                       "need a longer --timeout");
  }
  if (ec || n == 0) {
    return unavailable("mpfailoverd on \"" + socket_path +
                       "\" did not answer: " + (ec ? ec.message() : std::string("empty reply")));
  }
  std::string reply(boost::asio::buffers_begin(buf.data()),
                    boost::asio::buffers_begin(buf.data()) + static_cast<long>(n));
  try {
    auto j = nlohmann::json::parse(reply);
    if (!j.value("ok", false) && j.value("error", "").rfind("permission denied", 0) == 0) {
      return failed_precondition(j["error"].get<std::string>() +
                                 "\nhint: run as root or as a member of control.group");
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("mpfailoverd sent a malformed reply: ") + e.what());
  }
}

}  // namespace mpf::server
