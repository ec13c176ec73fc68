// The rolling upgrade (docs/operations.md "Rolling upgrade", docs/protocol.md §6) with two real
// daemons on loopback, each with its own database and CURVE keys:
// - node a pinned to protocol version 1 (replication.max_protocol_version = 1: on the wire, a node
//   of the version-1 release) and node b at version 2: replication both ways at version 1, both
//   statuses say so, check passes with notes, a switchover across versions; then a is "upgraded"
//   (restarted without the pin) while b takes writes: version 2 both ways, no loss, no duplicate;
//   a catalog migrated under a's running daemon is reported;
// - what a pinned node sends, seen by a fake target: a Hello offering 1 only, version-1 batch
//   frames, and a Welcome naming a version it did not offer refused;
// - a raw ZeroMQ client with a's keys sending a Hello of protocol 99, Hellos with catalog versions
//   one and two apart, a version-2 batch in a version-1 session, and heartbeats of protocol 99
//   and of a far catalog: each refused (or accepted) as the rules say, naming both versions and
//   the node to upgrade; a verify request of protocol 99 answered with an Error naming both; and
//   the daemon keeps serving its real peer.
#include <filesystem>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <mpf/core/crc32c.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>
#include <mpf/replicator/security.hpp>
#include <mpf/replicator/wire.hpp>

#include "support/command.hpp"
#include "support/compare.hpp"
#include "support/daemon.hpp"
#include "support/loopback_pair.hpp"
#include "support/test_db.hpp"
#include "support/workload.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
using mpf::test::Daemon;
using mpf::test::eventually;
using mpf::test::scalar;
namespace wire = mpf::replicator::wire;

namespace {

const std::string kCli = MPF_CLI_PATH;

// a starts active, b standby, heartbeats every 500 ms, CURVE. `extra_a`/`extra_b` go into
// [replication] (write_conf rewrites a node's file with other lines).
struct UpgradePair : mpf::test::LoopbackPair {
  UpgradePair(const std::string& extra_a, const std::string& extra_b)
      : LoopbackPair([&] {
          mpf::test::LoopbackPairOptions o;
          o.name = "upgrade";
          o.base_port = 36000;
          o.port_span = 2000;
          o.heartbeat = "500ms";
          o.initial_roles = true;
          o.replication_extra_a = extra_a;
          o.replication_extra_b = extra_b;
          return o;
        }()) {}

  // stdout and stderr together, as an operator reads them.
  mpf::test::Run cli(const std::string& node, const std::string& args) const {
    return mpf::test::run(kCli + " --config " + conf(node) + " " + args);
  }

  json status(const std::string& node) const {
    auto r = LoopbackPair::cli(node, "status --json");
    if (r.rc != 0 && r.rc != 3) return json();  // 3: answered, the pair is not healthy
    try {
      return json::parse(r.out);
    } catch (const json::exception&) {
      return json();
    }
  }

  // Both sessions up at `version`, each node seeing the other.
  bool negotiated(const std::string& node, int version) const {
    auto s = status(node);
    return !s.is_null() && s["negotiated_protocol_version"]["outbound"] == version &&
           s["negotiated_protocol_version"]["inbound"] == version && s["peer_state"] == "up";
  }

  bool converged() const {
    for (const auto& t : mpf::test::meetingplace_tables()) {
      if (mpf::test::table_digest(db_a.conninfo(), t) !=
          mpf::test::table_digest(db_b.conninfo(), t))
        return false;
    }
    return true;
  }

  void require_converged() const {
    const bool ok = eventually([&] { return converged(); }, 30s);
    if (!ok) MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    REQUIRE(ok);
    CHECK(mpf::test::check_same_content(db_a.conninfo(), db_b.conninfo()));
  }

  void require_negotiated(int version) const {
    const bool ok =
        eventually([&] { return negotiated("a", version) && negotiated("b", version); }, 30s);
    if (!ok) {
      MESSAGE("a: " << status("a").dump() << "\nb: " << status("b").dump());
      MESSAGE("a:\n" << a->log_text() << "\nb:\n" << b->log_text());
    }
    REQUIRE(ok);
  }

  int32_t catalog_version() const {
    pqxx::connection c(db_b.conninfo());
    return static_cast<int32_t>(scalar(
        c, "SELECT max(version) FROM mpfailover.schema_migrations WHERE stream = 'catalog'"));
  }
};

// A DEALER on b's port with a's keys: b's ZAP handler admits it as it admits a.
struct RawClient {
  zmq::context_t ctx;
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};

  explicit RawClient(const UpgradePair& p) {
    mpf::replicator::Security sec;
    sec.curve = true;
    sec.public_key = *mpf::replicator::read_key_file(p.dir + "/a.pub", false);
    sec.secret_key = *mpf::replicator::read_key_file(p.dir + "/a.key", true);
    sec.peer_public_key = *mpf::replicator::read_key_file(p.dir + "/b.pub", false);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvtimeo, 5000);
    mpf::replicator::configure_client(socket, sec);
    socket.connect("tcp://127.0.0.1:" + std::to_string(p.port_b));
  }

  std::string ask(const std::string& frame) {
    REQUIRE(socket.send(zmq::buffer(frame), zmq::send_flags::none));
    zmq::message_t reply;
    REQUIRE_MESSAGE(socket.recv(reply), "no answer from the daemon within 5 s");
    return reply.to_string();
  }

  wire::Message hello(uint32_t min_version, uint32_t max_version, int32_t catalog,
                      uint64_t session) {
    wire::Hello h;
    h.min_version = min_version;
    h.max_version = max_version;
    h.origin = "a";
    h.target = "b";
    h.catalog_version = catalog;
    h.session_id = session;
    h.software = "9.9.9";
    auto m = wire::Decoder().decode(ask(wire::Encoder().encode(h)));
    REQUIRE_MESSAGE(m, m.status().message());
    return *m;
  }
};

// A well-formed heartbeat Beat from "a" to "b", as a node speaking heartbeat protocol `protocol`
// with the version-1 layout would send it (the CRC recomputed after the protocol octet).
std::string beat(uint8_t protocol, int32_t catalog) {
  mpf::heartbeat::HeartbeatMessage m;
  m.kind = mpf::heartbeat::HeartbeatMessage::Kind::kBeat;
  m.seq = 77;
  m.status.node = "a";
  m.status.target = "b";
  m.status.role = mpf::heartbeat::Role::kActive;
  m.status.epoch = 1;
  m.status.catalog_version = catalog;
  std::string f = mpf::heartbeat::encode(m);
  f[4] = static_cast<char>(protocol);
  const uint32_t crc = mpf::crc32c(std::string_view(f).substr(0, f.size() - 4));
  for (int i = 0; i < 4; ++i) f[f.size() - 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return f;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

}  // namespace

TEST_SUITE("upgrade") {
  TEST_CASE("a node pinned to version 1 pairs with a version-2 node; unpinned, both speak 2") {
    UpgradePair p("max_protocol_version = 1\n", "");
    p.a->start();
    p.b->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 21, "a");
    wa.run(60);
    p.require_negotiated(1);
    mpf::test::Workload wb(p.db_b.conninfo(), 22, "b");  // and the other way
    wb.run(20);
    p.require_converged();

    auto sa = p.status("a");
    auto sb = p.status("b");
    CHECK(sa["protocol_versions"] == "1");
    CHECK(sa["max_protocol_version"] == 1);
    CHECK(sa["peer_protocol_versions"] == "1-2");
    CHECK(sb["protocol_versions"] == "1-2");
    CHECK(sb["max_protocol_version"].is_null());
    CHECK(sb["peer_protocol_versions"] == "1");
    CHECK(sb["peer_software_version"] == sa["software_version"]);
    CHECK(sa["peer_catalog_version"] == sb["catalog_version"]);
    CHECK(sb["heartbeat_protocol"] == 1);
    CHECK(sb["peer_heartbeat_protocol"] == 1);
    CHECK(sa["version_error"].is_null());
    CHECK(sb["version_error"].is_null());
    CHECK(contains(p.b->log_text(), "protocol_version=1 peer_versions=1-1"));
    CHECK(contains(p.a->log_text(), "pinned_by=replication.max_protocol_version"));
    auto human = p.cli("a", "status");
    CHECK(contains(human.output,
                   "protocol 1 (pinned by max_protocol_version) (outbound 1, "
                   "inbound 1)"));

    // check: the protocol ranges differ but share version 1: a note, not a mismatch.
    auto check = p.cli("b", "check");
    CHECK_MESSAGE(check.rc == 0, check.output);
    CHECK_MESSAGE(contains(check.output,
                           "note: protocol.replication: protocol.replication differs: here "
                           "\"1-2\", peer \"1-1\" (compatible"),
                  check.output);

    // A switchover across versions: b (version 2) takes over from a (pinned to 1).
    REQUIRE(eventually(
        [&] {
          auto s = p.status("b");
          return !s.is_null() && s["role"] == "standby" && s["peer_role"] == "active";
        },
        20s));
    auto sw = p.cli("a", "switchover");
    REQUIRE_MESSAGE(sw.rc == 0, sw.output << "\na:\n" << p.a->log_text());
    REQUIRE(eventually(
        [&] { return p.status("b")["role"] == "active" && p.status("a")["role"] == "standby"; },
        20s));

    // Upgrade a, the standby now, as the procedure says: stop, drop the pin, start; b (active)
    // takes writes all along.
    std::atomic<bool> writing{true};
    std::string writer_error;
    int written = 0;
    std::thread writer([&] {
      try {
        mpf::test::Workload w(p.db_b.conninfo(), 23, "b-upgrade");
        for (int i = 0; i < 2000 && writing; ++i) {
          w.run(1);
          ++written;
          std::this_thread::sleep_for(5ms);
        }
      } catch (const std::exception& e) {
        writer_error = e.what();
      }
    });
    std::this_thread::sleep_for(300ms);
    p.a->stop();
    std::this_thread::sleep_for(300ms);
    p.write_conf("a", "");
    p.a->start();
    p.require_negotiated(2);
    std::this_thread::sleep_for(300ms);  // some writes at version 2 too
    writing = false;
    writer.join();
    REQUIRE_MESSAGE(writer_error.empty(), writer_error);
    CHECK(written > 20);
    p.require_converged();
    auto after = p.status("a");
    CHECK(after["protocol_versions"] == "1-2");
    CHECK(after["max_protocol_version"].is_null());
    CHECK(after["role"] == "standby");
    CHECK(p.status("b")["peer_protocol_versions"] == "1-2");
    CHECK(contains(p.b->log_text(), "protocol_version=2 peer_versions=1-2"));
    auto check2 = p.cli("a", "check");
    CHECK_MESSAGE(check2.rc == 0, check2.output);
    CHECK_FALSE(contains(check2.output, "note:"));

    // init-db of a newer release run under a's running daemon (the catalog migrated first): the
    // daemon notices within a heartbeat interval and says to restart it.
    {
      pqxx::connection c(p.db_a.conninfo());
      pqxx::work tx(c);
      tx.exec(
          "INSERT INTO mpfailover.schema_migrations (stream, version, name) SELECT 'catalog', "
          "max(version) + 1, 'from_a_newer_release' FROM mpfailover.schema_migrations "
          "WHERE stream = 'catalog'");
      tx.commit();
    }
    CHECK(eventually(
        [&] {
          auto s = p.status("a");
          return !s.is_null() && s["version_error"].is_string() &&
                 contains(s["version_error"].get<std::string>(),
                          "init-db ran while this daemon was running\nhint: restart mpfailoverd");
        },
        10s));
    CHECK(contains(p.a->log_text(), "CatalogMigratedUnderDaemon"));
  }

  TEST_CASE(
      "a pinned node offers version 1 only, sends version-1 batches, refuses a Welcome of 2") {
    // a alone, its peer a fake target on port_b: plain security, to read the frames directly.
    mpf::test::TestDatabase db;
    db.init("a");
    const int port = 12000 + ::getpid() % 2000;
    const std::string conf = "/tmp/" + db.name() + "_pinned.conf";
    {
      std::ofstream out(conf);
      out << "[node]\nname = a\ndatabase = " << db.conninfo()
          << "\ninitial_role = active\n[peer]\nname = b\naddress = 127.0.0.1\nport = " << port
          << "\n[replication]\nlisten = 127.0.0.1\nport = " << port + 1
          << "\nmax_protocol_version = 1\n[heartbeat]\ninterval = 500ms\n[log]\nlevel = debug\n"
          << "[control]\nsocket = " << conf << ".sock\n[security]\nmode = plain\n";
    }
    zmq::context_t ctx;
    zmq::socket_t target(ctx, zmq::socket_type::router);
    target.set(zmq::sockopt::linger, 0);
    target.set(zmq::sockopt::rcvtimeo, 200);
    target.bind("tcp://127.0.0.1:" + std::to_string(port));
    Daemon d(MPF_DAEMON_PATH, conf, conf + ".log");
    d.start();
    // The next frame the shipper sends (heartbeats on their own socket are skipped).
    auto next = [&](std::string* routing) -> std::string {
      for (int i = 0; i < 100; ++i) {
        zmq::message_t id, body;
        if (!target.recv(id)) continue;
        (void)target.recv(body);
        std::string f = body.to_string();
        if (mpf::heartbeat::is_heartbeat_frame(f)) continue;
        *routing = id.to_string();
        return f;
      }
      return {};
    };
    auto send = [&](const std::string& routing, const std::string& frame) {
      target.send(zmq::buffer(routing), zmq::send_flags::sndmore);
      target.send(zmq::buffer(frame), zmq::send_flags::none);
    };

    std::string routing;
    wire::Decoder dec;
    auto hello = dec.decode(next(&routing));
    REQUIRE_MESSAGE(hello, d.log_text());
    auto* h = std::get_if<wire::Hello>(&*hello);
    REQUIRE(h != nullptr);
    CHECK(h->min_version == 1);
    CHECK(h->max_version == 1);  // exactly what a node of the version-1 release offers
    CHECK_FALSE(h->software.empty());
    send(routing, wire::Encoder().encode(wire::Welcome{1, "b", h->session_id, {}}));
    mpf::test::Workload w(db.conninfo(), 31, "a");
    w.run(5);
    std::string frame = next(&routing);
    REQUIRE(frame.size() > 4);
    CHECK(frame[3] == 'B');  // a version-1 batch frame, never 'C'
    auto batch = dec.decode(frame);
    REQUIRE_MESSAGE(batch, batch.status().message());
    CHECK(std::holds_alternative<wire::Batch>(*batch));

    // A target answering with a version the Hello did not offer: the session ends, named.
    send(routing, wire::Encoder().encode(wire::Refuse{h->session_id, "start over"}));
    wire::Decoder dec2;
    std::string again;
    for (int i = 0; i < 20 && again.empty(); ++i) {
      auto f = next(&routing);
      auto m = dec2.decode(f);
      if (m && std::holds_alternative<wire::Hello>(*m)) again = f;
    }
    REQUIRE_FALSE(again.empty());
    auto h2 = std::get<wire::Hello>(*wire::Decoder().decode(again));
    send(routing, wire::Encoder().encode(wire::Welcome{2, "b", h2.session_id, {}}));
    CHECK_MESSAGE(eventually(
                      [&] {
                        return contains(d.log_text(),
                                        "WelcomeRefused peer=b reason=\"protocol version 2 chosen "
                                        "by the peer was not offered (1 to 1)\"");
                      },
                      10s),
                  d.log_text());
    d.stop();
    std::remove(conf.c_str());
    std::remove((conf + ".log").c_str());
  }

  TEST_CASE("future protocols and far catalogs are refused by name; the daemon serves on") {
    UpgradePair p("", "");
    p.a->start();
    p.b->start();
    mpf::test::Workload wa(p.db_a.conninfo(), 41, "a");
    wa.run(30);
    p.require_negotiated(2);
    p.require_converged();
    const int32_t catalog = p.catalog_version();
    RawClient raw(p);

    SUBCASE("replication protocol 99") {
      auto m = raw.hello(99, 99, catalog, 4242);
      auto* r = std::get_if<wire::Refuse>(&m);
      REQUIRE_MESSAGE(r != nullptr, wire::message_name(m));
      CHECK(r->session_id == 4242);
      CHECK(r->reason ==
            "no protocol version in common with node \"a\": it speaks version 99, node \"b\" "
            "speaks versions 1 to 2\nhint: upgrade node \"b\" to a release that speaks protocol "
            "version 99 or later");
      CHECK(contains(p.b->log_text(),
                     "HelloRefused from=a peer_versions=99-99 "
                     "peer_software=9.9.9"));
      auto s = p.status("b");
      CHECK(s["peer_protocol_versions"] == "99");
      CHECK(s["peer_software_version"] == "9.9.9");
      CHECK(contains(s["version_error"].get<std::string>(), "it speaks version 99"));
    }
    SUBCASE("catalog two versions ahead, then one behind") {
      auto m = raw.hello(1, 2, catalog + 2, 4343);
      auto* r = std::get_if<wire::Refuse>(&m);
      REQUIRE_MESSAGE(r != nullptr, wire::message_name(m));
      CHECK(r->reason == "catalog version " + std::to_string(catalog + 2) +
                             " of node \"a\" is 2 ahead of catalog version " +
                             std::to_string(catalog) +
                             " of node \"b\": two nodes pair across at most 1 catalog "
                             "version\nhint: upgrade node \"b\" (stop mpfailoverd, install the "
                             "package of node \"a\", run mpfailover init-db, start it), one "
                             "release at a time");
      // One behind: a node of the previous release, mid-upgrade. Accepted at version 2 (this
      // takes over b's session: the real a reconnects, as after any session change).
      auto ok = raw.hello(1, 2, catalog - 1, 4444);
      auto* w = std::get_if<wire::Welcome>(&ok);
      REQUIRE_MESSAGE(w != nullptr, wire::message_name(ok));
      CHECK(w->version == 2);
      CHECK(w->session_id == 4444);
      CHECK(contains(p.b->log_text(), "CatalogVersionDiffers peer=a peer_catalog_version=" +
                                          std::to_string(catalog - 1)));
    }
    SUBCASE("heartbeat protocol 99, and a heartbeat from a catalog two versions behind") {
      const std::string answer = raw.ask(beat(99, catalog));
      auto a = mpf::heartbeat::decode_heartbeat(answer);
      REQUIRE_MESSAGE(a, a.status().message());
      CHECK(a->kind == mpf::heartbeat::HeartbeatMessage::Kind::kAnswer);
      CHECK(a->seq == 0);
      CHECK(a->status.node == "b");
      CHECK(a->note ==
            "heartbeat protocol 99 is not supported: node \"b\" speaks heartbeat protocol 1");
      CHECK(eventually(
          [&] {
            return contains(p.b->log_text(),
                            "HeartbeatProtocolUnsupported peer=a protocol=99 supported=1 "
                            "reason=\"peer 'a' sent heartbeat protocol 99, node 'b' speaks "
                            "heartbeat protocol 1; hint: upgrade node 'b'");
          },
          5s));
      auto s = p.status("b");
      CHECK(s["peer_heartbeat_protocol"] == 99);
      CHECK(contains(s["version_error"].get<std::string>(), "sent heartbeat protocol 99"));

      // A version-1 heartbeat claiming a catalog two behind: logged, and failover would refuse.
      const std::string far = raw.ask(beat(1, catalog - 2));
      CHECK(mpf::heartbeat::decode_heartbeat(far));
      CHECK(eventually(
          [&] {
            return contains(p.b->log_text(),
                            "CatalogVersionIncompatible peer=a "
                            "peer_catalog_version=" +
                                std::to_string(catalog - 2));
          },
          5s));
    }
    SUBCASE("a version-2 batch frame in a session that agreed on version 1") {
      // What a node of the version-1 release (or one pinned to 1) must never be sent: b refuses
      // it, as such a node would, and the session ends.
      auto m = raw.hello(1, 1, catalog, 4545);
      auto* w = std::get_if<wire::Welcome>(&m);
      REQUIRE_MESSAGE(w != nullptr, wire::message_name(m));
      CHECK(w->version == 1);
      wire::Encoder enc;
      REQUIRE(enc.use_version(2));
      const std::string frame = enc.encode(wire::Batch{4545, 1, {}});
      REQUIRE(frame[3] == 'C');
      auto r = wire::Decoder().decode(raw.ask(frame));
      REQUIRE(r);
      auto* refuse = std::get_if<wire::Refuse>(&*r);
      REQUIRE_MESSAGE(refuse != nullptr, wire::message_name(*r));
      CHECK(refuse->reason == "batch frame of protocol version 2 in a session that agreed on 1");
    }
    SUBCASE("verify protocol 99 (mpfailover check or verify of a future release)") {
      std::string facts = "MPVF";
      facts += static_cast<char>(99);  // version
      facts += static_cast<char>(1);   // request_id 1
      const uint32_t crc = mpf::crc32c(facts);
      for (int i = 0; i < 4; ++i) facts += static_cast<char>((crc >> (8 * i)) & 0xff);
      const std::string answer = raw.ask(facts);
      CHECK(answer.substr(0, 4) == "MPVE");  // an Error answer, which every version reads
      CHECK_MESSAGE(contains(answer, "protocol version 99, this node speaks 1"), answer);
    }
    // Whatever came before, b serves its real peer: replication and heartbeats go on.
    wa.run(30);
    p.require_converged();
    CHECK(p.b->running());
    CHECK(eventually(
        [&] {
          auto s = p.status("b");
          return !s.is_null() && s["peer_state"] == "up" && s["peer_heartbeat_protocol"] == 1 &&
                 s["version_error"].is_null() && s["peer_catalog_version"] == catalog &&
                 s["definitions_match_peer"] == true;
        },
        20s));
  }
}
