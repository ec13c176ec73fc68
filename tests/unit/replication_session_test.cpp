// The shipper's and the receiver's session rules (src/core/): pure state machines fed with events
// and a clock, checked action by action.
#include <doctest/doctest.h>

#include <mpf/replicator/receiver_session.hpp>
#include <mpf/replicator/shipper_session.hpp>

using namespace std::chrono_literals;
using mpf::Position;
using mpf::Status;
using mpf::TimePoint;
using mpf::replicator::ReceiverAction;
using mpf::replicator::ReceiverSession;
using mpf::replicator::ShipperAction;
using mpf::replicator::ShipperSession;
using mpf::replicator::TxChunk;
namespace wire = mpf::replicator::wire;

namespace {

using RK = ReceiverAction::Kind;
using SK = ShipperAction::Kind;

std::vector<RK> kinds(const ReceiverSession::Actions& as) {
  std::vector<RK> out;
  for (const auto& a : as) {
    if (a.kind != RK::kLog) out.push_back(a.kind);
  }
  return out;
}

const ReceiverAction* find(const ReceiverSession::Actions& as, RK k) {
  for (const auto& a : as) {
    if (a.kind == k) return &a;
  }
  return nullptr;
}

wire::Hello hello(uint64_t id) {
  wire::Hello h;
  h.origin = "a";
  h.target = "b";
  h.session_id = id;
  h.tables.push_back({"public.t", {"id", "v"}, {"id"}});
  return h;
}

TxChunk chunk(int64_t tick, int64_t seq, bool last = true) {
  TxChunk c;
  c.position = {tick, seq};
  c.last = last;
  c.changes.resize(1);
  return c;
}

// A receiver session opened by "r1" (session 7) with the applier answering yes.
ReceiverSession open_session(Position applied = {}) {
  ReceiverSession s({.node = "b"});
  auto a = s.on_hello("r1", hello(7), 2, "");
  REQUIRE(kinds(a) == std::vector<RK>{RK::kBind});
  REQUIRE(kinds(s.on_bound(Status::ok())) == std::vector<RK>{RK::kReadApplied});
  auto w = s.on_applied_position(applied);
  REQUIRE(kinds(w) == std::vector<RK>{RK::kOpened, RK::kSend});
  REQUIRE(std::holds_alternative<wire::Welcome>(w[1].message));
  return s;
}

}  // namespace

TEST_SUITE("receiver_session") {
  TEST_CASE("a batch applies as a group and is acknowledged with the committed position") {
    auto s = open_session();
    CHECK(kinds(s.on_batch("r1", wire::Batch{7, 1, {chunk(1, 1)}}, 2, false)).empty());
    CHECK(s.joins_group("r1", wire::Batch{7, 2, {}}, 2));
    CHECK_FALSE(s.joins_group("r1", wire::Batch{7, 3, {}}, 2));  // a gap
    CHECK_FALSE(s.joins_group("r2", wire::Batch{7, 2, {}}, 2));  // another sender
    CHECK(kinds(s.on_batch("r1", wire::Batch{7, 2, {chunk(1, 2)}}, 2, false)).empty());
    auto apply = s.end_group(TimePoint{});
    REQUIRE(kinds(apply) == std::vector<RK>{RK::kApply});
    CHECK(apply[0].group->size() == 2);
    auto acks = s.on_applied(Position{1, 2}, TimePoint{});
    REQUIRE(kinds(acks) == std::vector<RK>{RK::kSend, RK::kSend, RK::kApplied});
    const auto& ack = std::get<wire::Ack>(acks[1].message);
    CHECK(ack.seq == 2);
    CHECK(ack.position == Position{1, 2});
  }

  TEST_CASE("issue #17: a Hello whose bind finds the database gone ends the old session too") {
    auto s = open_session();
    // A new connection says Hello; bind fails: the database connection was lost.
    REQUIRE(kinds(s.on_hello("r2", hello(8), 2, "")) == std::vector<RK>{RK::kRollback, RK::kBind});
    auto refused = s.on_bound(mpf::unavailable("not connected"));
    CHECK(kinds(refused) == std::vector<RK>{RK::kSend, RK::kCloseApplier});
    CHECK_FALSE(s.has_session());
    // The old session's batch, queued behind the Hello, never reaches the applier.
    auto late = s.on_batch("r1", wire::Batch{7, 1, {chunk(1, 1)}}, 2, false);
    CHECK(kinds(late) == std::vector<RK>{RK::kDrop});
    CHECK(kinds(s.end_group(TimePoint{})).empty());
  }

  TEST_CASE("a refused Hello from elsewhere leaves the current session alone") {
    auto s = open_session();
    auto r = s.on_hello("x", hello(9), 0, "not this node's peer");
    CHECK(kinds(r) == std::vector<RK>{RK::kSend});
    CHECK(r[0].routing_id == "x");
    CHECK(s.session_id() == 7);
  }

  TEST_CASE("out of order, wrong version and undecodable frames end the session") {
    auto s = open_session();
    auto r = s.on_batch("r1", wire::Batch{7, 2, {chunk(1, 1)}}, 2, false);
    CHECK(kinds(r) == std::vector<RK>{RK::kDrop, RK::kSend, RK::kRollback});
    CHECK(std::get<wire::Refuse>(r[1].message).reason == "batch out of order");
    auto s2 = open_session();
    CHECK(kinds(s2.on_batch("r1", wire::Batch{7, 1, {chunk(1, 1)}}, 1, false)) ==
          std::vector<RK>{RK::kDrop, RK::kSend, RK::kRollback});
    auto s3 = open_session();
    CHECK(kinds(s3.on_undecodable("r1", "crc")) ==
          std::vector<RK>{RK::kDrop, RK::kSend, RK::kRollback});
    CHECK_FALSE(s3.has_session());
  }

  TEST_CASE("a lost connection retries the group after a delay, then gives up and refuses") {
    ReceiverSession s({.node = "b", .max_retries = 2, .retry_delay = 250ms});
    (void)s.on_hello("r1", hello(7), 2, "");
    (void)s.on_bound(Status::ok());
    (void)s.on_applied_position(Position{});
    (void)s.on_batch("r1", wire::Batch{7, 1, {chunk(1, 1)}}, 2, false);
    (void)s.end_group(TimePoint{});
    auto r = s.on_applied(mpf::unavailable("gone"), TimePoint{});
    CHECK(kinds(r) == std::vector<RK>{RK::kCloseApplier});
    REQUIRE(s.retry_at());
    CHECK(kinds(s.on_tick(TimePoint{} + 100ms)).empty());
    CHECK(kinds(s.on_tick(TimePoint{} + 250ms)) == std::vector<RK>{RK::kBind});
    // Rebind works, apply fails again, rebind fails: out of attempts.
    CHECK(kinds(s.on_bound(Status::ok())) == std::vector<RK>{RK::kApply});
    CHECK(kinds(s.on_applied(mpf::unavailable("gone"), TimePoint{} + 260ms)) ==
          std::vector<RK>{RK::kCloseApplier});
    (void)s.on_tick(TimePoint{} + 600ms);
    auto last = s.on_bound(mpf::unavailable("still gone"));
    CHECK(kinds(last) == std::vector<RK>{RK::kSend, RK::kCloseApplier});
    REQUIRE(find(last, RK::kSend) != nullptr);
    CHECK(std::get<wire::Refuse>(find(last, RK::kSend)->message)
              .reason.rfind("database unavailable", 0) == 0);
    CHECK_FALSE(s.has_session());
  }

  TEST_CASE("no retry when a split transaction was open: its earlier parts are gone") {
    auto s = open_session();
    (void)s.on_batch("r1", wire::Batch{7, 1, {chunk(1, 5, false)}}, 2, false);
    (void)s.end_group(TimePoint{});
    auto acks = s.on_applied(Position{}, TimePoint{});  // split open: position unchanged
    CHECK(find(acks, RK::kSend) != nullptr);
    (void)s.on_batch("r1", wire::Batch{7, 2, {chunk(1, 5, true)}}, 2, false);
    (void)s.end_group(TimePoint{});
    auto r = s.on_applied(mpf::unavailable("gone"), TimePoint{});
    CHECK(kinds(r) == std::vector<RK>{RK::kSend, RK::kCloseApplier});
    CHECK_FALSE(s.has_session());
  }

  TEST_CASE("an apply error is reported once; later batches are ignored, not applied") {
    auto s = open_session();
    (void)s.on_batch("r1", wire::Batch{7, 1, {chunk(3, 9)}}, 2, false);
    (void)s.end_group(TimePoint{});
    auto r = s.on_applied(mpf::invalid_argument("duplicate key"), TimePoint{});
    REQUIRE(kinds(r) == std::vector<RK>{RK::kSend, RK::kApplyStopped});
    CHECK(std::get<wire::ApplyError>(find(r, RK::kSend)->message).position == Position{3, 9});
    CHECK(find(r, RK::kApplyStopped)->position == Position{3, 9});
    CHECK(kinds(s.on_batch("r1", wire::Batch{7, 2, {chunk(3, 10)}}, 2, false)).empty());
    CHECK(kinds(s.end_group(TimePoint{})).empty());
  }

  TEST_CASE("the ApplyError names the transaction apply stopped on, not its group's first") {
    auto s = open_session();
    (void)s.on_batch("r1", wire::Batch{7, 1, {chunk(3, 9), chunk(3, 10), chunk(3, 11)}}, 2, false);
    (void)s.end_group(TimePoint{});
    auto r = s.on_applied(mpf::invalid_argument("duplicate key"), TimePoint{}, Position{3, 10});
    CHECK(std::get<wire::ApplyError>(find(r, RK::kSend)->message).position == Position{3, 10});
  }

  TEST_CASE("hold refuses the session and closes the applier") {
    auto s = open_session();
    CHECK(kinds(s.on_hold()) == std::vector<RK>{RK::kSend, RK::kCloseApplier});
    CHECK_FALSE(s.has_session());
  }
}

TEST_SUITE("shipper_session") {
  TEST_CASE("the Welcome's applied position is where reading resumes and what trim may reach") {
    ShipperSession s({.window = 2}, 42);
    CHECK(s.on_connected(TimePoint{}).empty());
    auto w = s.on_message(wire::Welcome{2, "b", 42, Position{5, 50}}, TimePoint{});
    REQUIRE(w.size() == 4);
    CHECK(w[0].kind == SK::kUseVersion);
    CHECK(w[1].kind == SK::kSeek);
    CHECK(w[1].position == Position{5, 50});
    CHECK(w[2].kind == SK::kAcked);
    CHECK(w[2].position == Position{5, 50});
    CHECK(s.can_send());
  }

  TEST_CASE("the window bounds batches in flight; acks free it and advance the trim position") {
    ShipperSession s({.window = 2}, 42);
    (void)s.on_message(wire::Welcome{2, "b", 42, Position{}}, TimePoint{});
    auto b1 = s.make_batch({chunk(1, 1)});
    s.sent(100, 1, TimePoint{});
    auto b2 = s.make_batch({chunk(1, 2)});
    s.sent(100, 1, TimePoint{});
    CHECK(b1.seq == 1);
    CHECK(b2.seq == 2);
    CHECK_FALSE(s.can_send());
    auto a = s.on_message(wire::Ack{42, 1, Position{1, 1}}, TimePoint{} + 10ms);
    REQUIRE(a.size() == 1);
    CHECK(a[0].kind == SK::kAcked);
    CHECK(a[0].transactions == 1);
    CHECK(s.can_send());
    // An ack of another session is ignored.
    CHECK(s.on_message(wire::Ack{41, 2, Position{9, 9}}, TimePoint{}).empty());
    CHECK(s.acked() == Position{1, 1});
  }

  TEST_CASE("no ack within the stall limit ends the session; the limit grows with bytes") {
    ShipperSession s({.window = 4}, 1);
    (void)s.on_message(wire::Welcome{2, "b", 1, Position{}}, TimePoint{});
    (void)s.make_batch({chunk(1, 1)});
    s.sent(120'000, 1, TimePoint{});  // 10 s at the slowest link, + 1 s
    CHECK(s.on_tick(TimePoint{} + 10s).empty());
    auto end = s.on_tick(TimePoint{} + 11s + 1ms);
    REQUIRE(end.size() == 1);
    CHECK(end[0].kind == SK::kEnd);
    CHECK(end[0].was_streaming);
    CHECK(s.ended());
  }

  TEST_CASE("no Welcome in time, a Refuse, an apply error and a version not offered end it") {
    ShipperSession s({}, 1);
    (void)s.on_connected(TimePoint{});
    CHECK(s.on_tick(TimePoint{} + 3s + 1ms).at(0).kind == SK::kEnd);
    ShipperSession r({}, 1);
    auto refused = r.on_message(wire::Refuse{1, "database unavailable: x"}, TimePoint{});
    CHECK(refused.at(0).backoff == 250ms);
    ShipperSession e({}, 1);
    (void)e.on_message(wire::Welcome{2, "b", 1, Position{}}, TimePoint{});
    auto err = e.on_message(wire::ApplyError{1, Position{2, 2}, "boom"}, TimePoint{});
    REQUIRE(err.size() == 2);
    CHECK(err[0].kind == SK::kRecordApplyError);
    CHECK(err[1].kind == SK::kEnd);
    ShipperSession v({.max_version = 1}, 1);
    CHECK(v.on_message(wire::Welcome{2, "b", 1, Position{}}, TimePoint{}).at(0).kind == SK::kEnd);
  }
}
