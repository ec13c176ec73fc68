// NOTES: the etcd arbiter's edge (see etcd_arbiter.hpp for what and why).
//
// Each request is one HTTP/1.1 POST on a fresh connection (the calls are a few per heartbeat
// interval; a kept-alive connection would have to detect a half-dead etcd anyway), driven on a
// private io_context with a deadline: the connection is closed when heartbeat.timeout passes,
// and the next endpoint is tried. int64 fields come back as JSON strings (grpc-gateway), and
// zero values are left out: both are read through json_int().
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>

#include <mpf/server/etcd_arbiter.hpp>

namespace mpf::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using heartbeat::base64_decode;
using heartbeat::base64_encode;
using heartbeat::decode_leader;
using heartbeat::encode_leader;
using heartbeat::LeaderValue;
using json = nlohmann::json;

namespace {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
};

std::optional<Url> parse_url(const std::string& e) {
  Url u;
  std::string rest;
  if (e.rfind("http://", 0) == 0) {
    rest = e.substr(7);
  } else if (e.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = e.substr(8);
  } else {
    return std::nullopt;
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    u.host = rest;
    u.port = u.tls ? "2379" : "2379";
  } else {
    u.host = rest.substr(0, colon);
    u.port = rest.substr(colon + 1);
  }
  if (!u.host.empty() && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
  if (u.host.empty()) return std::nullopt;
  return u;
}

int64_t json_int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  return it->get<int64_t>();
}

template <class Stream>
Result<std::string> exchange(Stream& stream, asio::io_context& ioc, const Url& u,
                             const std::string& path, const std::string& body, Duration timeout) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, u.host);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  beast::error_code result;
  http::async_write(stream, req, [&](beast::error_code ec, size_t) {
    if (ec) {
      result = ec;
      return;
    }
    http::async_read(stream, buf, res, [&](beast::error_code ec2, size_t) { result = ec2; });
  });
  ioc.restart();
  ioc.run_for(timeout);
  if (!ioc.stopped()) {
    ioc.stop();
    return unavailable(
        "no answer within " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
        " ms");
  }
  if (result) return unavailable(result.message());
  if (res.result() != http::status::ok) {
    return unavailable("HTTP " + std::to_string(res.result_int()) + ": " + res.body());
  }
  return res.body();
}

}  // namespace

Result<std::string> etcd_post(const EtcdOptions& options, const std::string& endpoint,
                              const std::string& path, const std::string& body) {
  auto u = parse_url(endpoint);
  if (!u) return invalid_argument("invalid etcd endpoint \"" + endpoint + "\"");
  const auto deadline = options.request_timeout;
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    auto addrs = resolver.resolve(u->host, u->port);
    auto fail = [&](const std::string& what) {
      return unavailable("etcd " + endpoint + path + ": " + what);
    };
    if (!u->tls) {
      beast::tcp_stream stream(ioc);
      stream.expires_after(deadline);
      beast::error_code cec;
      stream.async_connect(addrs, [&](beast::error_code ec, auto) { cec = ec; });
      ioc.run_for(deadline);
      if (!ioc.stopped()) return fail("connect timed out");
      if (cec) return fail("connect: " + cec.message());
      auto r = exchange(stream, ioc, *u, path, body, deadline);
      if (!r) return fail(r.status().message());
      return r;
    }
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file);
    } else {
      ctx.set_default_verify_paths();
    }
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (!options.cert_file.empty()) {
      ctx.use_certificate_chain_file(options.cert_file);
      ctx.use_private_key_file(options.key_file, asio::ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    SSL_set_tlsext_host_name(stream.native_handle(), u->host.c_str());
    stream.set_verify_callback(asio::ssl::host_name_verification(u->host));
    beast::get_lowest_layer(stream).expires_after(deadline);
    beast::error_code cec;
    beast::get_lowest_layer(stream).async_connect(addrs, [&](beast::error_code ec, auto) {
      if (ec) {
        cec = ec;
        return;
      }
      stream.async_handshake(asio::ssl::stream_base::client,
                             [&](beast::error_code ec2) { cec = ec2; });
    });
    ioc.run_for(deadline);
    if (!ioc.stopped()) return fail("connect and TLS handshake timed out");
    if (cec) return fail("connect: " + cec.message());
    auto r = exchange(stream, ioc, *u, path, body, deadline);
    if (!r) return fail(r.status().message());
    return r;
  } catch (const std::exception& e) {
    return unavailable("etcd " + endpoint + path + ": " + e.what());
  }
}

EtcdArbiter::EtcdArbiter(EtcdOptions options)
    : options_(std::move(options)), thread_([this] { run(); }) {}

EtcdArbiter::~EtcdArbiter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EtcdArbiter::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      running_job_ = true;
    }
    job();
    std::lock_guard lock(mu_);
    running_job_ = false;
  }
}

void EtcdArbiter::post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

bool EtcdArbiter::busy() const {
  std::lock_guard lock(mu_);
  return running_job_ || !jobs_.empty();
}

void EtcdArbiter::acquire(Epoch epoch, std::optional<LeaderValue> replace, bool force,
                          std::function<void(EtcdAnswer)> done) {
  post([this, epoch, replace = std::move(replace), force, done = std::move(done)] {
    done(do_acquire(epoch, replace, force));
  });
}

void EtcdArbiter::renew(Epoch epoch, std::function<void(EtcdAnswer)> done) {
  post([this, epoch, done = std::move(done)] { done(do_renew(epoch)); });
}

void EtcdArbiter::release(Epoch epoch) {
  post([this, epoch] { do_release(epoch); });
}

// Every endpoint in turn, starting with the one that answered last.
Result<std::string> EtcdArbiter::call(const std::string& path, const std::string& body) {
  std::string errors;
  const size_t n = options_.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (endpoint_ + i) % n;
    auto r = etcd_post(options_, options_.endpoints[at], path, body);
    if (r) {
      endpoint_ = at;
      return r;
    }
    errors += (errors.empty() ? "" : "; ") + r.status().message();
  }
  return unavailable(errors.empty() ? "no etcd endpoint configured" : errors);
}

Status EtcdArbiter::ensure_lease(TimePoint& sent_at) {
  if (lease_ != 0) {
    sent_at = clock_.now();
    auto r = call("/v3/lease/keepalive", json{{"ID", std::to_string(lease_)}}.dump());
    if (!r) return r.status();
    const auto j = json::parse(*r, nullptr, false);
    const json result = j.is_object() && j.contains("result") ? j["result"] : j;
    if (json_int(result, "TTL") > 0) return Status::ok();
    lease_ = 0;  // expired: a new one
  }
  sent_at = clock_.now();
  auto r =
      call("/v3/lease/grant", json{{"TTL", std::to_string(options_.lease_ttl.count())}}.dump());
  if (!r) return r.status();
  const auto j = json::parse(*r, nullptr, false);
  if (!j.is_object() || json_int(j, "ID") == 0) {
    return unavailable("etcd lease grant: unexpected answer " + *r);
  }
  lease_ = json_int(j, "ID");
  return Status::ok();
}

Result<std::optional<std::pair<LeaderValue, int64_t>>> EtcdArbiter::read_key() {
  auto r = call("/v3/kv/range", json{{"key", base64_encode(options_.key)}}.dump());
  if (!r) return r.status();
  const auto j = json::parse(*r, nullptr, false);
  if (!j.is_object()) return unavailable("etcd range: unexpected answer " + *r);
  if (!j.contains("kvs") || j["kvs"].empty()) {
    return std::optional<std::pair<LeaderValue, int64_t>>();
  }
  const auto& kv = j["kvs"][0];
  auto raw = base64_decode(kv.value("value", ""));
  auto v = raw ? decode_leader(*raw) : std::nullopt;
  if (!v) return unavailable("the leadership key holds an unreadable value");
  return std::optional<std::pair<LeaderValue, int64_t>>(std::pair{*v, json_int(kv, "lease")});
}

EtcdAnswer EtcdArbiter::do_acquire(Epoch epoch, const std::optional<LeaderValue>& replace,
                                   bool force) {
  EtcdAnswer a;
  if (auto s = ensure_lease(a.sent_at); !s) {
    a.detail = s.message();
    return a;
  }
  const std::string key = base64_encode(options_.key);
  const std::string mine = base64_encode(encode_leader({options_.node, epoch}));
  const json put = {
      {"requestPut", {{"key", key}, {"value", mine}, {"lease", std::to_string(lease_)}}}};
  auto txn = [&](const json& compare) -> Result<bool> {
    auto r = call("/v3/kv/txn", json{{"compare", compare}, {"success", json::array({put})}}.dump());
    if (!r) return r.status();
    const auto j = json::parse(*r, nullptr, false);
    if (!j.is_object()) return unavailable("etcd txn: unexpected answer " + *r);
    return j.value("succeeded", false);
  };
  // Absent: nobody's lease is alive.
  auto absent = txn(json::array(
      {{{"target", "CREATE"}, {"result", "EQUAL"}, {"key", key}, {"createRevision", "0"}}}));
  if (!absent) {
    a.detail = absent.status().message();
    return a;
  }
  if (*absent) {
    a.holds = true;
    a.detail = "took the key (it was free)";
    return a;
  }
  auto current = read_key();
  if (!current) {
    a.detail = current.status().message();
    return a;
  }
  if (!current->has_value()) {
    a.detail = "the key went away between two requests: try again";
    return a;
  }
  const LeaderValue held = (*current)->first;
  const bool own = held == LeaderValue{options_.node, epoch};
  if (force || own || (replace && held == *replace)) {
    auto swapped = txn(json::array({{{"target", "VALUE"},
                                     {"result", "EQUAL"},
                                     {"key", key},
                                     {"value", base64_encode(encode_leader(held))}}}));
    if (!swapped) {
      a.detail = swapped.status().message();
      return a;
    }
    if (*swapped) {
      a.holds = true;
      a.detail = "took the key over from " + held.node + " at epoch " + std::to_string(held.epoch);
      return a;
    }
  }
  a.holder = held;
  a.detail = "the key is held by \"" + held.node + "\" at epoch " + std::to_string(held.epoch);
  return a;
}

EtcdAnswer EtcdArbiter::do_renew(Epoch epoch) {
  EtcdAnswer a;
  if (lease_ == 0) {
    a.detail = "no lease";
    return a;
  }
  a.sent_at = clock_.now();
  auto r = call("/v3/lease/keepalive", json{{"ID", std::to_string(lease_)}}.dump());
  if (!r) {
    a.detail = r.status().message();
    return a;
  }
  const auto j = json::parse(*r, nullptr, false);
  const json result = j.is_object() && j.contains("result") ? j["result"] : j;
  if (json_int(result, "TTL") <= 0) {
    lease_ = 0;
    a.detail = "the lease expired";
  }
  auto current = read_key();
  if (!current) {
    if (a.detail.empty()) a.detail = current.status().message();
    return a;
  }
  if (current->has_value()) {
    const auto& [held, lease] = **current;
    if (lease_ != 0 && held == LeaderValue{options_.node, epoch} && lease == lease_) {
      a.holds = true;
      return a;
    }
    a.holder = held;
    if (a.detail.empty()) {
      a.detail = "the key is held by \"" + held.node + "\" at epoch " + std::to_string(held.epoch);
    }
  } else if (a.detail.empty()) {
    a.detail = "the key is gone";
  }
  return a;
}

void EtcdArbiter::do_release(Epoch epoch) {
  const std::string key = base64_encode(options_.key);
  (void)call(
      "/v3/kv/txn",
      json{{"compare",
            json::array({{{"target", "VALUE"},
                          {"result", "EQUAL"},
                          {"key", key},
                          {"value", base64_encode(encode_leader({options_.node, epoch}))}}})},
           {"success", json::array({{{"requestDeleteRange", {{"key", key}}}}})}}
          .dump());
  if (lease_ != 0) {
    (void)call("/v3/lease/revoke", json{{"ID", std::to_string(lease_)}}.dump());
    lease_ = 0;
  }
}

}  // namespace mpf::server
