#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include <mpf/replicator/wire.hpp>
#include <mpf/server/config.hpp>

namespace {

using mpf::server::parse_config;

const std::string kPath = "/etc/mpfailover/test.conf";

// The issue's example config, inline comments included.
const std::string kFull = R"([node]
name = a                       # this node's name in the pair
database = host=/var/run/postgresql dbname=meetingplace user=mpfailover   # libpq conninfo
[peer]
name = b
address = 198.18.0.12          # the peer's replication address (IP or hostname)
[replication]
listen = 0.0.0.0
port = 2008
tables = users, groups, group_members, meetings, meeting_participants
[heartbeat]
interval = 60s                 # durations accept ms / s / min
[control]
socket = /run/mpfailover/mpfailover.sock
[security]
mode = curve
secret_key_file = /etc/mpfailover/a.key
public_key_file = /etc/mpfailover/a.pub
peer_public_key_file = /etc/mpfailover/b.pub
)";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("the documented example config parses with every value") {
  auto cfg = parse_config(kFull, kPath);
  REQUIRE_MESSAGE(cfg, cfg.status().message());
  CHECK(cfg->node.name == "a");
  CHECK(cfg->node.database == "host=/var/run/postgresql dbname=meetingplace user=mpfailover");
  CHECK(cfg->peer.name == "b");
  CHECK(cfg->peer.address == "198.18.0.12");
  CHECK(cfg->replication.listen == "0.0.0.0");
  CHECK(cfg->replication.port == 2008);
  CHECK(cfg->replication.tables == std::vector<std::string>{"users", "groups", "group_members",
                                                            "meetings", "meeting_participants"});
  CHECK(cfg->heartbeat.interval == std::chrono::seconds(60));
  CHECK(cfg->control.socket == "/run/mpfailover/mpfailover.sock");
  CHECK(cfg->security.mode == "curve");
  CHECK(cfg->security.secret_key_file == "/etc/mpfailover/a.key");
  CHECK(cfg->security.public_key_file == "/etc/mpfailover/a.pub");
  CHECK(cfg->security.peer_public_key_file == "/etc/mpfailover/b.pub");
  CHECK(cfg->peer_endpoint() == "tcp://198.18.0.12:2008");
  CHECK(cfg->listen_endpoint() == "tcp://0.0.0.0:2008");
}

TEST_CASE("security is CURVE unless the config says plain; CURVE needs all three key files") {
  const std::string base = "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n";
  auto none = parse_config(base, kPath);
  REQUIRE_FALSE(none);
  CHECK(none.status().message().find(
            "missing required key \"security.secret_key_file\" (security.mode is curve)") !=
        std::string::npos);
  auto partial = parse_config(base + "[security]\nsecret_key_file=/k\npublic_key_file=/p\n", kPath);
  REQUIRE_FALSE(partial);
  CHECK(partial.status().message().find("\"security.peer_public_key_file\"") != std::string::npos);
  auto plain = parse_config(base + "[security]\nmode=plain\n", kPath);
  REQUIRE_MESSAGE(plain, plain.status().message());
  CHECK(plain->security.mode == "plain");
  auto bad = parse_config(base + "[security]\nmode=tls\n", kPath);
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message().find("invalid security.mode \"tls\"") != std::string::npos);
}

TEST_CASE("peer.port overrides the port the peer is reached on") {
  auto cfg = parse_config(
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=fe80::1\nport=3008\n"
      "[security]\nmode=plain\n",
      kPath);
  REQUIRE_MESSAGE(cfg, cfg.status().message());
  CHECK(cfg->peer_endpoint() == "tcp://[fe80::1]:3008");
}

TEST_CASE("optional keys take their documented defaults") {
  auto cfg = parse_config(
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n",
      kPath);
  REQUIRE_MESSAGE(cfg, cfg.status().message());
  CHECK(cfg->replication.port == 2008);
  CHECK(cfg->replication.tables.size() == 5);
  CHECK(cfg->heartbeat.interval == std::chrono::seconds(60));
  CHECK(cfg->control.socket == "/run/mpfailover/mpfailover.sock");
}

TEST_CASE("each required key missing in turn is named with the file") {
  for (const std::string key : {"node.name", "node.database", "peer.name", "peer.address"}) {
    CAPTURE(key);
    const std::string prefix = key.substr(key.find('.') + 1) + " =";
    // Remove the line from the right section only.
    std::string text = kFull;
    const std::string section = "[" + key.substr(0, key.find('.')) + "]";
    const auto sec_at = text.find(section);
    const auto line_at = text.find("\n" + prefix, sec_at);
    REQUIRE(line_at != std::string::npos);
    const auto line_end = text.find('\n', line_at + 1);
    text.erase(line_at, line_end - line_at);
    auto cfg = parse_config(text, kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message() ==
          "config file \"" + kPath + "\": missing required key \"" + key + "\"");
  }
}

TEST_CASE("an unknown key is named with its file and line") {
  auto cfg = parse_config(replace(kFull, "interval = 60s", "intervall = 60s"), kPath);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().message() ==
        "config file \"" + kPath + "\" line 12: unknown key \"heartbeat.intervall\"");
}

TEST_CASE("an unknown section is an unknown key") {
  auto cfg = parse_config(kFull + "[heartbeats]\ninterval = 5s\n", kPath);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().message().find("unknown key \"heartbeats.interval\"") != std::string::npos);
}

TEST_CASE("a malformed duration names the key, the line and the reason") {
  auto cfg = parse_config(replace(kFull, "interval = 60s", "interval = 60"), kPath);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().message() == "config file \"" + kPath +
                                      "\" line 12: heartbeat.interval: invalid duration \"60\": "
                                      "missing unit (ms, s, min, h, d), e.g. \"60s\"");
}

TEST_CASE("a heartbeat interval below 100ms is refused") {
  auto cfg = parse_config(replace(kFull, "interval = 60s", "interval = 50ms"), kPath);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().message().find("below the minimum of 100ms") != std::string::npos);
}

TEST_CASE("a malformed line is refused with its line number") {
  auto cfg = parse_config(replace(kFull, "listen = 0.0.0.0", "listen 0.0.0.0"), kPath);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().message() ==
        "config file \"" + kPath +
            "\": line 8: malformed line, expected \"key = value\" or \"[section]\"");
}

TEST_CASE("bad values are refused naming the key") {
  SUBCASE("port out of range") {
    auto cfg = parse_config(replace(kFull, "port = 2008", "port = 70000"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("line 9: invalid replication.port \"70000\"") !=
          std::string::npos);
  }
  SUBCASE("port not a number") {
    CHECK_FALSE(parse_config(replace(kFull, "port = 2008", "port = 20o8"), kPath));
  }
  SUBCASE("table names that need quoting follow PostgreSQL's identifier rules (#12)") {
    auto cfg = parse_config(
        replace(kFull, "tables = users,",
                "tables = \"My Table\", sch.\"Mixed\", \"a,b\", Upper.Case, \"say \"\"hi\"\"\","),
        kPath);
    REQUIRE_MESSAGE(cfg, cfg.status().message());
    CHECK(cfg->replication.tables ==
          std::vector<std::string>{"\"My Table\"", "sch.\"Mixed\"", "\"a,b\"", "upper.case",
                                   "\"say \"\"hi\"\"\"", "groups", "group_members", "meetings",
                                   "meeting_participants"});
  }
  SUBCASE("a malformed table name is refused, saying why and how to write it") {
    for (const char* bad : {"\"open", "my table", "a.b.c", "\"\"", "x-y", "public."}) {
      CAPTURE(bad);
      auto cfg = parse_config(
          replace(kFull, "tables = users,", std::string("tables = ") + bad + ","), kPath);
      REQUIRE_FALSE(cfg);
      CHECK(cfg.status().message().find("invalid table name") != std::string::npos);
      CHECK(cfg.status().message().find("hint: PostgreSQL identifier syntax") != std::string::npos);
    }
  }
  SUBCASE("the same table spelled two ways is listed twice") {
    auto cfg =
        parse_config(replace(kFull, "tables = users,", "tables = Users, public.users,"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("listed twice") != std::string::npos);
  }
  SUBCASE("same table twice") {
    auto cfg = parse_config(replace(kFull, "tables = users,", "tables = users, users,"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("listed twice") != std::string::npos);
  }
  SUBCASE("peer has this node's name") {
    auto cfg = parse_config(replace(kFull, "name = b", "name = a"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("equals node.name") != std::string::npos);
  }
  SUBCASE("key set twice") {
    auto cfg = parse_config(replace(kFull, "name = b", "name = b\nname = c"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("key \"peer.name\" is set twice") != std::string::npos);
  }
  SUBCASE("relative control socket") {
    auto cfg = parse_config(
        replace(kFull, "socket = /run/mpfailover/mpfailover.sock", "socket = mpf.sock"), kPath);
    REQUIRE_FALSE(cfg);
    CHECK(cfg.status().message().find("absolute path") != std::string::npos);
  }
}

TEST_CASE("a config file that cannot be opened says so and hints") {
  auto cfg = mpf::server::load_config("/nonexistent/mpfailover.conf");
  REQUIRE_FALSE(cfg);
  CHECK(cfg.status().code() == mpf::Code::kNotFound);
  CHECK(cfg.status().message().find(
            "could not open config file \"/nonexistent/mpfailover.conf\"") == 0);
}

TEST_CASE("the example config in deploy/ parses and documents every key the parser knows") {
  const std::string path = std::string(MPF_SOURCE_DIR) + "/deploy/mpfailover.conf.example";
  auto cfg = mpf::server::load_config(path);
  REQUIRE_MESSAGE(cfg, cfg.status().message());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  for (const char* key : {"name =",
                          "database =",
                          "address =",
                          "port =",
                          "listen =",
                          "tables =",
                          "interval =",
                          "socket =",
                          "level =",
                          "mode =",
                          "secret_key_file =",
                          "public_key_file =",
                          "peer_public_key_file =",
                          "initial_role =",
                          "app_role =",
                          "timeout =",
                          "ping_timeout =",
                          "max_skew =",
                          "witness =",
                          "automatic =",
                          "missed_heartbeats =",
                          "switchover_timeout =",
                          "[shared]",
                          "hostname =",
                          "interface =",
                          "on_promote =",
                          "on_demote =",
                          "group =",
                          "[metrics]",
                          "max_protocol_version =",
                          "arbiter =",
                          "[arbiter]",
                          "endpoints =",
                          "prefix =",
                          "ca_file =",
                          "cert_file =",
                          "key_file =",
                          "fence_after ="}) {
    CAPTURE(key);
    CHECK(text.str().find(key) != std::string::npos);
  }
}

TEST_CASE("queue.warn_bytes takes a size with a unit, and refuses garbage by name") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto dflt = parse_config(base, kPath);
  REQUIRE(dflt);
  CHECK(dflt->queue.warn_bytes == (1ull << 30));
  auto mb = parse_config(base + "[queue]\nwarn_bytes = 256MB\n", kPath);
  REQUIRE_MESSAGE(mb, mb.status().message());
  CHECK(mb->queue.warn_bytes == 256ull * 1024 * 1024);
  auto bad = parse_config(base + "[queue]\nwarn_bytes = lots\n", kPath);
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message().find("line 10: queue.warn_bytes: invalid size \"lots\"") !=
        std::string::npos);
}

TEST_CASE("replication.max_protocol_version pins the protocol within this release's range") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto dflt = parse_config(base, kPath);
  REQUIRE(dflt);
  CHECK(dflt->replication.max_protocol_version == 0);
  CHECK(dflt->protocol_max() == mpf::replicator::wire::kProtocolVersion);
  CHECK_FALSE(dflt->protocol_pinned());
  auto pinned = parse_config(base + "[replication]\nmax_protocol_version = 1\n", kPath);
  REQUIRE_MESSAGE(pinned, pinned.status().message());
  CHECK(pinned->protocol_max() == 1);
  CHECK(pinned->protocol_pinned());
  for (const char* bad : {"0", "3", "99", "two", "-1", ""}) {
    CAPTURE(bad);
    auto r = parse_config(base + "[replication]\nmax_protocol_version = " + bad + "\n", kPath);
    REQUIRE_FALSE(r);
    CHECK(r.status().message().find("line 10: invalid replication.max_protocol_version") !=
          std::string::npos);
    CHECK(r.status().message().find("this release speaks replication protocol versions 1 to 2") !=
          std::string::npos);
  }
}

TEST_CASE("log and tombstone retention are durations, named on error") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto cfg =
      parse_config(base + "[replication]\nretention = 10min\ntombstone_retention = 60min\n", kPath);
  REQUIRE_MESSAGE(cfg, cfg.status().message());
  CHECK(cfg->replication.retention == std::chrono::minutes(10));
  CHECK(cfg->replication.tombstone_retention == std::chrono::hours(1));
  auto bad = parse_config(base + "[replication]\nretention = forever\n", kPath);
  REQUIRE_FALSE(bad);
  CHECK(bad.status().message().find("line 10: replication.retention: invalid duration") !=
        std::string::npos);
}

TEST_CASE("heartbeat, failover, shared address and hooks keys: defaults and errors by name") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto plain = parse_config(base, "/etc/x.conf");
  REQUIRE_MESSAGE(plain, plain.status().message());
  CHECK(plain->node.initial_role == "standby");
  CHECK(plain->heartbeat.timeout == std::chrono::seconds(10));
  CHECK_FALSE(plain->failover.automatic);
  CHECK(plain->failover.missed_heartbeats == 3);
  CHECK(plain->shared.address.empty());

  SUBCASE("the answer timeout defaults to the interval when that is shorter") {
    auto c = parse_config(base + "[heartbeat]\ninterval=200ms\n", "/etc/x.conf");
    REQUIRE(c);
    CHECK(c->heartbeat.timeout == std::chrono::milliseconds(200));
  }
  SUBCASE("every key parses") {
    auto c = parse_config(base +
                              "[heartbeat]\ninterval=1s\ntimeout=300ms\nping_timeout=200ms\n"
                              "max_skew=250ms\nwitness=198.18.0.1, 198.18.0.2\n"
                              "[failover]\nautomatic=true\nmissed_heartbeats=5\n"
                              "switchover_timeout=10s\n[shared]\naddress=198.18.0.10/24\n"
                              "interface=veth0\nhostname=mp.example\n[hooks]\non_promote=/p\n"
                              "on_demote=/d\ntimeout=5s\n[control]\ngroup=ops\n",
                          "/etc/x.conf");
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->heartbeat.witness == std::vector<std::string>{"198.18.0.1", "198.18.0.2"});
    CHECK(c->failover.automatic);
    CHECK(c->failover.missed_heartbeats == 5);
    CHECK(c->heartbeat.max_skew == std::chrono::milliseconds(250));
    CHECK(c->shared.interface == "veth0");
    CHECK(c->hooks.on_demote == "/d");
    CHECK(c->control.group == "ops");
  }
  SUBCASE("errors name the key") {
    auto role = parse_config(
        "[node]\nname=a\ndatabase=x\ninitial_role=leader\n[peer]\nname=b\naddress=h\n"
        "[security]\nmode=plain\n",
        "/etc/x.conf");
    REQUIRE_FALSE(role);
    CHECK(role.status().message() ==
          "config file \"/etc/x.conf\" line 4: invalid node.initial_role \"leader\": expected "
          "active or standby");
    auto automatic = parse_config(base + "[failover]\nautomatic=true\n", "/etc/x.conf");
    REQUIRE_FALSE(automatic);
    CHECK(automatic.status().message().find("needs heartbeat.witness") != std::string::npos);
    auto missed = parse_config(base + "[failover]\nmissed_heartbeats=0\n", "/etc/x.conf");
    REQUIRE_FALSE(missed);
    CHECK(missed.status().message().find("failover.missed_heartbeats") != std::string::npos);
    auto yes = parse_config(base + "[failover]\nautomatic=maybe\n", "/etc/x.conf");
    REQUIRE_FALSE(yes);
    CHECK(yes.status().message().find("expected true or false") != std::string::npos);
    auto cidr = parse_config(base + "[shared]\naddress=198.18.0.10\ninterface=x\n", "/etc/x.conf");
    REQUIRE_FALSE(cidr);
    CHECK(cidr.status().message().find("CIDR") != std::string::npos);
    auto iface = parse_config(base + "[shared]\naddress=198.18.0.10/24\n", "/etc/x.conf");
    REQUIRE_FALSE(iface);
    CHECK(iface.status().message().find("shared.interface") != std::string::npos);
    auto timeout = parse_config(base + "[heartbeat]\ntimeout=soon\n", "/etc/x.conf");
    REQUIRE_FALSE(timeout);
    CHECK(timeout.status().message().find("heartbeat.timeout") != std::string::npos);
  }
}

TEST_CASE("metrics.listen is off by default, takes ADDRESS:PORT, and refuses garbage by name") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto none = parse_config(base, kPath);
  REQUIRE_MESSAGE(none, none.status().message());
  CHECK(none->metrics.listen.empty());

  auto v4 = parse_config(base + "[metrics]\nlisten = 127.0.0.1:9108\n", kPath);
  REQUIRE_MESSAGE(v4, v4.status().message());
  CHECK(v4->metrics.address == "127.0.0.1");
  CHECK(v4->metrics.port == 9108);

  auto v6 = parse_config(base + "[metrics]\nlisten = [::1]:9108\n", kPath);
  REQUIRE_MESSAGE(v6, v6.status().message());
  CHECK(v6->metrics.address == "::1");
  CHECK(v6->metrics.port == 9108);

  auto empty = parse_config(base + "[metrics]\nlisten =\n", kPath);
  REQUIRE_MESSAGE(empty, empty.status().message());
  CHECK(empty->metrics.listen.empty());

  for (const char* bad :
       {"9108", ":9108", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:http", "localhost:9108", "::1:9108", "[::1:9108", "[]:9108", "300.0.0.1:9108"}) {
    CAPTURE(bad);
    auto r = parse_config(base + "[metrics]\nlisten = " + bad + "\n", kPath);
    REQUIRE_FALSE(r);
    CHECK(r.status().message().find("config file \"/etc/mpfailover/test.conf\" line 10: invalid "
                                    "metrics.listen \"" +
                                    std::string(bad) + "\"") == 0);
  }
}

TEST_CASE("issue #18: heartbeat timing, self-fencing and the arbiter are validated") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  SUBCASE("a timeout above the interval is refused, naming both") {
    auto c = parse_config(base + "[heartbeat]\ninterval=500ms\ntimeout=1s\n", "/etc/x.conf");
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("heartbeat.timeout 1s is above heartbeat.interval 500ms") !=
          std::string::npos);
    CHECK(c.status().message().find("hint:") != std::string::npos);
  }
  SUBCASE("automatic failover derives fence_after inside the standby's window") {
    auto c = parse_config(base +
                              "[heartbeat]\ninterval=1s\ntimeout=500ms\nwitness=198.18.0.1\n"
                              "[failover]\nautomatic=true\nmissed_heartbeats=3\n",
                          "/etc/x.conf");
    REQUIRE_MESSAGE(c, c.status().message());
    // window 3 x 1s + 500ms = 3.5s, margin 350ms: 3.15s.
    CHECK(c->failover.fence_after == std::chrono::milliseconds(3150));
  }
  SUBCASE("a fence_after too close to the standby's failover is refused") {
    auto c =
        parse_config(base +
                         "[heartbeat]\ninterval=1s\ntimeout=500ms\nwitness=198.18.0.1\n"
                         "[failover]\nautomatic=true\nmissed_heartbeats=3\nfence_after=3400ms\n",
                     "/etc/x.conf");
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("failover.fence_after") != std::string::npos);
    CHECK(c.status().message().find("both could take writes") != std::string::npos);
  }
  SUBCASE("a fence_after below one heartbeat is refused") {
    auto c = parse_config(base +
                              "[heartbeat]\ninterval=1s\ntimeout=500ms\nwitness=198.18.0.1\n"
                              "[failover]\nautomatic=true\nfence_after=900ms\n",
                          "/etc/x.conf");
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("between two heartbeats") != std::string::npos);
  }
  SUBCASE("timing with no room for self-fencing is refused") {
    auto c = parse_config(base +
                              "[heartbeat]\ninterval=1s\ntimeout=50ms\nwitness=198.18.0.1\n"
                              "[failover]\nautomatic=true\nmissed_heartbeats=1\n",
                          "/etc/x.conf");
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("no safe self-fencing delay") != std::string::npos);
  }
  SUBCASE("fence_after without anything that fences is refused") {
    auto c = parse_config(base + "[failover]\nfence_after=10s\n", "/etc/x.conf");
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("nothing fences") != std::string::npos);
  }
  SUBCASE("the etcd arbiter") {
    auto c = parse_config(base +
                              "[heartbeat]\ninterval=1s\ntimeout=500ms\narbiter=etcd\n"
                              "[arbiter]\nendpoints=http://127.0.0.1:2379, https://e2:2379\n"
                              "prefix=/mpf/\nca_file=/etc/ca.pem\n"
                              "[failover]\nautomatic=true\n",
                          "/etc/x.conf");
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->heartbeat.arbiter == "etcd");
    CHECK(c->arbiter.endpoints ==
          std::vector<std::string>{"http://127.0.0.1:2379", "https://e2:2379"});
    CHECK(c->arbiter.prefix == "/mpf/");
    CHECK(c->failover.fence_after == std::chrono::seconds(2));  // lease 3s x 2/3
    auto none = parse_config(base + "[heartbeat]\narbiter=etcd\n", "/etc/x.conf");
    REQUIRE_FALSE(none);
    CHECK(none.status().message().find("needs arbiter.endpoints") != std::string::npos);
    auto bad = parse_config(base + "[heartbeat]\narbiter=zookeeper\n", "/etc/x.conf");
    REQUIRE_FALSE(bad);
    CHECK(bad.status().message().find("expected none or etcd") != std::string::npos);
    auto url = parse_config(base + "[heartbeat]\narbiter=etcd\n[arbiter]\nendpoints=e1:2379\n",
                            "/etc/x.conf");
    REQUIRE_FALSE(url);
    CHECK(url.status().message().find("http://HOST:PORT") != std::string::npos);
    auto stray = parse_config(base + "[arbiter]\nendpoints=http://e1:2379\n", "/etc/x.conf");
    REQUIRE_FALSE(stray);
    CHECK(stray.status().message().find("heartbeat.arbiter is not etcd") != std::string::npos);
    auto lease = parse_config(base +
                                  "[heartbeat]\ninterval=1s\narbiter=etcd\n[arbiter]\n"
                                  "endpoints=http://e1:2379\n[failover]\nfence_after=2900ms\n",
                              "/etc/x.conf");
    REQUIRE_FALSE(lease);
    CHECK(lease.status().message().find("lease") != std::string::npos);
  }
}
// Issue #13: '#' used to cut every value, quotes stayed part of the value.
TEST_CASE("'#' starts a comment only at line start or after whitespace outside quotes") {
  const std::string base = "[peer]\nname=b\naddress=h\n[security]\nmode=plain\n[node]\nname=a\n";
  SUBCASE("a libpq password with '#' survives; a comment after whitespace is cut") {
    auto c =
        parse_config(base + "database = host=/run/pg password=se#cret   # the conninfo\n", kPath);
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->node.database == "host=/run/pg password=se#cret");
  }
  SUBCASE("'#' after whitespace inside quotes is part of the value") {
    auto c = parse_config(base + "database = host=/run/pg password='a #b' # comment\n", kPath);
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->node.database == "host=/run/pg password='a #b'");
  }
  SUBCASE("a comment line and a line starting with '#' after blanks") {
    auto c = parse_config("# header\n  # indented comment\n" + base + "database=x\n", kPath);
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->node.database == "x");
  }
}

TEST_CASE("a quoted value loses its quotes, with \\\" \\' and \\\\ as escapes") {
  const std::string base = "[peer]\nname=b\naddress=h\n[security]\nmode=plain\n[node]\nname=a\n";
  SUBCASE("double quotes, a '#' and a comment") {
    auto c = parse_config(base +
                              "database = \"dbname=x password=a #1\"  # quoted\n"
                              "[hooks]\non_promote = '/opt/my hooks/promote#1'\n",
                          kPath);
    REQUIRE_MESSAGE(c, c.status().message());
    CHECK(c->node.database == "dbname=x password=a #1");
    CHECK(c->hooks.on_promote == "/opt/my hooks/promote#1");
  }
  SUBCASE("escapes") {
    auto c = parse_config(base + R"(database = "password='x\'y' a\"b c\\d e\nf")" + "\n", kPath);
    REQUIRE_MESSAGE(c, c.status().message());
    // \" and \\ are escapes in double quotes; \' and \n stay as written (libpq's own escapes).
    CHECK(c->node.database == R"(password='x\'y' a"b c\d e\nf)");
  }
  SUBCASE("a missing closing quote names the line") {
    auto c = parse_config(base + "database = \"dbname=x\n", kPath);
    REQUIRE_FALSE(c);
    CHECK(c.status().message() ==
          "config file \"" + kPath + "\": line 8: value of \"database\": no closing \" quote");
  }
  SUBCASE("text after the closing quote is refused") {
    auto c = parse_config(base + "database = 'dbname=x' y\n", kPath);
    REQUIRE_FALSE(c);
    CHECK(c.status().message().find("line 8: value of \"database\": text after the closing "
                                    "quote") != std::string::npos);
  }
}

TEST_CASE("durations in the config take h and d, as conflicts --since does") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto c = parse_config(base + "[replication]\nretention = 2h\ntombstone_retention = 7d\n", kPath);
  REQUIRE_MESSAGE(c, c.status().message());
  CHECK(c->replication.retention == std::chrono::hours(2));
  CHECK(c->replication.tombstone_retention == std::chrono::hours(7 * 24));
}

TEST_CASE("shared.address must be an IP address with a prefix length that fits it") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n"
      "[security]\nmode=plain\n[shared]\ninterface=eth0\n";
  auto v4 = parse_config(base + "address = 198.18.0.10/24\n", kPath);
  REQUIRE_MESSAGE(v4, v4.status().message());
  auto v6 = parse_config(base + "address = 2001:db8::10/64\n", kPath);
  REQUIRE_MESSAGE(v6, v6.status().message());
  for (auto [bad, why] : {std::pair{"mp.example/24", "\"mp.example\" is not an IP address"},
                          std::pair{"198.18.0.300/24", "is not an IP address"},
                          std::pair{"198.18.0.10/33", "prefix length \"33\" is not 1-32"},
                          std::pair{"198.18.0.10/", "prefix length \"\" is not 1-32"},
                          std::pair{"2001:db8::10/129", "prefix length \"129\" is not 1-128"},
                          std::pair{"198.18.0.10", "no prefix length"}}) {
    auto c = parse_config(base + "address = " + bad + "\n", kPath);
    REQUIRE_FALSE(c);
    INFO(c.status().message());
    CHECK(c.status().message().find("line 11: invalid shared.address") != std::string::npos);
    CHECK(c.status().message().find(why) != std::string::npos);
  }
}

TEST_CASE("a reload applies the run-time keys and names the ones that need a restart") {
  const std::string base =
      "[node]\nname=a\ndatabase=dbname=x\n[peer]\nname=b\naddress=h\n[security]\nmode=plain\n";
  auto now = parse_config(base, kPath);
  REQUIRE(now);
  auto same = mpf::server::plan_reload(*now, *now);
  CHECK(same.apply.empty());
  CHECK(same.restart.empty());
  auto next = parse_config(base +
                               "[log]\nlevel=debug\n[hooks]\non_promote=/p\ntimeout=5s\n"
                               "[heartbeat]\nwitness=198.18.0.1\ninterval=2s\n[failover]\n"
                               "automatic=true\n[metrics]\nlisten=127.0.0.1:9108\n"
                               "[queue]\nwarn_bytes=1MB\n",
                           kPath);
  REQUIRE_MESSAGE(next, next.status().message());
  auto plan = mpf::server::plan_reload(*now, *next);
  CHECK(plan.apply == std::vector<std::string>{"log.level", "hooks.on_promote", "hooks.timeout",
                                               "heartbeat.witness", "failover.automatic",
                                               "metrics.listen"});
  // heartbeat.interval also moves the default heartbeat.timeout (the smaller of 10s and it), and
  // automatic failover derives failover.fence_after from the heartbeat timing (docs/fencing.md).
  CHECK(plan.restart == std::vector<std::string>{"heartbeat.interval", "heartbeat.timeout",
                                                 "failover.fence_after", "queue.warn_bytes"});
}
