// NOTES: the metrics endpoint is for a scraper on a management network, not the internet, but
// it must never hurt the daemon it reports on: every connection has a deadline (a client that
// sends half a request and waits is cut off), request size is bounded before anything is
// buffered, the number of connections is capped, and a scrape only copies values already in
// memory (the database numbers come from MetricsSampler's thread). The status page and its
// status.json are held to the same rule (the sampler reads the history and conflicts too).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mpf/core/text.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/shipper.hpp>
#include <mpf/server/metrics_sampler.hpp>
#include <mpf/server/metrics_server.hpp>
#include <mpf/server/node_driver.hpp>
#include <mpf/server/status_page.hpp>

namespace mpf::server {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

struct MetricsServer::Shared {
  explicit Shared(boost::asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  boost::asio::steady_timer retry;
  Render render;
  MetricsServer::Health health;
  MetricsServer::Page page;
  int connections = 0;
};

namespace {

void accept_next(const std::shared_ptr<MetricsServer::Shared>& shared);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<MetricsServer::Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {}

  void start() {
    parser_.header_limit(MetricsServer::kMaxHeaderBytes);
    parser_.body_limit(MetricsServer::kMaxBodyBytes);
    stream_.expires_after(MetricsServer::kTimeout);
    http::async_read(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  ~Session();

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == boost::asio::error::operation_aborted || ec == boost::asio::error::eof) {
      return close();
    }
    if (ec) {
      spdlog::debug("MetricsRequestRefused reason=\"{}\"", one_line(ec.message()));
      return respond(http::status::bad_request, "malformed request: " + ec.message() + "\n",
                     "text/plain; charset=utf-8", 11);
    }
    const auto& req = parser_.get();
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (shared_->page && (target == "/" || target == "/status.json")) {
      return serve_page(req.method(), target == "/", req.version());
    }
    if (target != "/metrics") {
      std::optional<std::pair<int, std::string>> health;
      if (shared_->health) {
        try {
          health = shared_->health(target);
        } catch (const std::exception& e) {
          spdlog::warn("HealthRenderFailed reason=\"{}\"", one_line(e.what()));
          return respond(http::status::service_unavailable, "could not tell\n",
                         "text/plain; charset=utf-8", req.version());
        }
      }
      if (!health) {
        return respond(http::status::not_found,
                       shared_->page ? "not found: try /, /metrics, /active, /standby or /health\n"
                                     : "not found: try /metrics, /active, /standby or /health\n",
                       "text/plain; charset=utf-8", req.version());
      }
      if (req.method() != http::verb::get) {
        return respond(http::status::method_not_allowed, "only GET\n", "text/plain; charset=utf-8",
                       req.version());
      }
      return respond(static_cast<http::status>(health->first), std::move(health->second),
                     "application/json", req.version());
    }
    if (req.method() != http::verb::get) {
      return respond(http::status::method_not_allowed, "only GET\n", "text/plain; charset=utf-8",
                     req.version());
    }
    std::string text;
    try {
      text = shared_->render();
    } catch (const std::exception& e) {
      // Never out of the io thread's run(): that would stop the daemon.
      spdlog::warn("MetricsRenderFailed reason=\"{}\"", one_line(e.what()));
      return respond(http::status::internal_server_error, "could not gather the metrics\n",
                     "text/plain; charset=utf-8", req.version());
    }
    respond(http::status::ok, std::move(text), kMetricsContentType, req.version());
  }

  // The status page and its data: read-only, like everything here.
  void serve_page(http::verb method, bool html, unsigned version) {
    if (method != http::verb::get) {
      return respond(http::status::method_not_allowed, "only GET\n", "text/plain; charset=utf-8",
                     version);
    }
    if (html)
      return respond(http::status::ok, std::string(status_page_html()), kHtmlContentType, version);
    std::string body;
    try {
      body = shared_->page();
    } catch (const std::exception& e) {
      spdlog::warn("StatusPageRenderFailed reason=\"{}\"", one_line(e.what()));
      return respond(http::status::internal_server_error, "could not gather the status\n",
                     "text/plain; charset=utf-8", version);
    }
    respond(http::status::ok, std::move(body), "application/json", version);
  }

  void respond(http::status status, std::string body, const char* content_type, unsigned version) {
    auto res = std::make_shared<http::response<http::string_body>>(status, version);
    res->set(http::field::server, "mpfailoverd");
    res->set(http::field::content_type, content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    if (std::string_view(content_type) == kHtmlContentType) {
      // The page loads nothing but itself and status.json: the browser enforces it (and a test
      // in a real browser would see any violation as a console error).
      res->set("Content-Security-Policy",
               "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "connect-src 'self'; img-src data:; frame-ancestors 'none'");
    }
    if (status == http::status::method_not_allowed) res->set(http::field::allow, "GET");
    res->keep_alive(false);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(MetricsServer::kTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code, size_t) {
      self->close();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{MetricsServer::kMaxHeaderBytes + MetricsServer::kMaxBodyBytes};
  http::request_parser<http::string_body> parser_;
  std::shared_ptr<MetricsServer::Shared> shared_;
};

Session::~Session() { --shared_->connections; }

}  // namespace

MetricsServer::MetricsServer(boost::asio::io_context& io, std::string address, uint16_t port,
                             Render render)
    : io_(io), address_(std::move(address)), port_(port), shared_(std::make_shared<Shared>(io)) {
  shared_->render = std::move(render);
}

void MetricsServer::set_health(Health health) { shared_->health = std::move(health); }

void MetricsServer::set_page(Page page) { shared_->page = std::move(page); }

MetricsServer::~MetricsServer() {
  beast::error_code ignored;
  shared_->acceptor.close(ignored);
  shared_->retry.cancel();
}

Status MetricsServer::start() {
  const std::string where =
      "metrics.listen \"" +
      (address_.find(':') != std::string::npos ? "[" + address_ + "]" : address_) + ":" +
      std::to_string(port_) + "\"";
  beast::error_code ec;
  const auto ip = boost::asio::ip::make_address(address_, ec);
  if (ec) return invalid_argument("could not listen on " + where + ": " + ec.message());
  const tcp::endpoint endpoint(ip, port_);
  auto& acceptor = shared_->acceptor;
  if (!acceptor.open(endpoint.protocol(), ec) &&
      !acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec) &&
      !acceptor.bind(endpoint, ec) &&
      !acceptor.listen(boost::asio::socket_base::max_listen_connections, ec)) {
    port_ = acceptor.local_endpoint().port();
    spdlog::info("MetricsListening address={} port={}", address_, port_);
    accept();
    return Status::ok();
  }
  return unavailable("could not listen on " + where + ": " + ec.message());
}

uint16_t MetricsServer::port() const { return port_; }

void MetricsServer::accept() { accept_next(shared_); }

namespace {

void accept_next(const std::shared_ptr<MetricsServer::Shared>& shared) {
  shared->acceptor.async_accept([shared](beast::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !shared->acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors, say: not fatal, but do not spin on it.
      spdlog::debug("MetricsAcceptFailed reason=\"{}\"", one_line(ec.message()));
      shared->retry.expires_after(std::chrono::milliseconds(100));
      shared->retry.async_wait([shared](beast::error_code e) {
        if (!e) accept_next(shared);
      });
      return;
    }
    if (shared->connections >= MetricsServer::kMaxConnections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      ++shared->connections;
      std::make_shared<Session>(std::move(socket), shared)->start();
    }
    accept_next(shared);
  });
}

std::optional<double> optional_number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Prometheus's standard process metrics, from /proc (as the official client libraries read them).
std::optional<MetricsValues::Process> process_metrics() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string x; in >> x;) f.push_back(x);
  // f[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() < 22) return std::nullopt;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  MetricsValues::Process p;
  p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
  p.virtual_memory_bytes = std::stod(f[20]);
  p.resident_memory_bytes = std::stod(f[21]) * page;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0) {
      p.start_time_seconds = std::stod(line.substr(6)) + std::stod(f[19]) / ticks;
    }
  }
  std::error_code ec;
  double fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  p.open_fds = fds;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = static_cast<double>(lim.rlim_cur);
  return p;
}

}  // namespace

MetricsValues gather_metrics(NodeDriver& driver, const replicator::Shipper& shipper,
                             const replicator::Receiver& receiver, const MetricsSampler& sampler) {
  MetricsValues v;
  const auto status = driver.status_json();
  v.role = status.value("role", "");
  v.epoch = status.value("epoch", int64_t{0});
  v.peer_state = status.value("peer_state", "");
  v.last_heartbeat_age_s = optional_number(status, "last_heartbeat_age_s");
  v.lag_s = optional_number(status, "lag_s");
  v.fenced = status.value("fenced", false);
  if (v.fenced) v.fenced_reason = status.value("fenced_reason", std::string());
  v.maintenance = status.value("maintenance", false);
  const auto out = shipper.stats();
  const auto in = receiver.stats();
  v.outbound_up = out.connected;
  v.inbound_up = in.connected;
  if (out.connected && out.protocol_version) v.outbound_protocol_version = out.protocol_version;
  if (in.connected && in.protocol_version) v.inbound_protocol_version = in.protocol_version;
  v.sent_bytes = out.wire_bytes;
  v.received_bytes = in.wire_bytes;
  v.sent_transactions = out.transactions;
  v.applied_transactions = in.transactions;
  v.reconnects = out.sessions > 0 ? out.sessions - 1 : 0;
  v.dropped_frames = in.dropped_frames;
  v.database = sampler.latest();
  v.database_errors = sampler.errors();

  v.version = status.value("software_version", "");
  v.protocol_versions = status.value("protocol_versions", "");
  v.catalog_version = status.value("catalog_version", int64_t{0});
  if (v.last_heartbeat_age_s)
    v.last_heartbeat_answer_timestamp_s = unix_now() - *v.last_heartbeat_age_s;
  v.apply_stopped = in.apply_stopped;
  const std::string writes = status.value("writes", "");
  v.writes_open =
      writes == "open" || (writes == "unfenced" && (v.role == "active" || v.role == "standalone"));
  v.version_error = status.contains("version_error") && status["version_error"].is_string();
  if (auto ms = optional_number(status, "clock_skew_ms")) v.clock_skew_s = *ms / 1000.0;
  const std::string witness = status.value("witness_state", "");
  if (status.contains("witness") && !status["witness"].empty()) {
    if (witness == "reachable") v.witness_reachable = true;
    if (witness == "unreachable") v.witness_reachable = false;
  }
  v.role_changes = driver.role_changes();
  v.hook_failures = driver.hook_failures();
  v.process = process_metrics();
  return v;
}

}  // namespace mpf::server
