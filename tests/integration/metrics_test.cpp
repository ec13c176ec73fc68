// The daemon's Prometheus endpoint (metrics.listen) against a real daemon and database: the
// values agree with `status --json` and with the database's truth; other paths, other methods,
// malformed, oversized and silent requests are answered or cut off without hurting the daemon.
//
// As in control_test.cpp, the peer is 127.0.0.1 at a port nothing listens on: heartbeats go
// unanswered and nothing this node writes is ever acknowledged, so the backlog is what it wrote.
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include "support/daemon.hpp"
#include "support/test_db.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::Daemon;
using mpf::test::eventually;

namespace {

std::string run_out(const std::string& command, int* rc) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// A plain TCP client: connects to 127.0.0.1:port (fd < 0 when refused).
int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{20, 0};  // longer than the server's own deadline
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads until the server closes (or the receive timeout).
std::string read_all(int fd) {
  std::string out;
  std::array<char, 4096> buf{};
  ssize_t n;
  while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) out.append(buf.data(), n);
  return out;
}

// Sends `request` as is and returns the whole answer ("" when refused or closed unanswered).
std::string http_exchange(uint16_t port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close on an oversized request before reading it all
    sent += static_cast<size_t>(n);
  }
  auto answer = read_all(fd);
  ::close(fd);
  return answer;
}

std::string get(uint16_t port, const std::string& target) {
  return http_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

int status_code(const std::string& answer) {
  if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

std::string body(const std::string& answer) {
  const auto at = answer.find("\r\n\r\n");
  return at == std::string::npos ? "" : answer.substr(at + 4);
}

// "series" -> value, from the exposition text.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

struct MetricsNode {
  mpf::test::TestDatabase db;
  std::string conf;
  uint16_t metrics_port = static_cast<uint16_t>(25000 + ::getpid() % 1000);
  std::unique_ptr<Daemon> daemon;

  explicit MetricsNode(const std::string& metrics_listen = "") {
    db.init("a");
    conf = "/tmp/" + db.name() + "_metrics.conf";
    std::ofstream out(conf);
    out << "[node]\nname = a\ndatabase = " << db.conninfo()
        << "\n[peer]\nname = b\naddress = 127.0.0.1\nport = 9\n"
        << "[replication]\nlisten = 127.0.0.1\nport = " << 26000 + ::getpid() % 1000
        << "\n[heartbeat]\ninterval = 200ms\ntimeout = 150ms\nping_timeout = 300ms\n"
        << "[control]\nsocket = " << db.control_socket() << "\n[security]\nmode = plain\n"
        << "[log]\nlevel = debug\n[metrics]\nlisten = "
        << (metrics_listen.empty() ? "127.0.0.1:" + std::to_string(metrics_port) : metrics_listen)
        << "\n";
    out.close();
    daemon = std::make_unique<Daemon>(MPF_DAEMON_PATH, conf, conf + ".log");
    daemon->start();
  }
  ~MetricsNode() {
    daemon.reset();
    std::remove(conf.c_str());
    std::remove((conf + ".log").c_str());
  }

  std::string cli(const std::string& args, int* rc) const {
    return run_out(std::string(MPF_CLI_PATH) + " --config " + conf + " " + args, rc);
  }
  json cli_json(const std::string& args) const {
    int rc = -1;
    auto out = cli(args, &rc);
    // status exits 3 when the pair is unhealthy (this node's peer never runs): still an answer.
    REQUIRE_MESSAGE((rc == 0 || (rc == 3 && args.rfind("status", 0) == 0)), out);
    return json::parse(out);
  }
  std::map<std::string, double> scrape() const {
    auto answer = get(metrics_port, "/metrics");
    REQUIRE_MESSAGE(status_code(answer) == 200, answer, "\n", daemon->log_text());
    return samples(body(answer));
  }
};

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("a scrape agrees with status --json and with the backlog in the database") {
    MetricsNode n;
    REQUIRE_MESSAGE(eventually(
                        [&] {
                          return status_code(get(n.metrics_port, "/metrics")) == 200 &&
                                 n.cli_json("status --json")["peer_state"] != "unknown";
                        },
                        15s),
                    n.daemon->log_text());
    int rc = -1;
    auto f = n.cli("failover", &rc);
    REQUIRE_MESSAGE(rc == 0, f);

    auto answer = get(n.metrics_port, "/metrics");
    CHECK(answer.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    CHECK(body(answer).find("# TYPE mpfailover_backlog_transactions gauge") != std::string::npos);

    const auto status = n.cli_json("status --json");
    const auto m = n.scrape();
    CHECK(status["role"] == "active");
    CHECK(m.at("mpfailover_role{role=\"active\"}") == 1);
    CHECK(m.at("mpfailover_role{role=\"standby\"}") == 0);
    CHECK(m.at("mpfailover_epoch") == status["epoch"].get<double>());
    const std::string peer_state = status["peer_state"];
    CHECK(m.at("mpfailover_peer_state{state=\"" + peer_state + "\"}") == 1);
    double ones = 0;
    for (const char* s : {"unknown", "up", "service_down", "unreachable"}) {
      ones += m.at(std::string("mpfailover_peer_state{state=\"") + s + "\"}");
    }
    CHECK(ones == 1);
    CHECK(m.at("mpfailover_link_up{direction=\"outbound\"}") == 0);
    CHECK(m.count("mpfailover_heartbeat_age_seconds") == 0);  // the peer never answered

    // N transactions that no peer acknowledges: the backlog, sampled every few seconds.
    constexpr int kN = 7;
    {
      pqxx::connection c(n.db.conninfo());
      for (int i = 0; i < kN; ++i) {
        pqxx::work tx(c);
        tx.exec("INSERT INTO users (login) VALUES ('metrics" + std::to_string(i) + "')");
        tx.commit();
      }
    }
    std::map<std::string, double> after;
    CHECK_MESSAGE(eventually(
                      [&] {
                        after = n.scrape();
                        return after.count("mpfailover_backlog_transactions") &&
                               after.at("mpfailover_backlog_transactions") == kN;
                      },
                      20s),
                  n.daemon->log_text());
    pqxx::connection c(n.db.conninfo());
    pqxx::nontransaction q(c);
    CHECK(q.exec("SELECT count(DISTINCT txid) FROM mpfailover.change_log")[0][0].as<int>() == kN);
    const auto queue = n.cli_json("queue --json");
    CHECK(queue["transactions"] == kN);
    CHECK(after.at("mpfailover_backlog_rows") == queue["rows"].get<double>());
    CHECK(after.at("mpfailover_backlog_bytes") == queue["bytes"].get<double>());
    CHECK(after.at("mpfailover_backlog_oldest_age_seconds") > 0);
    CHECK(after.at("mpfailover_conflicts_total") ==
          q.exec("SELECT count(*) FROM mpfailover.conflict")[0][0].as<double>());
    CHECK(after.at("mpfailover_database_sample_errors_total") == 0);
  }

  TEST_CASE("other paths get 404, other methods 405, bad requests 400; the daemon keeps serving") {
    MetricsNode n;
    REQUIRE_MESSAGE(
        eventually([&] { return status_code(get(n.metrics_port, "/metrics")) == 200; }, 15s),
        n.daemon->log_text());
    CHECK(status_code(get(n.metrics_port, "/")) == 200);  // the status page
    CHECK(status_code(get(n.metrics_port, "/nope")) == 404);
    CHECK(status_code(get(n.metrics_port, "/metrics/x")) == 404);
    CHECK(status_code(get(n.metrics_port, "/metrics?x=1")) == 200);
    CHECK(status_code(http_exchange(n.metrics_port,
                                    "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                    "Content-Length: 2\r\n\r\nhi")) == 405);
    // Malformed: garbage, a body over the limit, a header over the limit. Each is refused
    // (400) or cut off; none crashes the daemon.
    const auto garbage = http_exchange(n.metrics_port, "\x01\x02 HELLO\r\n\r\n");
    CHECK(status_code(garbage) == 400);
    const auto big_body = http_exchange(n.metrics_port,
                                        "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                        "Content-Length: 100000\r\n\r\n" +
                                            std::string(100000, 'x'));
    CHECK((big_body.empty() || status_code(big_body) == 400));
    const auto big_header = http_exchange(
        n.metrics_port,
        "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'y') + "\r\n\r\n");
    CHECK((big_header.empty() || status_code(big_header) == 400));

    // A client that connects and says nothing is cut off by the server's deadline, and others
    // are served meanwhile.
    const int silent = connect_to(n.metrics_port);
    REQUIRE(silent >= 0);
    const auto half = connect_to(n.metrics_port);
    REQUIRE(half >= 0);
    const std::string partial = "GET /metr";
    CHECK(::send(half, partial.data(), partial.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(partial.size()));
    CHECK(status_code(get(n.metrics_port, "/metrics")) == 200);
    const auto started = std::chrono::steady_clock::now();
    CHECK(read_all(silent).empty());  // closed without an answer
    CHECK(read_all(half).empty());
    CHECK(std::chrono::steady_clock::now() - started < 15s);
    ::close(silent);
    ::close(half);

    CHECK(n.daemon->running());
    CHECK(status_code(get(n.metrics_port, "/metrics")) == 200);
    int rc = -1;
    auto s = n.cli("status --json", &rc);
    CHECK_MESSAGE((rc == 0 || rc == 3), s);  // answered (3: unhealthy, its peer never runs)

    // SIGTERM with a connection still open: a clean stop.
    const int open_client = connect_to(n.metrics_port);
    n.daemon->stop();
    if (open_client >= 0) ::close(open_client);
    const auto log = n.daemon->log_text();
    CHECK_MESSAGE(log.find("DaemonStopping") != std::string::npos, log);
    CHECK_MESSAGE(log.find("terminate called") == std::string::npos, log);
  }

  TEST_CASE("a metrics.listen address that cannot be bound stops the daemon, naming the key") {
    // Hold the port so the daemon's bind fails.
    const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(holder >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(holder, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const auto port = ntohs(addr.sin_port);
    MetricsNode n("127.0.0.1:" + std::to_string(port));
    // (An exited daemon stays a zombie until the test reaps it: watch the log, not the pid.)
    const std::string expected =
        "could not listen on metrics.listen \"127.0.0.1:" + std::to_string(port) + "\"";
    CHECK_MESSAGE(
        eventually([&] { return n.daemon->log_text().find(expected) != std::string::npos; }, 15s),
        n.daemon->log_text());
    ::close(holder);
  }
}
