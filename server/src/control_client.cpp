#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <mpf/server/control_client.hpp>

namespace mpf::server {

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
  const std::string line = request.dump() + "\n";
  boost::asio::write(s, boost::asio::buffer(line), ec);
  boost::asio::streambuf buf(1 << 20);
  const size_t n = ec ? 0 : boost::asio::read_until(s, buf, '\n', ec);
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
