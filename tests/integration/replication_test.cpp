// Two daemons on loopback, each with its own database: the whole path capture -> reader ->
// ZeroMQ -> apply -> ack -> trim, through daemon kills. The namespace pair (deploy/pair.sh)
// adds separate PostgreSQL servers and link faults.
#include <filesystem>
#include <random>
#include <thread>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <zmq.hpp>

#include "support/compare.hpp"
#include "support/daemon.hpp"
#include "support/loopback_pair.hpp"
#include "support/test_db.hpp"
#include "support/workload.hpp"

using namespace std::chrono_literals;
using mpf::test::Daemon;
using mpf::test::eventually;
using mpf::test::scalar;

namespace {

// Heartbeats every second, no initial roles: the daemons' defaults otherwise.
struct Pair : mpf::test::LoopbackPair {
  explicit Pair(bool curve = true)
      : LoopbackPair([&] {
          mpf::test::LoopbackPairOptions o;
          o.name = "pair";
          o.curve = curve;
          o.extra_keys = {"stranger"};
          return o;
        }()) {}

  void require_converged(std::chrono::milliseconds timeout = 30s) {
    const bool ok = eventually([&] { return converged(); }, timeout);
    if (!ok) {
      MESSAGE("daemon a log:\n" << a->log_text());
      MESSAGE("daemon b log:\n" << b->log_text());
    }
    REQUIRE(ok);
    CHECK(mpf::test::check_same_content(db_a.conninfo(), db_b.conninfo()));
  }
};

}  // namespace

TEST_SUITE("replication") {
  TEST_CASE("a steady stream from a reaches b with identical content, and b's writes reach a") {
    Pair p;
    p.a->start();
    p.b->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 1, "a");
    wa.run(300);
    p.require_converged();
    mpf::test::Workload wb(p.db_b.conninfo(), 2, "b");
    wb.run(100);
    p.require_converged();
    // Acknowledged windows are trimmed on the source.
    pqxx::connection a(p.db_a.conninfo());
    CHECK(eventually([&] { return scalar(a, "SELECT count(*) FROM mpfailover.change_log") < 50; },
                     10s));
    CHECK(scalar(a, "SELECT count(*) FROM mpfailover.peer_ack WHERE peer = 'b'") == 1);
  }

  TEST_CASE("changes queue while the target daemon is down and drain when it returns") {
    Pair p;
    p.a->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 3, "a");
    wa.run(200);  // b is not running: everything queues on a
    pqxx::connection a(p.db_a.conninfo());
    // (A few of the mix's transactions change no row: an update of a deleted meeting.)
    CHECK(scalar(a, "SELECT count(DISTINCT txid) FROM mpfailover.change_log") > 150);
    p.b->start();
    p.require_converged();
  }

  TEST_CASE("kill -9 of either daemon mid-stream loses nothing and duplicates nothing") {
    Pair p;
    p.a->start();
    p.b->start();
    std::atomic<bool> writing{true};
    std::string writer_error;
    std::thread writer([&] {
      try {
        mpf::test::Workload w(p.db_a.conninfo(), 4, "a");
        for (int i = 0; i < 400 && writing; ++i) w.run(1);
      } catch (const std::exception& e) {
        writer_error = e.what();
      }
    });
    for (int round = 0; round < 3; ++round) {
      std::this_thread::sleep_for(150ms);
      p.a->kill9();
      std::this_thread::sleep_for(100ms);
      p.a->start();
      std::this_thread::sleep_for(150ms);
      p.b->kill9();
      std::this_thread::sleep_for(100ms);
      p.b->start();
    }
    writer.join();
    REQUIRE_MESSAGE(writer_error.empty(), writer_error);
    p.require_converged();
  }

  TEST_CASE("a wrong key or an unknown peer is refused and logged; nothing is applied") {
    Pair p;
    // b believes a's public key is the stranger's: a's connection must be refused by b's ZAP
    // handler, and a must say so.
    p.write_conf("b", std::nullopt, "stranger");
    p.a->start();
    p.b->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 5, "a");
    wa.run(20);
    CHECK(
        eventually([&] { return p.b->log_text().find("PeerRefused") != std::string::npos; }, 10s));
    CHECK(
        eventually([&] { return p.a->log_text().find("LinkRefused") != std::string::npos; }, 10s));
    pqxx::connection b(p.db_b.conninfo());
    CHECK(scalar(b, "SELECT count(*) FROM users") == 0);
    CHECK(scalar(b, "SELECT count(*) FROM mpfailover.applied_position") == 0);
  }

  TEST_CASE("plain mode: garbage on the port is dropped with a log line and service goes on") {
    Pair p(/*curve=*/false);
    p.a->start();
    p.b->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 6, "a");
    wa.run(30);
    p.require_converged();
    // Raw TCP garbage (not even ZMTP), then well-formed ZeroMQ frames that are not ours.
    {
      zmq::context_t ctx;
      zmq::socket_t raw(ctx, zmq::socket_type::stream);
      raw.connect("tcp://127.0.0.1:" + std::to_string(p.port_b));
      zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
      dealer.set(zmq::sockopt::linger, 0);
      dealer.connect("tcp://127.0.0.1:" + std::to_string(p.port_b));
      std::mt19937_64 rng(7);
      for (int i = 0; i < 200; ++i) {
        std::string junk(static_cast<size_t>(rng() % 300), '\0');
        for (auto& c : junk) c = static_cast<char>(rng());
        if (i % 3 == 0) junk = "MPF" + junk;  // looks like ours at first glance
        (void)dealer.send(zmq::buffer(junk), zmq::send_flags::dontwait);
      }
      std::this_thread::sleep_for(300ms);
    }
    CHECK(
        eventually([&] { return p.b->log_text().find("FrameDropped") != std::string::npos; }, 10s));
    CHECK(p.b->running());
    wa.run(30);
    p.require_converged();
  }
}
