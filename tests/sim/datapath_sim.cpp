// The data-path simulation (datapath_sim.hpp). The pumps below do for the simulation what
// Shipper::run and Receiver::apply_loop do for the daemon: carry out the session classes'
// actions. The rules themselves are not copied here; they are the production classes.
#include "sim/datapath_sim.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string_view>

#include <mpf/replicator/applier.hpp>
#include <mpf/replicator/log_source.hpp>
#include <mpf/replicator/receiver_session.hpp>
#include <mpf/replicator/shipper_session.hpp>
#include <mpf/replicator/wire.hpp>

namespace mpf::sim::datapath {
namespace {

using namespace std::chrono_literals;
using replicator::ChangeBatch;
using replicator::ReceiverAction;
using replicator::ReceiverSession;
using replicator::RowChange;
using replicator::ShipperAction;
using replicator::ShipperSession;
using replicator::TableDef;
using replicator::TxChunk;
namespace wire = replicator::wire;

constexpr Duration kStep = 5ms;
constexpr size_t kTraceLines = 400;

std::string ms_text(TimePoint t) {
  return std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()) +
         "ms";
}

// ---- the change log: durable committed transactions, ordered by windows ----------------------

struct LogTx {
  uint64_t txid = 0;
  Position position;
  std::vector<RowChange> changes;
};

// One node's mpfailover.change_log with the reader's commit-order rules (docs/design.md §1): a
// transaction's position is (the window it became visible in, its last change number), so one
// that took its numbers early and committed late sorts after the later-numbered ones committed
// before it.
struct MemLog {
  std::deque<LogTx> entries;    // ticked, by position; trimmed from the front
  std::vector<LogTx> unticked;  // committed, not yet seen by a window
  std::vector<Position> order;  // every ticked transaction's position, never trimmed (checks)
  int64_t tick = 0;
  int64_t next_seq = 1;
  uint64_t next_txid = 1;
  Position trimmed_through;  // the highest position trimmed
  Break inject = Break::kNone;

  void close_window() {
    if (unticked.empty()) return;
    ++tick;
    std::sort(unticked.begin(), unticked.end(),
              [](const LogTx& a, const LogTx& b) { return a.position.seq < b.position.seq; });
    for (auto& t : unticked) {
      t.position.tick = tick;
      order.push_back(t.position);
      entries.push_back(std::move(t));
    }
    unticked.clear();
  }

  void trim(Position upto) {
    while (!entries.empty() && entries.front().position <= upto) {
      trimmed_through = entries.front().position;
      entries.pop_front();
    }
    if (inject == Break::kTrimPastAck && !entries.empty() && !upto.is_zero()) {
      trimmed_through = entries.front().position;  // the bug: one transaction too many
      entries.pop_front();
    }
  }
};

// The shipper's LogSource over a MemLog: whole transactions up to max_changes, a larger one alone
// in parts, exactly as LogSource promises.
class MemReader final : public replicator::LogSource {
 public:
  MemReader(MemLog& log, const bool& db_down, std::string origin)
      : log_(log), db_down_(db_down), origin_(std::move(origin)) {}

  Status seek(Position after) override {
    if (db_down_) return unavailable("database connection lost");
    if (after < log_.trimmed_through) {
      return failed_precondition("the log is trimmed past " + after.to_string() + " (up to " +
                                 log_.trimmed_through.to_string() + ")");
    }
    after_ = after;
    offset_ = 0;
    part_ = 0;
    if (log_.inject == Break::kResumeLate) {  // the bug: one transaction later than asked
      log_.close_window();
      if (auto it = first_after(); it != log_.entries.end()) after_ = it->position;
    }
    return Status::ok();
  }

  Result<ChangeBatch> next_batch(size_t max_changes) override {
    if (db_down_) return unavailable("database connection lost");
    log_.close_window();
    ChangeBatch out;
    size_t n = 0;
    for (auto it = first_after(); it != log_.entries.end(); ++it) {
      const LogTx& t = *it;
      const size_t size = t.changes.size();
      if (offset_ == 0 && size <= max_changes - n) {
        out.chunks.push_back(chunk(t, 0, size, 0, true));
        n += size;
        after_ = t.position;
        if (n == max_changes) break;
        continue;
      }
      if (n > 0) break;  // a transaction that does not fit waits for the next batch
      const size_t k = std::min(max_changes, size - offset_);
      const bool last = offset_ + k == size;
      out.chunks.push_back(chunk(t, offset_, k, part_++, last));
      offset_ += k;
      if (last) {
        after_ = t.position;
        offset_ = 0;
        part_ = 0;
      }
      break;
    }
    return out;
  }

 private:
  std::deque<LogTx>::iterator first_after() {
    return std::upper_bound(log_.entries.begin(), log_.entries.end(), after_,
                            [](Position p, const LogTx& t) { return p < t.position; });
  }
  TxChunk chunk(const LogTx& t, size_t from, size_t count, int32_t part, bool last) const {
    TxChunk c;
    c.position = t.position;
    c.txid = t.txid;
    c.origin = origin_;
    c.total_changes = static_cast<int64_t>(t.changes.size());
    c.part = part;
    c.last = last;
    c.changes.assign(t.changes.begin() + static_cast<std::ptrdiff_t>(from),
                     t.changes.begin() + static_cast<std::ptrdiff_t>(from + count));
    return c;
  }

  MemLog& log_;
  const bool& db_down_;
  std::string origin_;
  Position after_;
  size_t offset_ = 0;  // changes of the transaction after after_ already returned
  int32_t part_ = 0;
};

// ---- the applier: rows and the origin's position, durable together --------------------------

struct Durable {
  std::map<std::string, std::string> rows;
  Position position;
  std::vector<Position> applied;  // each transaction's position, in the order committed
};

class MemApplier final : public replicator::Applier {
 public:
  MemApplier(const bool& db_down, std::mt19937_64& rng, Break inject, Counters& counters)
      : db_down_(db_down), rng_(rng), inject_(inject), counters_(counters) {}

  Status bind(const std::string&, const std::vector<TableDef>& tables) override {
    staged_.clear();
    if (db_down_) {
      connected_ = false;
      return unavailable(
          "database connection lost: Could not obtain client encoding: not connected");
    }
    if (tables.size() != 1 || tables[0].relation != "public.t") {
      return invalid_argument("unknown tables in the Hello");
    }
    connected_ = true;
    return Status::ok();
  }

  Result<Position> applied_position() override {
    if (!connected_ || db_down_) return lost();
    return visible().position;
  }

  Result<Position> apply(const std::vector<TxChunk>& chunks) override {
    if (!connected_ || db_down_) return lost();
    flush();
    const int fault = static_cast<int>(rng_() % 1000);
    if (fault < 4) {  // the connection drops before the commit
      return lost();
    }
    for (const auto& c : chunks) {
      if (c.position <= visible().position) continue;  // applied before: exactly once
      if (c.part > 0 && (staged_.empty() || staged_.back().position != c.position)) {
        // A later part without the earlier ones (they went with a lost connection): the sender
        // must resend from the applied position. The receiver session never lets this happen.
        return internal_error("part " + std::to_string(c.part) + " of " + c.position.to_string() +
                              " without its earlier parts");
      }
      if (c.total_changes > static_cast<int64_t>(c.changes.size()) || c.part > 0) {
        ++counters_.split_parts;
      }
      staged_.push_back(c);
    }
    if (staged_.empty() || !staged_.back().last) return visible().position;
    Durable next = visible();
    for (const auto& c : staged_) {
      for (const auto& ch : c.changes) next.rows[*ch.key[0]] = *ch.image[1];
      if (c.last) {
        next.position = c.position;
        next.applied.push_back(c.position);
      }
    }
    staged_.clear();
    if (inject_ == Break::kAckBeforeCommit) {
      unflushed_ = std::move(next);  // the bug: reported now, made durable at the next call
    } else {
      durable = std::move(next);
    }
    if (fault < 6) {  // committed, but the answer is lost with the connection
      connected_ = false;
      return unknown_outcome("connection lost during COMMIT");
    }
    return visible().position;
  }

  void rollback() override { staged_.clear(); }

  void close() override {
    connected_ = false;
    staged_.clear();
    unflushed_.reset();  // never made durable
  }

  Durable durable;  // what survives a crash

 private:
  Result<Position> lost() {
    close();
    return unavailable("database connection lost: Could not obtain client encoding: not connected");
  }
  const Durable& visible() const { return unflushed_ ? *unflushed_ : durable; }
  void flush() {
    if (unflushed_) durable = std::move(*unflushed_);
    unflushed_.reset();
  }

  const bool& db_down_;
  std::mt19937_64& rng_;
  Break inject_;
  Counters& counters_;
  bool connected_ = false;
  std::vector<TxChunk> staged_;
  std::optional<Durable> unflushed_;
};

// ---- the network ------------------------------------------------------------------------------

struct Frame {
  uint64_t conn = 0;
  bool to_receiver = true;
  std::string bytes;
  TimePoint at{};
  uint64_t order = 0;
};

// One shipper session's TCP connection (a DEALER to the peer's ROUTER).
struct Conn {
  uint64_t id = 0;
  int shipper = 0;  // node index of the source
  bool connected = false;
  bool dead = false;                   // cut or crashed: nothing more goes through
  bool shipper_closed = false;         // the source's socket is closed (session ended)
  std::optional<TimePoint> notice_at;  // the source's socket monitor sees the disconnect
  std::vector<std::string> queued;     // sent before the TCP connect
  TimePoint last_at[2]{};              // FIFO per direction
};

struct Client {
  uint64_t txid = 0;
  std::vector<RowChange> changes;
  TimePoint commit_at{};
  bool big = false;
};

struct Node {
  std::string name;
  bool up = true;
  TimePoint up_at{};
  bool db_down = false;
  TimePoint db_up_at{};
  MemLog log;
  std::unique_ptr<MemReader> reader;
  std::unique_ptr<MemApplier> applier;
  std::map<std::string, std::string> rows;  // this node's own writes, committed
  std::set<std::string> locked;             // keys written by open transactions
  std::vector<Client> clients;
  // Shipper pump.
  std::unique_ptr<ShipperSession> ship;
  uint64_t ship_conn = 0;
  std::unique_ptr<wire::Encoder> ship_enc;
  std::unique_ptr<wire::Decoder> ship_dec;
  TimePoint next_attempt{};
  // Receiver pump.
  std::unique_ptr<ReceiverSession> recv;
  std::unique_ptr<wire::Encoder> recv_enc;
  std::unique_ptr<wire::Decoder> recv_dec;
  std::deque<Frame> inbox;
  size_t checked = 0;  // applied positions already checked against the peer's order
};

class World {
 public:
  explicit World(const Config& c) : c_(c), rng_(c.seed) {
    for (int i = 0; i < 2; ++i) {
      auto& n = nodes_[i];
      n.name = i == 0 ? "a" : "b";
      n.log.inject = c.inject;
      n.reader = std::make_unique<MemReader>(n.log, n.db_down, n.name);
      n.applier = std::make_unique<MemApplier>(n.db_down, rng_, c.inject, counters_);
      n.recv =
          std::make_unique<ReceiverSession>(replicator::ReceiverSessionOptions{.node = n.name});
      n.recv_enc = std::make_unique<wire::Encoder>();
      n.recv_dec = std::make_unique<wire::Decoder>();
    }
  }

  RunResult run() {
    const TimePoint end = TimePoint{} + c_.length;
    big_at_ = TimePoint{} + c_.length / 5;
    while (now_ < end && violations_.empty()) step(true);
    // The faults stop, the clients finish: everything must arrive, once.
    heal();
    const TimePoint quiet_end = now_ + 120s;
    while (now_ < quiet_end && violations_.empty() && !converged()) step(false);
    if (violations_.empty()) check_converged();
    RunResult r;
    r.violations = violations_;
    counters_.simulated = now_ - TimePoint{};
    r.counters = counters_;
    for (const auto& line : trace_) r.trace += line + "\n";
    return r;
  }

 private:
  // ---- one step of simulated time ----
  void step(bool faults) {
    now_ += kStep;
    if (faults) inject_faults();
    for (int i = 0; i < 2; ++i) recover(i);
    for (int i = 0; i < 2; ++i) clients(i, faults);
    connect_and_deliver();
    for (int i = 0; i < 2; ++i) receiver_pump(i);
    for (int i = 0; i < 2; ++i) shipper_pump(i);
    check_now();
  }

  bool chance(double per_second) {
    const double p = per_second * std::chrono::duration<double>(kStep).count();
    return std::uniform_real_distribution<double>(0, 1)(rng_) < p;
  }
  Duration between(Duration lo, Duration hi) {
    return lo +
           Duration(static_cast<int64_t>(rng_() % static_cast<uint64_t>((hi - lo).count() + 1)));
  }

  void trace(const std::string& line) {
    trace_.push_back(ms_text(now_) + " " + line);
    if (trace_.size() > kTraceLines) trace_.pop_front();
  }
  void violation(const std::string& what) {
    trace("VIOLATION " + what);
    violations_.push_back("t=" + ms_text(now_) + ": " + what);
  }

  // ---- faults ----
  void inject_faults() {
    if (now_ >= cut_until_ && chance(c_.cut_rate)) {
      cut_until_ = now_ + between(500ms, 8s);
      ++counters_.cuts;
      trace("link cut until " + ms_text(cut_until_));
      for (auto& [id, conn] : conns_) kill(conn, rng_() % 3 != 0);
    }
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      if (n.up && chance(c_.crash_rate)) crash(i);
      if (n.up && !n.db_down && chance(c_.db_restart_rate)) {
        n.db_down = true;
        n.db_up_at = now_ + between(200ms, 4s);
        ++counters_.db_restarts;
        trace(n.name + ": PostgreSQL stopped -m immediate, back at " + ms_text(n.db_up_at));
        lose_uncommitted(n);
      }
    }
  }

  // The connection breaks; the source's monitor notices (`noticed`) after a while, or only its
  // ack timeout does.
  // A connection not yet connected is not killed: its socket keeps retrying the connect. A
  // disconnect not noticed at once is noticed by the ZMTP heartbeat (60 s).
  void kill(Conn& conn, bool noticed) {
    if (conn.dead || !conn.connected) return;
    conn.dead = true;
    conn.notice_at = now_ + (noticed ? between(50ms, 2s) : 60s);
  }

  void lose_uncommitted(Node& n) {
    for (const auto& c : n.clients) {
      for (const auto& ch : c.changes) n.locked.erase(*ch.key[0]);
    }
    n.clients.clear();
    n.applier->close();  // the database dropped the connection
  }

  void crash(int i) {
    Node& n = nodes_[i];
    n.up = false;
    n.up_at = now_ + between(300ms, 6s);
    ++counters_.crashes;
    trace(n.name + ": host crash, back at " + ms_text(n.up_at));
    lose_uncommitted(n);
    n.ship.reset();
    n.recv = std::make_unique<ReceiverSession>(replicator::ReceiverSessionOptions{.node = n.name});
    n.inbox.clear();
    for (auto& [id, conn] : conns_) {
      if (conn.shipper == i) {
        conn.dead = true;
        conn.shipper_closed = true;
      } else if (conn.connected) {
        kill(conn, true);  // the restarted host answers with a reset
      }
    }
  }

  void recover(int i) {
    Node& n = nodes_[i];
    if (!n.up && now_ >= n.up_at) {
      n.up = true;
      n.db_down = false;
      n.next_attempt = now_;
      trace(n.name + ": up");
    }
    if (n.db_down && now_ >= n.db_up_at) {
      n.db_down = false;
      trace(n.name + ": PostgreSQL up");
    }
  }

  void heal() {
    cut_until_ = now_;
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      n.up_at = std::min(n.up_at, now_);
      n.db_up_at = std::min(n.db_up_at, now_);
      for (auto& c : n.clients) c.commit_at = std::min(c.commit_at, now_);
    }
    trace("faults stop");
  }

  // ---- clients ----
  void clients(int i, bool writing) {
    Node& n = nodes_[i];
    if (!n.up || n.db_down) return;
    // Commits: in commit_at order, each a durable log entry and the node's rows.
    for (size_t k = 0; k < n.clients.size();) {
      if (n.clients[k].commit_at > now_) {
        ++k;
        continue;
      }
      Client c = std::move(n.clients[k]);
      n.clients.erase(n.clients.begin() + static_cast<std::ptrdiff_t>(k));
      LogTx t;
      t.txid = c.txid;
      t.position = {0, c.changes.back().seq};
      for (const auto& ch : c.changes) {
        n.rows[*ch.key[0]] = *ch.image[1];
        n.locked.erase(*ch.key[0]);
      }
      t.changes = std::move(c.changes);
      counters_.changes += t.changes.size();
      ++counters_.transactions;
      n.log.unticked.push_back(std::move(t));
    }
    if (!writing) return;
    if (i == 0 && c_.big_transaction > 0 && !big_done_ && now_ >= big_at_) {
      big_done_ = true;  // one large transaction, held open over several windows
      begin(n, c_.big_transaction, now_ + 3s, true);
    }
    if (chance(i == 0 ? 40.0 : 10.0)) {
      const bool held = rng_() % 50 == 0;  // a transaction held open while others commit
      begin(n, 1 + static_cast<int64_t>(rng_() % 4),
            now_ + (held ? between(1s, 8s) : between(0ms, 60ms)), false);
    }
  }

  void begin(Node& n, int64_t changes, TimePoint commit_at, bool big) {
    Client c;
    c.txid = n.log.next_txid++;
    c.commit_at = commit_at;
    c.big = big;
    for (int64_t k = 0; k < changes; ++k) {
      const std::string key =
          big ? n.name + ":big:" + std::to_string(k) : n.name + ":" + std::to_string(rng_() % 300);
      if (!big && n.locked.count(key)) continue;  // row locked by an open transaction
      n.locked.insert(key);
      RowChange ch;
      ch.op = replicator::Op::kUpdate;
      ch.seq = n.log.next_seq++;
      ch.key = {key};
      ch.image = {key, std::to_string(c.txid) + "." + std::to_string(ch.seq)};
      c.changes.push_back(std::move(ch));
    }
    if (c.changes.empty()) return;
    n.clients.push_back(std::move(c));
  }

  // ---- network ----
  bool link_up() const { return now_ >= cut_until_; }

  void send(Conn& conn, bool to_receiver, std::string bytes) {
    if (conn.dead) return;
    if (!conn.connected) {
      if (to_receiver) conn.queued.push_back(std::move(bytes));
      return;
    }
    ++counters_.frames;
    const int dir = to_receiver ? 0 : 1;
    TimePoint at = std::max(now_ + between(1ms, 20ms), conn.last_at[dir]);
    if (rng_() % 100 == 0) {
      // The connection stalls (a congested link): this frame and those behind it wait, so the
      // source may give up on the session while its frames are still on the way.
      at += between(0ms, 3s);
    }
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < c_.frame_fault) {
      ++counters_.frame_faults;
      switch (rng_() % 3) {
        case 0:
          trace("frame dropped on c" + std::to_string(conn.id));
          return;
        case 1:
          trace("frame duplicated on c" + std::to_string(conn.id));
          flight_.push_back({conn.id, to_receiver, bytes, at, order_++});
          break;
        default:
          trace("frame delayed past the next on c" + std::to_string(conn.id));
          flight_.push_back({conn.id, to_receiver, std::move(bytes), at + 100ms, order_++});
          return;
      }
    }
    conn.last_at[dir] = at;
    flight_.push_back({conn.id, to_receiver, std::move(bytes), at, order_++});
  }

  void connect_and_deliver() {
    for (auto& [id, conn] : conns_) {
      Node& src = nodes_[conn.shipper];
      if (conn.notice_at && now_ >= *conn.notice_at) {
        conn.notice_at.reset();
        if (!conn.shipper_closed && src.ship && src.ship_conn == id) {
          carry_out(conn.shipper, src.ship->on_disconnected());
        }
      }
      if (!conn.connected && !conn.dead && !conn.shipper_closed && link_up() &&
          nodes_[1 - conn.shipper].up && src.ship && src.ship_conn == id) {
        conn.connected = true;
        carry_out(conn.shipper, src.ship->on_connected(now_));
        for (auto& q : conn.queued) send(conn, true, std::move(q));
        conn.queued.clear();
      }
    }
    std::stable_sort(flight_.begin(), flight_.end(), [](const Frame& a, const Frame& b) {
      return a.at != b.at ? a.at < b.at : a.order < b.order;
    });
    size_t k = 0;
    for (; k < flight_.size() && flight_[k].at <= now_; ++k) {
      Frame& f = flight_[k];
      Conn& conn = conns_[f.conn];
      if (conn.dead) continue;
      if (f.to_receiver) {
        Node& target = nodes_[1 - conn.shipper];
        if (target.up) target.inbox.push_back(std::move(f));
      } else if (!conn.shipper_closed) {
        deliver_to_shipper(conn.shipper, f);
      }
    }
    flight_.erase(flight_.begin(), flight_.begin() + static_cast<std::ptrdiff_t>(k));
  }

  // ---- the receiver's pump (Receiver::apply_loop's job) ----
  static uint32_t frame_version(const std::string& bytes) {
    return bytes.size() > 3 && bytes[3] == 'C' ? 2 : 1;
  }

  void receiver_pump(int i) {
    Node& n = nodes_[i];
    if (!n.up) return;
    if (auto at = n.recv->retry_at()) {
      if (now_ < *at) return;  // frames wait in order, as the daemon's thread sleeps
      ++counters_.apply_retries;
      run_recv(i, n.recv->on_tick(now_));
      return;
    }
    while (!n.inbox.empty() && !n.recv->retry_at()) {
      Frame f = std::move(n.inbox.front());
      n.inbox.pop_front();
      const std::string routing = "c" + std::to_string(f.conn);
      const bool from_session = n.recv->routing_id() && *n.recv->routing_id() == routing;
      wire::Decoder scratch;
      auto msg = (from_session ? *n.recv_dec : scratch).decode(f.bytes);
      if (!msg) {
        run_recv(i, n.recv->on_undecodable(routing, msg.status().message()));
        continue;
      }
      if (auto* hello = std::get_if<wire::Hello>(&*msg)) {
        auto version = wire::negotiate_version(*hello);
        std::string refusal;
        if (!version) refusal = version.status().message();
        run_recv(i, n.recv->on_hello(routing, *hello, version ? *version : 0, refusal));
        continue;
      }
      auto* batch = std::get_if<wire::Batch>(&*msg);
      if (!batch) {
        run_recv(i, n.recv->on_unexpected(wire::message_name(*msg)));
        continue;
      }
      if (!from_session && n.recv->has_session()) ++counters_.late_frames;
      run_recv(i, n.recv->on_batch(routing, std::move(*batch), frame_version(f.bytes), false));
      // Batches queued behind it from the same session join its group.
      while (!n.inbox.empty() && n.recv->routing_id() &&
             n.recv->group_changes() < ReceiverSession::kMaxGroupChanges &&
             "c" + std::to_string(n.inbox.front().conn) == *n.recv->routing_id()) {
        auto peek = n.recv_dec->decode(n.inbox.front().bytes);
        auto* b = peek ? std::get_if<wire::Batch>(&*peek) : nullptr;
        if (!b || !n.recv->joins_group(routing, *b, frame_version(n.inbox.front().bytes))) {
          // Not part of the group: the real pump keeps the decoded frame for later; here the
          // decoder has consumed it, so it is handled now, after the group.
          Frame next = std::move(n.inbox.front());
          n.inbox.pop_front();
          run_recv(i, n.recv->end_group(now_));
          handle_decoded(i, next, std::move(peek));
          return;
        }
        const uint32_t v = frame_version(n.inbox.front().bytes);
        n.inbox.pop_front();
        run_recv(i, n.recv->on_batch(routing, std::move(*b), v, false));
      }
      run_recv(i, n.recv->end_group(now_));
    }
  }

  // A frame decoded while gathering a group that turned out not to join it.
  void handle_decoded(int i, const Frame& f, Result<wire::Message> msg) {
    Node& n = nodes_[i];
    const std::string routing = "c" + std::to_string(f.conn);
    if (!msg) {
      run_recv(i, n.recv->on_undecodable(routing, msg.status().message()));
      return;
    }
    if (auto* hello = std::get_if<wire::Hello>(&*msg)) {
      auto version = wire::negotiate_version(*hello);
      run_recv(i, n.recv->on_hello(routing, *hello, version ? *version : 0,
                                   version ? "" : version.status().message()));
      return;
    }
    if (auto* b = std::get_if<wire::Batch>(&*msg)) {
      run_recv(i, n.recv->on_batch(routing, std::move(*b), frame_version(f.bytes), false));
      run_recv(i, n.recv->end_group(now_));
      return;
    }
    run_recv(i, n.recv->on_unexpected(wire::message_name(*msg)));
  }

  void run_recv(int i, ReceiverSession::Actions actions) {
    Node& n = nodes_[i];
    for (auto& a : actions) {
      switch (a.kind) {
        case ReceiverAction::Kind::kSend: {
          const uint64_t id = std::stoull(a.routing_id.substr(1));
          if (auto it = conns_.find(id); it != conns_.end()) {
            send(it->second, false, n.recv_enc->encode(a.message));
          }
          break;
        }
        case ReceiverAction::Kind::kBind:
          run_recv(i, n.recv->on_bound(n.applier->bind(a.origin, a.tables)));
          break;
        case ReceiverAction::Kind::kReadApplied:
          run_recv(i, n.recv->on_applied_position(n.applier->applied_position()));
          break;
        case ReceiverAction::Kind::kApply: {
          auto r = n.applier->apply(*a.group);
          if (!r && r.status().code() == Code::kInternal)
            violation(n.name + ": " + r.status().message());
          run_recv(i, n.recv->on_applied(r, now_, r ? Position{} : n.applier->failed_position()));
          break;
        }
        case ReceiverAction::Kind::kRollback:
          n.applier->rollback();
          break;
        case ReceiverAction::Kind::kCloseApplier:
          n.applier->close();
          break;
        case ReceiverAction::Kind::kOpened:
          n.recv_enc = std::make_unique<wire::Encoder>();
          n.recv_dec = std::make_unique<wire::Decoder>();
          trace(n.name + ": receiver session " + a.routing_id + " open at " +
                a.position.to_string());
          break;
        case ReceiverAction::Kind::kDrop:
          trace(n.name + ": frame dropped: " + a.reason);
          break;
        case ReceiverAction::Kind::kApplied:
        case ReceiverAction::Kind::kApplyStopped:
          break;
        case ReceiverAction::Kind::kLog:
          trace(n.name + ": " + a.reason);
          break;
      }
    }
  }

  // ---- the shipper's pump (Shipper::run's job) ----
  void deliver_to_shipper(int i, const Frame& f) {
    Node& n = nodes_[i];
    if (!n.up || !n.ship || n.ship_conn != f.conn) return;
    auto msg = n.ship_dec->decode(f.bytes);
    if (!msg) {
      carry_out(i, n.ship->fail("bad frame from peer: " + msg.status().message(), 250ms));
      return;
    }
    carry_out(i, n.ship->on_message(*msg, now_));
  }

  void shipper_pump(int i) {
    Node& n = nodes_[i];
    if (!n.up) return;
    if (!n.ship) {
      if (now_ < n.next_attempt) return;
      replicator::ShipperSessionOptions o;
      o.window = c_.window;
      n.ship = std::make_unique<ShipperSession>(o, rng_() | 1);
      n.ship_conn = next_conn_++;
      Conn& conn = conns_[n.ship_conn];
      conn.id = n.ship_conn;
      conn.shipper = i;
      n.ship_enc = std::make_unique<wire::Encoder>();
      n.ship_dec = std::make_unique<wire::Decoder>();
      ++counters_.sessions;
      trace(n.name + ": shipper session c" + std::to_string(conn.id));
      wire::Hello h;
      h.origin = n.name;
      h.target = nodes_[1 - i].name;
      h.session_id = n.ship->id();
      h.tables.push_back({"public.t", {"k", "v"}, {"k"}});
      send(conn, true, n.ship_enc->encode(h));
      return;
    }
    carry_out(i, n.ship->on_tick(now_));
    while (n.ship && n.ship->can_send()) {
      auto batch = n.reader->next_batch(c_.batch_changes);
      if (!batch) {
        carry_out(i, n.ship->fail(batch.status().message(), 1s));
        break;
      }
      if (batch->empty()) break;
      uint64_t txs = 0;
      for (const auto& ch : batch->chunks) txs += ch.last ? 1 : 0;
      const wire::Batch out = n.ship->make_batch(std::move(batch->chunks));
      auto frame = n.ship_enc->try_encode(out);
      if (!frame) {
        violation("encode: " + frame.status().message());
        return;
      }
      const size_t size = frame->size();
      send(conns_[n.ship_conn], true, std::move(*frame));
      n.ship->sent(size, txs, now_);
    }
  }

  void carry_out(int i, ShipperSession::Actions actions) {
    Node& n = nodes_[i];
    for (auto& a : actions) {
      if (!n.ship) return;
      switch (a.kind) {
        case ShipperAction::Kind::kUseVersion:
          if (auto s = n.ship_enc->use_version(a.version); !s) {
            carry_out(i, n.ship->fail(s.message(), 2s));
            return;
          }
          break;
        case ShipperAction::Kind::kSeek:
          if (auto s = n.reader->seek(a.position); !s) {
            trace(n.name + ": seek failed: " + s.message());
            carry_out(i, n.ship->fail(s.message(), 1s));
            return;
          }
          break;
        case ShipperAction::Kind::kAcked:
          n.log.trim(a.position);
          break;
        case ShipperAction::Kind::kStreaming:
          trace(n.name + ": LinkUp resume_from=" + a.position.to_string());
          break;
        case ShipperAction::Kind::kRecordApplyError:
          violation(n.name + ": the peer's apply stopped: " + a.reason);
          break;
        case ShipperAction::Kind::kEnd: {
          trace(n.name + ": shipper session ends: " + a.reason);
          Conn& conn = conns_[n.ship_conn];
          conn.shipper_closed = true;
          conn.queued.clear();
          n.ship.reset();
          n.next_attempt = now_ + a.backoff;
          return;
        }
      }
    }
  }

  // ---- invariants ----
  void check_now() {
    for (int i = 0; i < 2; ++i) {
      Node& origin = nodes_[i];
      Node& peer = nodes_[1 - i];
      const Durable& d = peer.applier->durable;
      // Exactly once, in commit order: the durable applied list is a prefix of the origin's
      // commit order.
      for (; peer.checked < d.applied.size(); ++peer.checked) {
        const size_t k = peer.checked;
        if (k >= origin.log.order.size() || origin.log.order[k] != d.applied[k]) {
          violation(peer.name + " applied " + d.applied[k].to_string() + " of " + origin.name +
                    " as its transaction #" + std::to_string(k + 1) + ", but " + origin.name +
                    "'s commit order has " +
                    (k < origin.log.order.size() ? origin.log.order[k].to_string()
                                                 : std::string("nothing")) +
                    " there (lost, duplicated or out of order)");
          return;
        }
      }
      if (origin.ship && origin.ship->acked() > d.position) {
        violation(origin.name + " holds " + origin.ship->acked().to_string() +
                  " as acknowledged but " + peer.name + " has durably applied only up to " +
                  d.position.to_string());
        return;
      }
      if (origin.log.trimmed_through > d.position) {
        violation(origin.name + " trimmed its log through " +
                  origin.log.trimmed_through.to_string() + " but " + peer.name +
                  " has durably applied only up to " + d.position.to_string());
        return;
      }
    }
  }

  bool converged() const {
    for (int i = 0; i < 2; ++i) {
      const Node& origin = nodes_[i];
      const Node& peer = nodes_[1 - i];
      if (!origin.clients.empty() || !origin.log.unticked.empty()) return false;
      if (peer.applier->durable.applied.size() != origin.log.order.size()) return false;
    }
    return true;
  }

  void check_converged() {
    for (int i = 0; i < 2; ++i) {
      const Node& origin = nodes_[i];
      const Node& peer = nodes_[1 - i];
      const Durable& d = peer.applier->durable;
      if (d.applied.size() != origin.log.order.size() || !origin.log.unticked.empty()) {
        violation("no convergence 120 s after the faults stopped: " + peer.name + " applied " +
                  std::to_string(d.applied.size()) + " of " + origin.name + "'s " +
                  std::to_string(origin.log.order.size() + origin.log.unticked.size()) +
                  " transactions");
        continue;
      }
      if (d.rows != origin.rows) {
        violation(peer.name + "'s copy of " + origin.name + "'s rows differs from " + origin.name +
                  "'s own");
      }
    }
  }

  Config c_;
  std::mt19937_64 rng_;
  Counters counters_;
  TimePoint now_{};
  TimePoint cut_until_{};
  TimePoint big_at_{};
  bool big_done_ = false;
  Node nodes_[2];
  std::map<uint64_t, Conn> conns_;
  uint64_t next_conn_ = 1;
  std::vector<Frame> flight_;
  uint64_t order_ = 0;
  std::vector<std::string> violations_;
  std::deque<std::string> trace_;
};

}  // namespace

Counters& Counters::operator+=(const Counters& o) {
  transactions += o.transactions;
  changes += o.changes;
  frames += o.frames;
  sessions += o.sessions;
  cuts += o.cuts;
  crashes += o.crashes;
  db_restarts += o.db_restarts;
  frame_faults += o.frame_faults;
  late_frames += o.late_frames;
  apply_retries += o.apply_retries;
  split_parts += o.split_parts;
  simulated += o.simulated;
  return *this;
}

Break break_from_env() {
  const char* v = std::getenv("MPF_SIM_BREAK");
  if (!v) return Break::kNone;
  const std::string_view s(v);
  if (s == "ack_before_commit") return Break::kAckBeforeCommit;
  if (s == "trim_past_ack") return Break::kTrimPastAck;
  if (s == "resume_late") return Break::kResumeLate;
  return Break::kNone;
}

const char* to_string(Break b) {
  switch (b) {
    case Break::kNone:
      return "none";
    case Break::kAckBeforeCommit:
      return "ack_before_commit";
    case Break::kTrimPastAck:
      return "trim_past_ack";
    case Break::kResumeLate:
      return "resume_late";
  }
  return "?";
}

RunResult run(const Config& config) { return World(config).run(); }

}  // namespace mpf::sim::datapath
