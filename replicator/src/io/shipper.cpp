// NOTES: the shipper's session loop.
//
// ZeroMQ reconnects and buffers by itself (docs/design.md §6), which would hide a broken link and
// let frames of a dead session arrive later. So every session gets its own DEALER socket, closed
// with linger 0 when the session ends, and a socket monitor: a DISCONNECTED event ends the
// session at once. ZMTP heartbeats (1 s, 3 s timeout) turn a silently dropped link into such an
// event. While the link is cut, the socket retries TCP connects every ~350 ms (connect timeout
// 250 ms + reconnect interval 100 ms), so the Hello goes out, and the drain starts, well within a
// second of the link healing.
//
// New changes are noticed by a wake-up at commit: the capture module sends a datagram to an
// abstract Unix socket named after the database once a transaction that captured changes is
// visible (replicator/pgmodule/mpfailover_capture.c), and the shipper reads the log at once. The
// datagram is a hint: a read every safety_poll finds anything a lost one would have announced (a
// transaction that took its change numbers before the previous read and committed after it, a
// prepared transaction committed later), and the change counter (a sequence read) is polled every
// kWokenPoll to notice being caught up (switchover waits for that) and changes of a capture
// module that does not wake (an older one): the counter moved, so the log is read. Until a first
// wake-up has arrived, while change numbers are taken but not delivered (a transaction is
// running), the log itself is read at every poll for up to kHotReading: at the head of the log
// that is one statement (the reader closes and reads a window in one round trip), which returns
// the transaction as soon as it has committed. Without the wake socket (its name taken) the
// counter is polled every poll_interval, as before wake-ups existed. Polling every millisecond
// cost both databases 500-1000 round trips a second even when idle, and found a commit 0.5 ms
// late on average, several ms under load.
//
// Trim and tombstone GC run on their own thread with their own connection (the Trimmer below):
// a trim deletes a second's worth of log rows and took tens of ms, which on the shipping thread
// delayed every batch behind it. After a trim the trimmer vacuums the log: the log has no index
// and every poll scans it, so trimmed rows left for autovacuum (a minute's worth) made each poll
// cost about a millisecond of the source database's CPU. The shipping thread only hands the trimmer
// the peer's acked position; the trimmer also records it in peer_ack, so an ack costs the shipping
// thread no database round trip either. Trimming concurrently with reading is safe: the trimmer
// deletes only windows the peer acknowledged, which the reader has passed (it never reads behind
// the acked position: a session resumes from the peer's applied position, at or after every ack),
// and keeps the tick the acked window starts from, which a seek there checks.
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.hpp>

#include <mpf/core/text.hpp>
#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/replicator/shipper.hpp>
#include <mpf/replicator/shipper_session.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::replicator {
namespace {

using Clock = std::chrono::steady_clock;

mpf::TimePoint now_point() {
  return std::chrono::time_point_cast<mpf::Duration>(std::chrono::steady_clock::now());
}

uint64_t random_session_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t id = 0;
  while (id == 0) id = rng();
  return id;
}

// How long to keep reading at every poll while change numbers are taken but not delivered.
constexpr auto kHotReading = std::chrono::milliseconds(50);

// With wake-ups at commit: how often the change counter is read (to notice being caught up).
constexpr auto kWokenPoll = std::chrono::milliseconds(10);

// The capture module's wake-ups: an abstract Unix datagram socket (no file, no permissions; in
// this network namespace). Anyone there may send to it; a datagram only makes the shipper read
// the log sooner.
class WakeSocket {
 public:
  WakeSocket() = default;
  WakeSocket(const WakeSocket&) = delete;
  WakeSocket& operator=(const WakeSocket&) = delete;
  ~WakeSocket() { close(); }

  // Binds `name` unless bound to it already. False when it cannot (the name is taken: another
  // shipper on the same database); the shipper then polls.
  bool bind(const std::string& name) {
    if (fd_ >= 0 && name == name_) return true;
    close();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name.empty() || name.size() + 1 > sizeof(addr.sun_path)) return false;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
      ::close(fd);
      return false;
    }
    fd_ = fd;
    name_ = name;
    return true;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    name_.clear();
  }

  int fd() const { return fd_; }

  // Reads every datagram waiting; true when there was one.
  bool drain() {
    bool any = false;
    char buf[64];
    while (fd_ >= 0 && ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT) >= 0) any = true;
    return any;
  }

 private:
  int fd_ = -1;
  std::string name_;
};

std::chrono::milliseconds ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

// While the shipper sends a backlog, the trimmer trims at most this often: each trim scans the
// whole log (no index) and, in the large window an outage leaves, aggregates it per transaction
// to find the acknowledged ones, which cost the source's PostgreSQL ~0.3 s a second during a
// 100,000-transaction drain (a fifth of the machine's CPU on two cores). The rows wait a little
// longer; `mpfailover queue` counts from peer_ack, not from what is left in the log.
constexpr auto kBusyTrimInterval = std::chrono::seconds(10);

// The trimmer's wake-up for a changed acked position is coalesced to this period: peer_ack is
// for status and restarts (a session resumes from what the peer says it applied), not a
// per-transaction record.
constexpr auto kPeerAckStoreInterval = std::chrono::milliseconds(100);

}  // namespace

// Deletes acknowledged log entries (and old tombstones) and records the peer's acked position,
// on its own thread and database connection, so that neither ever delays a batch.
class Shipper::Trimmer {
 public:
  explicit Trimmer(const ShipperOptions& o) : o_(o) {}

  // The peer acknowledged everything up to `p`. Called by the shipping thread; never blocks on
  // the database.
  // `transactions`: whole transactions this ack covered, added to peer_ack's running total.
  // `busy`: the shipper has more of a backlog to send (trim less often, kBusyTrimInterval).
  void acked(Position p, uint64_t transactions = 0, bool busy = false) {
    {
      std::lock_guard lock(mu_);
      acked_ = p;
      acked_txs_ += transactions;
      busy_ = busy;
    }
    cv_.notify_one();
  }

  void run(std::stop_token stop) {
    std::unique_ptr<PgLogReader> db;
    Position stored, trimmed;
    Clock::time_point last_trim{};
    Clock::time_point last_store{};
    while (!stop.stop_requested()) {
      Position acked;
      uint64_t txs = 0;
      bool busy = false;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, stop, ms(o_.trim_interval), [&] { return acked_ != stored; });
        if (stop.stop_requested()) return;
        acked = acked_;
        txs = acked_txs_;
        busy = busy_;
      }
      try {
        if (!db) {
          PgLogReader::Options options;
          options.synchronous_commit = false;
          auto r = PgLogReader::open(o_.conninfo, options);
          if (!r) throw std::runtime_error(r.status().message());
          db = std::move(r.value());
        }
        const auto now = Clock::now();
        if (acked != stored) {
          if (now - last_store < kPeerAckStoreInterval) {
            pause(stop, kPeerAckStoreInterval - (now - last_store));
            continue;
          }
          if (auto s = db->store_peer_ack(o_.peer, acked, txs); !s)
            throw std::runtime_error(s.message());
          {
            std::lock_guard lock(mu_);
            acked_txs_ -= txs;
          }
          stored = acked;
          last_store = now;
        }
        const auto interval = busy ? std::max<Clock::duration>(o_.trim_interval, kBusyTrimInterval)
                                   : Clock::duration(o_.trim_interval);
        if (acked > trimmed && now - last_trim >= interval) {
          last_trim = now;
          auto n = db->trim(acked, o_.retention);
          if (!n) throw std::runtime_error(n.status().message());
          if (*n > 0) {
            if (auto s = db->vacuum_log(); !s) throw std::runtime_error(s.message());
          }
          auto gone = db->forget_tombstones(o_.tombstone_retention);
          if (!gone) throw std::runtime_error(gone.status().message());
          trimmed = acked;
          if (*n > 0 || *gone > 0) {
            spdlog::debug("Trimmed up_to={} changes={} tombstones={}", acked.to_string(), *n,
                          *gone);
          }
        }
      } catch (const std::exception& e) {
        spdlog::warn("TrimFailed reason=\"{}\"", one_line(e.what()));
        db.reset();
        pause(stop, std::chrono::seconds(1));
      }
    }
  }

 private:
  void pause(std::stop_token stop, Clock::duration d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, stop, d, [] { return false; });
  }

  const ShipperOptions& o_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  Position acked_;
  uint64_t acked_txs_ = 0;  // acknowledged transactions not yet added to peer_ack's total
  bool busy_ = false;
};

class Shipper::Session {
 public:
  Session(zmq::context_t& ctx, const ShipperOptions& o, const ShipperSessionOptions& rules)
      : core(rules, random_session_id()), o_(o), socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::connect_timeout, 250);
    socket_.set(zmq::sockopt::reconnect_ivl, 100);
    // ZMTP heartbeats only catch a link that died while idle: a PING queues behind the batches
    // already in the socket, which on a 128 kbit/s link takes many seconds. While batches are in
    // flight the acknowledgement stall timeout below does the job, adapted to the link.
    socket_.set(zmq::sockopt::heartbeat_ivl, 5000);
    socket_.set(zmq::sockopt::heartbeat_timeout, 60000);
    socket_.set(zmq::sockopt::heartbeat_ttl, 60000);
    socket_.set(zmq::sockopt::sndhwm, o.window + 4);
    const std::string monitor_addr = "inproc://mpf-shipper-monitor-" + std::to_string(id());
    if (zmq_socket_monitor(
            socket_.handle(), monitor_addr.c_str(),
            ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
      throw zmq::error_t();
    }
    monitor_ = zmq::socket_t(ctx, zmq::socket_type::pair);
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(monitor_addr);
    configure_client(socket_, o.security);
    socket_.connect(o.endpoint);
  }

  ~Session() { zmq_socket_monitor(socket_.handle(), nullptr, 0); }

  uint64_t id() const { return core.id(); }
  zmq::socket_t& socket() { return socket_; }
  zmq::socket_t& monitor() { return monitor_; }
  wire::Encoder& encoder() { return encoder_; }
  wire::Decoder& decoder() { return decoder_; }

  ShipperSession core;  // the session's rules (src/core/shipper_session.cpp)
  std::unordered_map<int32_t, int32_t> wire_table;  // catalog table_id -> Hello index

 private:
  const ShipperOptions& o_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  wire::Encoder encoder_;
  wire::Decoder decoder_;
};

Shipper::Shipper(zmq::context_t& context, ShipperOptions options)
    : context_(context), options_(std::move(options)) {}

Shipper::~Shipper() = default;

LinkStats Shipper::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Shipper::run(std::stop_token stop) {
  const ShipperOptions& o = options_;
  std::unique_ptr<PgLogReader> reader;
  std::unique_ptr<Session> session;
  Clock::time_point next_attempt = Clock::now();
  Clock::time_point last_read = Clock::now();
  int64_t seen_counter = -1;
  int64_t delivered_seq = 0;
  Clock::time_point undelivered_since{};
  Position acked;
  Trimmer trimmer(o);
  std::jthread trim_thread([&](std::stop_token st) { trimmer.run(st); });
  WakeSocket wake;
  bool wake_seen = false;     // wake-ups arrive: the counter is read every kWokenPoll only
  bool wake_pending = false;  // a wake-up arrived since the last read
  bool more = false;          // the reader holds more than its last batch: read again at once
  Clock::time_point last_counter{};
  const uint32_t max_version =
      o.max_protocol_version != 0 ? o.max_protocol_version : wire::kProtocolVersion;

  // The event log's drains: from a session's first batch to the first moment everything is
  // acknowledged (a backlog after an outage, or just the traffic of a fresh session).
  bool draining = false;
  std::optional<Clock::time_point> drain_since;
  uint64_t drain_txs = 0;
  auto mark_caught_up = [&](Clock::time_point t) {
    if (draining && drain_since) {
      spdlog::info("DrainFinished peer={} transactions={} seconds={:.3f}", o.peer, drain_txs,
                   std::chrono::duration<double>(Clock::now() - *drain_since).count());
    }
    draining = false;
    std::lock_guard lock(mu_);
    stats_.caught_up_at = std::chrono::time_point_cast<Duration>(t);
  };
  auto set_error = [&](const std::string& e) {
    std::lock_guard lock(mu_);
    stats_.last_error = one_line(e);
  };
  auto end_session = [&](const std::string& why, Duration backoff) {
    if (session && session->core.state() == ShipperSession::State::kStreaming) {
      spdlog::warn("LinkDown peer={} session={:x} reason=\"{}\"", o.peer, session->id(),
                   one_line(why));
    } else if (!why.empty()) {
      spdlog::debug("SessionEnded peer={} reason=\"{}\"", o.peer, one_line(why));
    }
    session.reset();
    next_attempt = Clock::now() + backoff;
    std::lock_guard lock(mu_);
    stats_.connected = false;
  };

  ShipperSessionOptions rules;
  rules.window = o.window;
  rules.max_version = max_version;
  rules.handshake_timeout = o.handshake_timeout;
  rules.ack_timeout = o.ack_timeout;
  rules.retry_interval = o.retry_interval;
  // Carries out the session's actions in order; stops at the first that fails (the session then
  // ends) or ends the session.
  auto carry_out = [&](ShipperSession::Actions actions) {
    for (auto& a : actions) {
      if (!session) return;
      switch (a.kind) {
        case ShipperAction::Kind::kUseVersion:
          if (auto s = session->encoder().use_version(a.version); !s) {
            spdlog::error("WelcomeRefused peer={} reason=\"{}\"", o.peer, one_line(s.message()));
            set_error(s.message());
            end_session(s.message(), std::chrono::seconds(2));
            return;
          }
          break;
        case ShipperAction::Kind::kSeek:
          if (auto s = reader->seek(a.position); !s) {
            end_session(s.message(), std::chrono::seconds(1));
            return;
          }
          delivered_seq = 0;
          seen_counter = -1;
          more = false;
          break;
        case ShipperAction::Kind::kAcked: {
          acked = a.position;
          trimmer.acked(acked, a.transactions, more);
          std::lock_guard lock(mu_);
          stats_.acked = acked;
          break;
        }
        case ShipperAction::Kind::kStreaming: {
          spdlog::info("LinkUp peer={} session={:x} resume_from={} protocol_version={}", o.peer,
                       session->id(), a.position.to_string(), a.version);
          draining = true;
          drain_since.reset();
          drain_txs = 0;
          std::lock_guard lock(mu_);
          stats_.connected = true;
          stats_.protocol_version = a.version;
          stats_.last_error.clear();
          break;
        }
        case ShipperAction::Kind::kRecordApplyError:
          spdlog::error("PeerApplyStopped peer={} position={} error=\"{}\"", o.peer,
                        a.position.to_string(), a.reason);
          set_error("apply on " + o.peer + " stopped at " + a.position.to_string() + ": " +
                    a.reason);
          if (auto s = reader->store_apply_error(o.peer, a.position, a.reason); !s) {
            spdlog::warn("ApplyErrorNotRecorded reason=\"{}\"", one_line(s.message()));
            reader.reset();
          }
          break;
        case ShipperAction::Kind::kEnd:
          if (!a.event.empty()) {
            spdlog::log(a.error ? spdlog::level::err : spdlog::level::warn,
                        "{} peer={} reason=\"{}\"", a.event, o.peer, one_line(a.reason));
          }
          if (!a.last_error.empty()) set_error(a.last_error);
          end_session(a.reason, a.backoff);
          return;
      }
    }
  };

  while (!stop.stop_requested()) {
    if (paused_) {
      if (session) end_session("replication paused: this node is standalone", o.retry_interval);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    try {
      if (!reader) {
        auto r = PgLogReader::open(o.conninfo);
        if (!r) {
          set_error(r.status().message());
          spdlog::error("ShipperDatabaseDown reason=\"{}\"", one_line(r.status().message()));
          std::this_thread::sleep_for(std::chrono::seconds(1));
          continue;
        }
        reader = std::move(r.value());
        if (auto name = reader->wake_name(); !name) {
          spdlog::debug("WakeUnavailable reason=\"{}\"", one_line(name.status().message()));
        } else if (!wake.bind(*name)) {
          spdlog::warn(
              "WakeUnavailable socket={} reason=\"cannot bind (another shipper on this "
              "database?); polling instead\"",
              *name);
          wake_seen = false;
        }
      }
      if (!session) {
        const auto now = Clock::now();
        if (now < next_attempt) {
          std::this_thread::sleep_for(
              std::min<Clock::duration>(next_attempt - now, std::chrono::milliseconds(50)));
          continue;
        }
        session = std::make_unique<Session>(context_, o, rules);
        // The Hello describes the tables as captured here; the batch refers to them by index.
        pqxx::connection conn(o.conninfo);
        auto tables = installed_tables(conn);
        if (!tables) {
          end_session(tables.status().message(), std::chrono::seconds(1));
          continue;
        }
        wire::Hello hello;
        hello.origin = o.node;
        hello.target = o.peer;
        hello.catalog_version = o.catalog_version;
        hello.session_id = session->id();
        hello.max_version = max_version;  // the pin: offer what the older release offers
        hello.software = o.software_version;
        for (size_t i = 0; i < tables->size(); ++i) {
          const auto& t = (*tables)[i];
          hello.tables.push_back({t.relation, t.columns, t.key_columns});
          session->wire_table[t.table_id] = static_cast<int32_t>(i);
        }
        session->socket().send(zmq::buffer(session->encoder().encode(hello)),
                               zmq::send_flags::dontwait);
        {
          std::lock_guard lock(mu_);
          ++stats_.sessions;
        }
      }

      // Wait for something to read, briefly when there may be changes to send.
      const bool can_send = session->core.can_send();
      zmq::pollitem_t items[] = {{session->socket().handle(), 0, ZMQ_POLLIN, 0},
                                 {session->monitor().handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
      // With the wake socket bound, the timer only backs the wake-ups up (see the NOTES).
      const bool wake_bound = wake.fd() >= 0;
      auto wait = std::chrono::milliseconds(20);
      if (can_send) {
        wait = more || wake_pending ? std::chrono::milliseconds(0)
               : wake_bound         ? kWokenPoll
                                    : ms(o.poll_interval);
      }
      zmq::poll(items, wake.fd() >= 0 ? 3 : 2, wait);
      if (wake.fd() >= 0 && (items[2].revents & ZMQ_POLLIN) && wake.drain()) {
        wake_pending = true;
        wake_seen = true;
      }

      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t event;
        zmq::message_t address;
        if (session->monitor().recv(event, zmq::recv_flags::dontwait) &&
            session->monitor().recv(address, zmq::recv_flags::dontwait)) {
          uint16_t kind = 0;
          if (event.size() >= 2) std::memcpy(&kind, event.data(), 2);
          if (kind == ZMQ_EVENT_CONNECTED) {
            carry_out(session->core.on_connected(now_point()));
          } else if (kind == ZMQ_EVENT_DISCONNECTED) {
            carry_out(session->core.on_disconnected());
          } else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                     kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                     kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            carry_out(session->core.on_handshake_failed(kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH));
          }
          if (!session) continue;
        }
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t frame;
        while (session && session->socket().recv(frame, zmq::recv_flags::dontwait)) {
          auto msg = session->decoder().decode(
              std::string_view(static_cast<const char*>(frame.data()), frame.size()));
          if (!msg) {
            carry_out(session->core.fail("bad frame from peer: " + msg.status().message(),
                                         o.retry_interval));
            break;
          }
          carry_out(session->core.on_message(*msg, now_point()));
        }
        if (!session) continue;
      }

      carry_out(session->core.on_tick(now_point()));
      if (!session || !session->core.can_send()) continue;

      // Send while the window has room and the log has something.
      while (session && session->core.can_send()) {
        const auto t = Clock::now();
        // A transaction took change numbers not delivered yet: poll the log itself.
        const bool hot = !wake_seen && undelivered_since != Clock::time_point{} &&
                         t - undelivered_since < kHotReading;
        bool read_now =
            seen_counter < 0 || t - last_read > o.safety_poll || hot || wake_pending || more;
        if (!read_now && (!wake_bound || t - last_counter >= kWokenPoll)) {
          last_counter = t;
          auto counter = reader->change_counter();
          if (!counter) {
            end_session(counter.status().message(), std::chrono::seconds(1));
            reader.reset();
            break;
          }
          if (*counter > delivered_seq) {
            // Change numbers taken but not delivered: committed since the last read, still
            // running, or rolled back. Read hot for a while, then leave it to the safety poll.
            if (undelivered_since == Clock::time_point{}) undelivered_since = t;
            read_now =
                *counter != seen_counter || (!wake_seen && t - undelivered_since < kHotReading);
          } else {
            undelivered_since = {};
          }
          seen_counter = *counter;
          if (*counter <= delivered_seq && session->core.inflight() == 0) mark_caught_up(t);
        }
        if (!read_now) break;
        last_read = t;
        wake_pending = false;  // this read's snapshot is later than every wake-up received
        auto batch = reader->next_batch(o.batch_changes);
        if (!batch) {
          set_error(batch.status().message());
          end_session(batch.status().message(), std::chrono::seconds(1));
          reader.reset();
          break;
        }
        more = !batch->empty() && reader->has_pending();
        if (batch->empty()) {
          if (seen_counter < 0) seen_counter = 0;
          // Everything committed before this read began is shipped; with nothing in flight it
          // is acknowledged too.
          if (session->core.inflight() == 0) mark_caught_up(t);
          break;
        }
        uint64_t txs = 0;
        size_t changes = 0;
        for (auto& chunk : batch->chunks) {
          for (auto& change : chunk.changes) {
            delivered_seq = std::max(delivered_seq, change.seq);
            change.table_id = session->wire_table.at(change.table_id);
          }
          txs += chunk.last ? 1 : 0;
          changes += chunk.changes.size();
        }
        // Everything numbered so far is delivered: back to the cheap counter poll. (A counter
        // read before this batch may not cover it: seen_counter is only a hint.)
        if (delivered_seq >= seen_counter) undelivered_since = {};
        const wire::Batch out = session->core.make_batch(std::move(batch->chunks));
        auto frame = session->encoder().try_encode(out);
        if (!frame) {
          end_session(frame.status().message(), o.retry_interval);
          break;
        }
        if (!session->socket().send(zmq::buffer(*frame), zmq::send_flags::dontwait)) {
          end_session("send queue full", o.retry_interval);
          break;
        }
        session->core.sent(frame->size(), txs, now_point());
        if (draining && !drain_since) {
          drain_since = Clock::now();
          spdlog::info("DrainStarted peer={} session={:x} from={}", o.peer, session->id(),
                       acked.to_string());
        }
        drain_txs += txs;
        std::lock_guard lock(mu_);
        ++stats_.batches;
        stats_.transactions += txs;
        stats_.changes += changes;
        stats_.wire_bytes += frame->size();
      }

    } catch (const std::exception& e) {
      set_error(e.what());
      spdlog::error("ShipperError reason=\"{}\"", one_line(e.what()));
      end_session(e.what(), std::chrono::seconds(1));
      reader.reset();
    }
  }
}

}  // namespace mpf::replicator
