// The rolling-upgrade rules (replicator/versions.hpp): protocol negotiation between releases and
// with a pinned node, the catalog rule, the software version in the Hello, and how `check`
// judges version facts. Each refusal must name both versions and the node to upgrade or unpin.
#include <string>

#include <doctest/doctest.h>

#include <mpf/replicator/versions.hpp>
#include <mpf/replicator/wire.hpp>
#include <mpf/server/verify/check_facts.hpp>

namespace wire = mpf::replicator::wire;
using mpf::Code;
using mpf::replicator::check_catalog_versions;
using mpf::replicator::negotiate;
using mpf::replicator::VersionRange;
using mpf::replicator::VersionSide;

TEST_CASE("negotiation picks the highest version both nodes speak") {
  const VersionSide v2{"b", {1, 2}, 2};
  CHECK(*negotiate({"a", {1, 2}, 0}, v2) == 2);
  CHECK(*negotiate({"a", {1, 1}, 0}, v2) == 1);  // a node of the version-1 release
  CHECK(*negotiate({"a", {1, 9}, 0}, v2) == 2);  // a newer release speaks down
  CHECK(*negotiate({"a", {2, 3}, 0}, v2) == 2);
  SUBCASE("a pinned target accepts only up to its pin, whatever the source offers") {
    const VersionSide pinned{"b", {1, 1}, 2};
    CHECK(pinned.pinned());
    CHECK(*negotiate({"a", {1, 2}, 0}, pinned) == 1);
  }
  SUBCASE("the Hello of a pinned source offers 1 only, so the target picks 1") {
    wire::Hello h;
    h.origin = "a";
    h.target = "b";
    h.max_version = 1;
    CHECK(*wire::negotiate_version(h) == 1);
    h.max_version = 2;
    CHECK(*wire::negotiate_version(h, 1) == 1);  // the target is pinned
    CHECK(*wire::negotiate_version(h, 2) == 2);  // neither is
  }
}

TEST_CASE("no common version: both ranges named, and the older node to upgrade") {
  SUBCASE("a future source against this release") {
    auto r = negotiate({"a", {99, 99}, 0}, {"b", {1, 2}, 2});
    REQUIRE_FALSE(r);
    CHECK(r.status().code() == Code::kFailedPrecondition);
    CHECK(r.status().message() ==
          "no protocol version in common with node \"a\": it speaks version 99, node \"b\" "
          "speaks versions 1 to 2\nhint: upgrade node \"b\" to a release that speaks protocol "
          "version 99 or later");
  }
  SUBCASE("an old source against a release that dropped its version") {
    auto r = negotiate({"a", {1, 1}, 0}, {"b", {3, 4}, 4});
    REQUIRE_FALSE(r);
    CHECK(r.status().message() ==
          "no protocol version in common with node \"a\": it speaks version 1, node \"b\" speaks "
          "versions 3 to 4\nhint: upgrade node \"a\" to a release that speaks protocol version 3 "
          "or later; node \"b\" cannot speak protocol version 1");
  }
  SUBCASE("the pin alone is in the way: unpin it") {
    auto r = negotiate({"a", {3, 3}, 0}, {"b", {1, 2}, 3});
    REQUIRE_FALSE(r);
    CHECK(r.status().message() ==
          "no protocol version in common with node \"a\": it speaks version 3, node \"b\" speaks "
          "versions 1 to 2 (pinned by replication.max_protocol_version)\nhint: remove "
          "replication.max_protocol_version on node \"b\" (its release speaks up to 3) and "
          "restart it, or pin node \"a\" to 2");
  }
  SUBCASE("wire::negotiate_version names this node as the Hello's target") {
    wire::Hello h;
    h.origin = "a";
    h.target = "b";
    h.min_version = 99;
    h.max_version = 99;
    auto r = wire::negotiate_version(h);
    REQUIRE_FALSE(r);
    CHECK(r.status().message().find("node \"b\" speaks versions 1 to 2") != std::string::npos);
    CHECK(r.status().message().find("hint: upgrade node \"b\"") != std::string::npos);
  }
}

TEST_CASE("catalogs pair across one version, and not two, in either direction") {
  CHECK(check_catalog_versions("b", 5, "a", 5));
  CHECK(check_catalog_versions("b", 5, "a", 4));
  CHECK(check_catalog_versions("b", 5, "a", 6));
  CHECK(check_catalog_versions("b", 5, "a", 0));  // unknown: not judged
  auto behind = check_catalog_versions("b", 5, "a", 3);
  REQUIRE_FALSE(behind);
  CHECK(behind.code() == Code::kFailedPrecondition);
  CHECK(behind.message() ==
        "catalog version 3 of node \"a\" is 2 behind catalog version 5 of node \"b\": two nodes "
        "pair across at most 1 catalog version\nhint: upgrade node \"a\" (stop mpfailoverd, "
        "install the package of node \"b\", run mpfailover init-db, start it), one release at a "
        "time");
  auto ahead = check_catalog_versions("b", 5, "a", 7);
  REQUIRE_FALSE(ahead);
  CHECK(ahead.message().find("catalog version 7 of node \"a\" is 2 ahead of catalog version 5 of "
                             "node \"b\"") == 0);
  CHECK(ahead.message().find("hint: upgrade node \"b\"") != std::string::npos);
  // The same verdict on both sides: either both directions replicate or neither does.
  for (int mine = 1; mine < 8; ++mine) {
    for (int peer = 1; peer < 8; ++peer) {
      CHECK(check_catalog_versions("b", mine, "a", peer).is_ok() ==
            check_catalog_versions("a", peer, "b", mine).is_ok());
    }
  }
}

TEST_CASE("the Hello carries the software version as an extension older releases skip") {
  wire::Hello h;
  h.origin = "a";
  h.target = "b";
  h.catalog_version = 5;
  h.session_id = 7;
  h.software = "0.1.0";
  wire::Encoder enc;
  const std::string frame = enc.encode(h);
  wire::Decoder dec;
  auto back = dec.decode(frame);
  REQUIRE(back);
  CHECK(std::get<wire::Hello>(*back) == h);
  SUBCASE("without it (a release before it), the Hello is the version-1 layout: no extension") {
    h.software.clear();
    const std::string plain = wire::Encoder().encode(h);
    CHECK(plain.size() == frame.size() - 7);  // the tag, the length and the 5 octets
    auto d = wire::Decoder().decode(plain);
    REQUIRE(d);
    CHECK(std::get<wire::Hello>(*d).software.empty());
  }
}

TEST_CASE("check passes compatible version differences as notes and fails incompatible ones") {
  mpf::server::verify::CheckInput in;
  in.local = {{"node.name", "b"},
              {"peer.name", "a"},
              {"catalog.version", "5"},
              {"protocol.replication", "1-2"},
              {"software.version", "0.2.0"}};
  in.peer = {{"node.name", "a"},
             {"peer.name", "b"},
             {"catalog.version", "4"},
             {"protocol.replication", "1-1"}};
  in.local_addresses = {"127.0.0.1"};
  in.peer_view_of_here = {"127.0.0.1"};
  auto mismatches = mpf::server::verify::compare_facts(in);
  CHECK(mismatches.empty());
  auto notes = mpf::server::verify::compatible_differences(in);
  REQUIRE(notes.size() == 3);
  CHECK(notes[0].fact == "software.version");
  CHECK(notes[1].fact == "protocol.replication");
  CHECK(notes[1].message.find("compatible: a rolling upgrade in progress") != std::string::npos);
  CHECK(notes[2].fact == "catalog.version");

  in.peer[2].second = "3";
  in.peer[3].second = "3-4";
  mismatches = mpf::server::verify::compare_facts(in);
  REQUIRE(mismatches.size() == 2);
  CHECK(mismatches[0].fact == "catalog.version");
  CHECK(mismatches[0].message.find("2 behind") != std::string::npos);
  CHECK(mismatches[0].message.find("; hint: upgrade node \"a\"") != std::string::npos);
  CHECK(mismatches[1].fact == "protocol.replication");
  CHECK(mismatches[1].message.find("no protocol version in common") != std::string::npos);
}

TEST_CASE("check flags two different database encodings as a lossy pair, and only those") {
  mpf::server::verify::CheckInput in;
  in.local = {{"node.name", "a"}, {"peer.name", "b"}, {"database.encoding", "UTF8"}};
  in.peer = {{"node.name", "b"}, {"peer.name", "a"}, {"database.encoding", "UTF8"}};
  in.local_addresses = {"127.0.0.1"};
  in.peer_view_of_here = {"127.0.0.1"};
  CHECK(mpf::server::verify::compare_facts(in).empty());
  in.peer[2].second = "LATIN1";
  auto m = mpf::server::verify::compare_facts(in);
  REQUIRE(m.size() == 1);
  CHECK(m[0].fact == "database.encoding");
  CHECK(m[0].message.find("here \"UTF8\", peer \"LATIN1\"") != std::string::npos);
  CHECK(m[0].message.find("lossy pair") != std::string::npos);
  CHECK(m[0].message.find("stops apply on the LATIN1 node") != std::string::npos);
  // A peer from before the fact was reported: not compared (a rolling upgrade passes).
  in.peer.pop_back();
  CHECK(mpf::server::verify::compare_facts(in).empty());
}
