// The etcd arbiter's edge (server/src/etcd_arbiter.cpp) against a real single-member etcd
// (Debian's etcd-server), started by the test on free loopback ports with its data directory in
// a temporary directory; killed and removed at the end, also on failure (RAII).
//
// Checks the contract the role machine relies on (docs/fencing.md): the compare-and-swap of a
// promotion succeeds only on a free key, on the value the caller may replace (a handover, this
// node's own key after a restart) or with --force; renewals say whether this node still holds
// the key; a lease that is not renewed expires and frees the key; release frees it at once; an
// unreachable etcd answers "not held" within the request timeout.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpf/heartbeat/arbiter_value.hpp>
#include <mpf/server/etcd_arbiter.hpp>

using namespace std::chrono_literals;
using mpf::heartbeat::LeaderValue;
using mpf::server::EtcdAnswer;
using mpf::server::EtcdArbiter;
using mpf::server::EtcdOptions;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One etcd member on loopback; stopped (SIGKILL) and its data removed by the destructor.
class Etcd {
 public:
  Etcd() {
    char tmpl[] = "/tmp/mpf-etcd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    const int client = free_port();
    const int peer = free_port();
    url_ = "http://127.0.0.1:" + std::to_string(client);
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
    const char* bin = std::getenv("MPF_ETCD") ? std::getenv("MPF_ETCD") : "/usr/bin/etcd";
    REQUIRE_MESSAGE(
        std::filesystem::exists(bin),
        "etcd not found at " << bin << " (deploy/install-deps.sh installs etcd-server)");
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const std::string log = dir_ + "/etcd.log";
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      ::execl(bin, bin, "--name", "mpf-test", "--data-dir", (dir_ + "/data").c_str(),
              "--listen-client-urls", url_.c_str(), "--advertise-client-urls", url_.c_str(),
              "--listen-peer-urls", peer_url.c_str(), "--initial-advertise-peer-urls",
              peer_url.c_str(), "--initial-cluster", ("mpf-test=" + peer_url).c_str(),
              "--log-level", "error", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    // Ready when the gateway answers a range (bounded: 15 s).
    EtcdOptions o = options("probe");
    for (int i = 0; i < 150; ++i) {
      if (mpf::server::etcd_post(o, url_, "/v3/kv/range", R"({"key":"eA=="})")) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL("etcd did not answer within 15 s; see " << dir_ << "/etcd.log");
  }
  ~Etcd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  EtcdOptions options(const std::string& node) const {
    EtcdOptions o;
    o.endpoints = {url_};
    o.key = mpf::heartbeat::leader_key("/mpf-test/", node, node == "a" ? "b" : "a");
    o.node = node;
    o.lease_ttl = 2s;
    o.request_timeout = 1s;
    return o;
  }

 private:
  std::string dir_, url_;
  pid_t pid_ = -1;
};

EtcdAnswer acquire(EtcdArbiter& arb, mpf::Epoch epoch, std::optional<LeaderValue> replace = {},
                   bool force = false) {
  std::promise<EtcdAnswer> p;
  arb.acquire(epoch, std::move(replace), force, [&](EtcdAnswer a) { p.set_value(std::move(a)); });
  return p.get_future().get();
}

EtcdAnswer renew(EtcdArbiter& arb, mpf::Epoch epoch) {
  std::promise<EtcdAnswer> p;
  arb.renew(epoch, [&](EtcdAnswer a) { p.set_value(std::move(a)); });
  return p.get_future().get();
}

}  // namespace

TEST_SUITE("arbiter") {
  TEST_CASE("the leadership key: compare-and-swap, renewals, handover, expiry, force, release") {
    Etcd etcd;
    EtcdArbiter a(etcd.options("a"));
    auto b = std::make_unique<EtcdArbiter>(etcd.options("b"));

    // a takes the free key at epoch 1.
    auto ta = acquire(a, 1);
    REQUIRE_MESSAGE(ta.holds, ta.detail);
    CHECK(renew(a, 1).holds);

    // b's promotion at epoch 2 is refused while a's lease lives, and says who holds it.
    auto tb = acquire(*b, 2);
    CHECK_FALSE(tb.holds);
    REQUIRE(tb.holder.has_value());
    CHECK(*tb.holder == LeaderValue{"a", 1});

    // A handover: b may replace exactly a's value; a's renewal then says it lost the key.
    auto hb = acquire(*b, 2, LeaderValue{"a", 1});
    REQUIRE_MESSAGE(hb.holds, hb.detail);
    auto ra = renew(a, 1);
    CHECK_FALSE(ra.holds);
    REQUIRE(ra.holder.has_value());
    CHECK(*ra.holder == LeaderValue{"b", 2});
    // A stale replace (a's old value) no longer matches anything.
    CHECK_FALSE(acquire(a, 3, LeaderValue{"a", 1}).holds);

    // b's daemon dies without releasing: its lease (2 s) expires, and the key with it.
    const auto died = std::chrono::steady_clock::now();
    b.reset();
    EtcdAnswer again;
    while (std::chrono::steady_clock::now() - died < 10s) {
      again = acquire(a, 3);
      if (again.holds) break;
      std::this_thread::sleep_for(200ms);
    }
    REQUIRE_MESSAGE(again.holds, again.detail);
    const auto freed_after = std::chrono::steady_clock::now() - died;
    CHECK(freed_after >= 1s);  // not before the lease could expire
    MESSAGE("key freed " << std::chrono::duration<double>(freed_after).count()
                         << " s after the holder stopped renewing (lease 2 s)");

    // A forced failover takes the key whatever it holds.
    EtcdArbiter b2(etcd.options("b"));
    CHECK_FALSE(acquire(b2, 4).holds);
    CHECK(acquire(b2, 4, {}, /*force=*/true).holds);
    CHECK_FALSE(renew(a, 3).holds);

    // Release frees it at once.
    b2.release(4);
    EtcdAnswer after;
    for (int i = 0; i < 20 && !after.holds; ++i) {
      after = acquire(a, 5);
      if (!after.holds) std::this_thread::sleep_for(50ms);
    }
    CHECK(after.holds);
  }

  TEST_CASE("an unreachable etcd answers \"not held\" within the request timeout") {
    EtcdOptions o;
    o.endpoints = {"http://127.0.0.1:" + std::to_string(free_port())};
    o.key = "/mpf-test/a+b/leader";
    o.node = "a";
    o.request_timeout = 500ms;
    EtcdArbiter a(o);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = acquire(a, 1);
    CHECK_FALSE(r.holds);
    CHECK_FALSE(r.detail.empty());
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  }
}
