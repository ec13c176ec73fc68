// The receiver against a hand-driven source: real ZeroMQ DEALER sockets speaking the wire protocol
// to a real Receiver, which applies to a real PostgreSQL database. The frames are ordered by the
// test, so the interleavings a fault campaign hits by chance are replayed on purpose.
#include <chrono>
#include <optional>
#include <thread>

#include <doctest/doctest.h>
#include <unistd.h>
#include <zmq.hpp>

#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/wire.hpp>

#include "support/compare.hpp"
#include "support/test_db.hpp"
#include "support/workload.hpp"

using namespace std::chrono_literals;
namespace wire = mpf::replicator::wire;

namespace {

// One connection of the hand-driven source: its own DEALER socket (so its own routing id, as each
// shipper session has), encoder and decoder.
struct Source {
  Source(zmq::context_t& ctx, const std::string& endpoint, uint64_t id)
      : socket(ctx, zmq::socket_type::dealer), session_id(id) {
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
  }

  void send(const wire::Message& m) {
    socket.send(zmq::buffer(encoder.encode(m)), zmq::send_flags::none);
  }

  // The next message from the receiver, or nullopt after `timeout`.
  std::optional<wire::Message> receive(std::chrono::milliseconds timeout = 10s) {
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    if (zmq::poll(items, 1, timeout) <= 0) return std::nullopt;
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return std::nullopt;
    auto m = decoder.decode(std::string_view(static_cast<const char*>(frame.data()), frame.size()));
    REQUIRE_MESSAGE(m, m.status().message());
    return std::move(*m);
  }

  wire::Hello hello(const std::vector<mpf::replicator::TableDef>& tables) const {
    wire::Hello h;
    h.origin = "a";
    h.target = "b";
    h.session_id = session_id;
    h.software = "test";
    for (const auto& t : tables) h.tables.push_back({t.relation, t.columns, t.key_columns});
    return h;
  }

  // Hello -> Welcome; returns the applied position the receiver reports.
  mpf::Position open(const std::vector<mpf::replicator::TableDef>& tables) {
    send(hello(tables));
    auto m = receive();
    REQUIRE(m);
    auto* w = std::get_if<wire::Welcome>(&*m);
    REQUIRE_MESSAGE(w, "expected a Welcome, got a " << wire::message_name(*m));
    REQUIRE(encoder.use_version(w->version));
    return w->applied;
  }

  zmq::socket_t socket;
  uint64_t session_id;
  uint64_t next_seq = 1;
  wire::Encoder encoder;
  wire::Decoder decoder;
};

// The catalog's table ids -> the Hello's indexes, as the shipper maps them.
std::vector<mpf::replicator::TxChunk> for_wire(std::vector<mpf::replicator::TxChunk> chunks,
                                               const std::vector<mpf::replicator::TableDef>& t) {
  for (auto& c : chunks) {
    for (auto& ch : c.changes) {
      for (size_t i = 0; i < t.size(); ++i) {
        if (t[i].table_id == ch.table_id) ch.table_id = static_cast<int32_t>(i);
      }
    }
  }
  return chunks;
}

}  // namespace

TEST_SUITE("receiver") {
  // Seen in a fault campaign (SIGSEGV in PgApplier::in_split_transaction, this = 0): b's database
  // connection was lost; a new session's Hello failed to bind (the applier was dropped) while the
  // old session stayed current, and its next batch was applied through the dropped applier.
  TEST_CASE(
      "a batch of the old session after a Hello that found the database gone is refused, not a "
      "crash") {
    mpf::test::TestDatabase a;
    mpf::test::TestDatabase b;
    a.init("a");
    b.init("b");
    pqxx::connection conn_a(a.conninfo());
    auto tables = mpf::replicator::installed_tables(conn_a);
    REQUIRE(tables);
    mpf::test::Workload w(a.conninfo(), 17, "a");
    w.run(40);
    auto reader = mpf::replicator::PgLogReader::open(a.conninfo());
    REQUIRE(reader);
    std::vector<std::vector<mpf::replicator::TxChunk>> batches;
    for (int guard = 0; guard < 1000; ++guard) {
      auto batch = (*reader)->next_batch(20);
      REQUIRE(batch);
      if (batch->empty()) break;
      batches.push_back(for_wire(std::move(batch->chunks), *tables));
    }
    REQUIRE(batches.size() >= 3);

    zmq::context_t ctx;
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(14000 + ::getpid() % 2000);
    mpf::replicator::ReceiverOptions o;
    o.node = "b";
    o.peer = "a";
    o.endpoint = endpoint;
    o.conninfo = b.conninfo();
    o.security.curve = false;
    mpf::replicator::Receiver receiver(ctx, o);
    REQUIRE(receiver.bind());
    std::jthread serving([&](std::stop_token st) { receiver.run(st); });

    Source s1(ctx, endpoint, 101);
    CHECK(s1.open(*tables).is_zero());
    s1.send(wire::Batch{s1.session_id, s1.next_seq++, batches[0]});
    auto ack = s1.receive();
    REQUIRE(ack);
    REQUIRE(std::holds_alternative<wire::Ack>(*ack));

    // b's database drops the applier's connection (as a restart with -m immediate does).
    {
      pqxx::connection admin(b.conninfo());
      pqxx::nontransaction tx(admin);
      tx.exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    }
    // The source's next session (a new connection) says Hello and is refused ...
    Source s2(ctx, endpoint, 202);
    s2.send(s2.hello(*tables));
    auto refused = s2.receive();
    REQUIRE(refused);
    CHECK(std::holds_alternative<wire::Refuse>(*refused));
    // ... while a batch of the old connection, queued behind it, still arrives.
    s1.send(wire::Batch{s1.session_id, s1.next_seq++, batches[1]});
    std::this_thread::sleep_for(300ms);

    // The receiver is alive and the next session resumes from what b committed.
    Source s3(ctx, endpoint, 303);
    mpf::Position applied = s3.open(*tables);
    CHECK(applied == batches[0].back().position);
    for (size_t i = 1; i < batches.size(); ++i) {
      s3.send(wire::Batch{s3.session_id, s3.next_seq++, batches[i]});
    }
    for (size_t i = 1; i < batches.size(); ++i) {
      auto m = s3.receive();
      REQUIRE(m);
      REQUIRE_MESSAGE(std::holds_alternative<wire::Ack>(*m), wire::message_name(*m));
    }
    CHECK(mpf::test::check_same_content(a.conninfo(), b.conninfo()));
    serving.request_stop();
  }
}
