// NOTES: how `mpfailover resync` replaces a standby's data (the active's side and the exact
// snapshot boundary are in pg_snapshot_source.cpp; the protocol in docs/protocol.md "Snapshot
// copy").
//
// Order, and what each step prevents:
//   1. Refuse unless this node is standby and the peer up and active with the same definitions,
//      and unless this node's log is empty beyond the peer's acknowledgement (changes made here
//      and never shipped would be lost: --force discards them, recording each in
//      mpfailover.conflict, kind 'resync').
//   2. Hold the receiver (no apply, no session: the next one reads the stored position afresh)
//      and pause the shipper (this node's stream is renumbered below; nothing may be in flight).
//   3. The active opens its snapshot and says which position of its stream it holds (P) and how
//      far it has applied this node's stream (Pb), both as of the snapshot.
//   4. One transaction here, as the applier's session would (mpfailover.applying = on, so nothing
//      is captured and echoed back; replication origin "mpfailover_<peer>", so the rows count as
//      written by the peer and its next changes replace them without a conflict): TRUNCATE the
//      replicated tables (which also stops local writes until the commit), count the unshipped
//      changes again under that lock, replace the tombstones, copy every table chunk by chunk,
//      then store P as applied from the peer.
//   5. This node's own log restarts at Pb: every change it holds is either acknowledged or
//      discarded, so the rows visible in one snapshot are deleted and the ticks rewritten (all
//      with that snapshot, from Pb's window up to the newest tick id, never lower: the shipper's
//      reader remembers the newest tick it saw) so that the peer, resuming after Pb, reads
//      exactly what commits here later. If the peer's applied
//      position moved during the copy (a change of this node arrived after the snapshot), the
//      transaction rolls back instead: run it again.
//   6. Commit, release the receiver and shipper, then follow the catch-up from the peer's log.
#include <chrono>
#include <map>

#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/replicator/capture.hpp>
#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/replicator/receiver.hpp>
#include <mpf/replicator/shipper.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/resync_runner.hpp>
#include <mpf/server/verify/resync_plan.hpp>

#include "peer_client.hpp"
#include "pg_verify_source.hpp"

namespace mpf::server {

using json = nlohmann::json;
using namespace verify;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kChunkRows = 2000;
constexpr const char* kTombstones = "mpfailover.tombstone";
constexpr uint64_t kLiveMs = 1000;  // catch-up is done once the oldest waiting change is younger

// A failure the operator reads: the primary line, and what to do.
struct Refusal {
  std::string error;
  std::string hint;
};

std::string quote_relation(pqxx::connection& c, const std::string& relation) {
  const auto dot = relation.find('.');
  return c.quote_name(relation.substr(0, dot)) + "." + c.quote_name(relation.substr(dot + 1));
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

struct ResyncRunner::Job {
  bool force = false;
  std::string who;  // the operator who asked (the control socket's credentials)
  std::chrono::seconds catch_up_timeout{300};
};

ResyncRunner::ResyncRunner(const Config& config, replicator::Receiver& receiver,
                           replicator::Shipper& shipper)
    : config_(config), receiver_(receiver), shipper_(shipper) {}

ResyncRunner::~ResyncRunner() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

bool ResyncRunner::handles(const json& request) {
  const std::string cmd = request.value("command", "");
  return cmd == "resync" || cmd == "resync_status";
}

json ResyncRunner::handle(const json& request, const json& status) {
  const std::string cmd = request.value("command", "");
  std::lock_guard lock(mu_);
  if (cmd == "resync_status") {
    if (progress_.is_null()) return json{{"ok", false}, {"error", "no resync has run"}};
    json j = progress_;
    j["ok"] = true;
    return j;
  }
  const bool running = !progress_.is_null() && progress_.value("state", "") != "done" &&
                       progress_.value("state", "") != "failed";
  auto refuse = [](const std::string& error, const std::string& hint) {
    return json{{"ok", false}, {"error", error}, {"hint", hint}};
  };
  if (running) {
    return refuse("a resync is already running on node \"" + config_.node.name + "\"",
                  "follow it with mpfailover resync --json after it ends, or mpfailover status");
  }
  const std::string role = status.value("role", "");
  const std::string peer_state = status.value("peer_state", "");
  const std::string peer_role = status.contains("peer_role") && status["peer_role"].is_string()
                                    ? status["peer_role"].get<std::string>()
                                    : "unknown";
  if (role != "standby") {
    return refuse("resync refused: node \"" + config_.node.name + "\" is " + role +
                      ": resync replaces a standby's data with the active's",
                  "run it on the standby; on the active, nothing needs copying");
  }
  if (peer_state != "up" || peer_role != "active") {
    return refuse("resync refused: peer \"" + config_.peer.name + "\" is " + peer_state + " (" +
                      peer_role + "), not up and active",
                  "resync copies from the active over port " + std::to_string(config_.peer.port) +
                      ": start mpfailoverd there, or check the link (mpfailover status)");
  }
  if (!status.value("definitions_match_peer", true)) {
    return refuse("resync refused: catalog version or table definitions differ from peer \"" +
                      config_.peer.name + "\"",
                  "run mpfailover check, then mpfailover init-db where they differ");
  }
  if (thread_.joinable()) thread_.join();  // the previous job, finished
  job_ = std::make_unique<Job>();
  job_->force = request.value("force", false);
  job_->who = request.value("who", std::string("operator"));
  const double timeout = request.value("catch_up_timeout_s", 300.0);
  job_->catch_up_timeout = std::chrono::seconds(static_cast<int64_t>(std::max(0.0, timeout)));
  progress_ = json{{"state", "starting"},
                   {"node", config_.node.name},
                   {"peer", config_.peer.name},
                   {"force", job_->force},
                   {"tables", json::array()},
                   {"rows_copied", 0},
                   {"bytes_copied", 0},
                   {"discarded_changes", 0},
                   {"discarded_transactions", 0},
                   {"error", nullptr},
                   {"hint", nullptr}};
  thread_ = std::jthread([this](std::stop_token st) { run(st, *job_); });
  return json{{"ok", true}, {"message", "resync started"}};
}

void ResyncRunner::run(std::stop_token stop, Job& job) {
  const auto started = Clock::now();
  auto update = [&](auto&& f) {
    std::lock_guard lock(mu_);
    f(progress_);
  };
  auto state = [&](const std::string& s) { update([&](json& p) { p["state"] = s; }); };
  bool held = false;
  auto release = [&] {
    if (!held) return;
    receiver_.set_held(false);
    // The shipper stays paused if the node went standalone meanwhile (that pause is the role's).
    bool standalone = false;
    try {
      pqxx::connection c(config_.node.database);
      pqxx::nontransaction q(c);
      auto r = q.exec("SELECT role FROM mpfailover.node");
      standalone = !r.empty() && std::string(r[0][0].c_str()) == "standalone";
    } catch (const std::exception&) {
    }
    if (!standalone) shipper_.set_paused(false);
    held = false;
    spdlog::info("ResyncReleased node={} standalone={}", config_.node.name, standalone);
  };
  auto fail = [&](const Refusal& r) {
    spdlog::error("ResyncFailed node={} peer={} reason=\"{}\"", config_.node.name,
                  config_.peer.name, one_line(r.error));
    update([&](json& p) {
      p["state"] = "failed";
      p["error"] = r.error;
      p["hint"] = r.hint;
      p["seconds"] = seconds_since(started);
    });
  };
  const std::string peer_q = "peer \"" + config_.peer.name + "\"";
  const std::string unshipped_hint =
      "let them reach the peer first (mpfailover queue shows them), or run mpfailover resync "
      "--force to discard them (each is recorded in mpfailover.conflict, kind 'resync')";
  spdlog::info("ResyncStarted node={} peer={} force={}", config_.node.name, config_.peer.name,
               job.force);

  // 1. Unshipped changes here: a quick refusal before anything is touched (again under lock below).
  {
    BacklogReader reader(config_.node.database, config_.node.name, config_.peer.name);
    auto b = reader.read();
    if (!b) return fail({"could not read this node's backlog: " + b.status().message(), ""});
    update([&](json& p) { p["unshipped_transactions"] = b->transactions; });
    if (b->transactions > 0 && !job.force) {
      std::string tables;
      for (const auto& t : b->by_table)
        tables += (tables.empty() ? "" : ", ") + t.table + " " + std::to_string(t.rows);
      return fail({"resync refused: node \"" + config_.node.name + "\" has " +
                       std::to_string(b->transactions) + " transaction(s) (" +
                       std::to_string(b->rows) + " changed rows: " + tables +
                       ") not yet acknowledged by " + peer_q + ", which resync would discard",
                   unshipped_hint});
    }
  }

  // Same definitions on both: the copy writes the active's columns into this node's.
  PeerClient peer(config_);
  if (auto s = peer.open(); !s) return fail({"resync refused: " + s.message(), ""});
  auto facts = peer.ask(FactsRequest{});
  if (!facts) {
    return fail({"resync refused: " + facts.status().message(),
                 "resync copies from the active's daemon over port 2008 (mpfailover check)"});
  }
  PgVerifySource local(config_.node.database);
  auto mine = local_facts(config_, local);
  if (!mine) return fail({mine.status().message(), ""});
  auto local_tables = local.tables();
  if (!local_tables) return fail({local_tables.status().message(), ""});
  {
    std::map<std::string, std::string> theirs, here(mine->begin(), mine->end());
    if (auto* f = std::get_if<FactsAnswer>(&*facts))
      theirs.insert(f->facts.begin(), f->facts.end());
    if (theirs["node.name"] != config_.peer.name) {
      return fail({"resync refused: the node answering at " + config_.peer_endpoint() + " is \"" +
                       theirs["node.name"] + "\", not " + peer_q,
                   "run mpfailover check"});
    }
    for (const auto& [k, v] : here) {
      if ((k.rfind("table.", 0) == 0 || k == "catalog.version" || k == "replication.tables") &&
          theirs[k] != v) {
        return fail({"resync refused: \"" + k + "\" differs from " + peer_q + " (here \"" + v +
                         "\", there \"" + theirs[k] + "\")",
                     "run mpfailover check, then mpfailover init-db where definitions differ"});
      }
    }
  }

  // 2. Hold the receiver and pause the shipper.
  state("pausing");
  receiver_.set_held(true);
  shipper_.set_paused(true);
  held = true;
  const auto hold_deadline = Clock::now() + std::chrono::seconds(15);
  while (!(receiver_.quiet() && !shipper_.stats().connected)) {
    if (Clock::now() > hold_deadline || stop.stop_requested()) {
      release();
      return fail({"could not pause replication on node \"" + config_.node.name +
                       "\" within 15 s (the receiver is busy applying)",
                   "run resync again"});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // 3. The active's snapshot.
  state("snapshot");
  auto begun = peer.ask(SnapshotBegin{config_.node.name});
  if (!begun) {
    release();
    return fail({"the active could not open a snapshot: " + begun.status().message(),
                 "is " + peer_q + " active and at this version? (mpfailover check)"});
  }
  const auto* snap = std::get_if<SnapshotBeginAnswer>(&*begun);
  if (!snap) {
    release();
    return fail({peer_q + " answered a snapshot request with something else", ""});
  }
  const SnapshotBeginAnswer answer = *snap;
  auto end_snapshot = [&]() -> Result<Position> {
    auto r = peer.ask(SnapshotEnd{answer.snapshot_id});
    if (!r) return r.status();
    auto* e = std::get_if<SnapshotEndAnswer>(&*r);
    if (!e) return unavailable(peer_q + " answered the end of the snapshot with something else");
    return e->peer_applied;
  };
  {
    // Its tables must be this node's, in its order, then the tombstones.
    bool same = answer.tables.size() == local_tables->size() + 1 &&
                answer.tables.back().relation == kTombstones;
    for (size_t i = 0; same && i < local_tables->size(); ++i) {
      same = answer.tables[i].relation == (*local_tables)[i].relation &&
             answer.tables[i].columns == (*local_tables)[i].columns.size();
    }
    if (!same) {
      (void)end_snapshot();
      release();
      return fail({"the tables in " + peer_q + "'s snapshot are not this node's replicated tables",
                   "run mpfailover check, then mpfailover init-db where definitions differ"});
    }
  }
  update([&](json& p) {
    p["snapshot_position"] = answer.position.to_string();
    p["peer_applied_from_here"] = answer.peer_applied.to_string();
    for (const auto& t : answer.tables) {
      p["tables"].push_back({{"table", t.relation},
                             {"rows", 0},
                             {"estimated_rows", t.estimated_rows},
                             {"done", false}});
    }
  });
  spdlog::info("ResyncSnapshot peer={} position={} peer_applied_from_here={}", config_.peer.name,
               answer.position.to_string(), answer.peer_applied.to_string());

  // 4. One transaction: replace the content, store the position.
  state("copying");
  const auto copy_started = Clock::now();
  Refusal refusal;
  try {
    pqxx::connection conn(config_.node.database);
    conn.set_client_encoding("UTF8");  // the copy arrives in UTF8 (PROTOCOL.md, "Encoding")
    {
      pqxx::nontransaction q(conn);
      q.exec(
          "SET default_transaction_read_only = off; SET DateStyle = 'ISO, YMD'; "
          "SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET lock_timeout = '30s'; "
          "SET application_name = 'mpfailover resync'");
      const std::string roname = "mpfailover_" + config_.peer.name;
      q.exec_params(
          "SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
          "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
          roname);
      q.exec_params("SELECT pg_replication_origin_session_setup($1)", roname);
    }
    pqxx::work tx(conn);
    // As the applier (#12): a replica session, so the copy fires no ordinary trigger.
    tx.exec(std::string("SET LOCAL ") + replicator::kApplyingSetting +
            " = 'on'; SET LOCAL session_replication_role = replica; SET CONSTRAINTS ALL DEFERRED");
    std::string all;
    for (const auto& t : *local_tables)
      all += (all.empty() ? "" : ", ") + quote_relation(conn, t.relation);
    tx.exec("TRUNCATE " + all);

    // Unshipped changes, exactly: writes to the replicated tables wait for this transaction now.
    Position acked;
    auto ack = tx.exec_params("SELECT tick, seq FROM mpfailover.peer_ack WHERE peer = $1",
                              config_.peer.name);
    if (!ack.empty()) acked = Position{ack[0][0].as<int64_t>(), ack[0][1].as<int64_t>()};
    const std::string cte = replicator::waiting_changes_cte(acked);
    auto waiting =
        tx.exec(cte + " SELECT count(*), coalesce(sum(rows), 0)::bigint FROM waiting_tx");
    const int64_t waiting_tx = waiting[0][0].as<int64_t>();
    if (waiting_tx > 0 && !job.force) {
      throw Refusal{
          "resync refused: node \"" + config_.node.name + "\" has " + std::to_string(waiting_tx) +
              " transaction(s) (" + std::to_string(waiting[0][1].as<int64_t>()) +
              " changed rows) not yet acknowledged by " + peer_q + ", which resync would discard",
          unshipped_hint};
    }
    if (waiting_tx > 0) {
      auto recorded = tx.exec(
          cte +
          " INSERT INTO mpfailover.conflict (relation, key, kind, winner_origin, loser_origin, "
          "loser_hlc, loser_op, loser_image, reason) "
          "SELECT coalesce(r.relation, 'table ' || l.table_id), l.key, 'resync', " +
          tx.quote(config_.peer.name) +
          ", l.origin, l.hlc, l.op, l.image, 'resync --force: made here, not acknowledged by "
          "the peer; this node took the active''s data instead' "
          "FROM mpfailover.change_log l JOIN waiting_tx w ON w.txid = l.txid "
          "LEFT JOIN mpfailover.replicated_table r ON r.table_id = l.table_id");
      update([&](json& p) {
        p["discarded_transactions"] = waiting_tx;
        p["discarded_changes"] = recorded.affected_rows();
      });
      spdlog::warn("ResyncDiscarding node={} transactions={} changes={}", config_.node.name,
                   waiting_tx, recorded.affected_rows());
    }
    tx.exec("DELETE FROM mpfailover.tombstone");

    uint64_t total_rows = 0, total_bytes = 0;
    for (size_t ti = 0; ti < answer.tables.size(); ++ti) {
      const auto& st = answer.tables[ti];
      std::string sql;
      if (st.relation == kTombstones) {
        sql =
            "INSERT INTO mpfailover.tombstone (relation, key, origin, txid, hlc, deleted_at) "
            "SELECT u.c1, u.c2::text[], u.c3, NULL, u.c4::bigint, u.c5::timestamptz "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) "
            "AS u(c1, c2, c3, c4, c5)";
      } else {
        const auto& def = (*local_tables)[ti];
        std::string cols, casts, params, names;
        for (size_t i = 0; i < def.columns.size(); ++i) {
          const std::string c = "c" + std::to_string(i + 1);
          cols += (i ? ", " : "") + conn.quote_name(def.columns[i]);
          casts += (i ? ", " : "") + ("u." + c + "::" + def.column_types[i]);
          params += (i ? ", " : "") + ("$" + std::to_string(i + 1) + "::text[]");
          names += (i ? ", " : "") + c;
        }
        // Identity columns keep the active's values (#12).
        sql = "INSERT INTO " + quote_relation(conn, def.relation) + " (" + cols +
              ") OVERRIDING SYSTEM VALUE SELECT " + casts + " FROM unnest(" + params + ") AS u(" +
              names + ")";
      }
      const std::string stmt = "mpf_resync_" + std::to_string(ti);
      conn.prepare(stmt, sql);
      uint64_t rows = 0;
      for (uint64_t chunk_no = 0;; ++chunk_no) {
        if (stop.stop_requested()) throw Refusal{"the daemon is stopping", "run resync again"};
        auto r = peer.ask(SnapshotFetch{answer.snapshot_id, st.relation, chunk_no, kChunkRows});
        if (!r) throw Refusal{"copying \"" + st.relation + "\": " + r.status().message(), ""};
        auto* chunk = std::get_if<SnapshotChunk>(&*r);
        if (!chunk || chunk->columns != st.columns) {
          throw Refusal{peer_q + " answered a chunk of \"" + st.relation + "\" with something else",
                        ""};
        }
        if (!chunk->rows.empty()) {
          std::vector<std::string> arrays;
          for (size_t c = 0; c < st.columns; ++c) {
            std::vector<std::optional<std::string>> column;
            column.reserve(chunk->rows.size());
            for (auto& row : chunk->rows) {
              if (row[c]) total_bytes += row[c]->size();
              column.push_back(std::move(row[c]));
            }
            arrays.push_back(text_array_literal(column));
          }
          tx.exec_prepared(stmt, pqxx::prepare::make_dynamic_params(arrays));
          rows += chunk->rows.size();
          total_rows += chunk->rows.size();
        }
        update([&](json& p) {
          p["tables"][ti]["rows"] = rows;
          p["tables"][ti]["done"] = chunk->last;
          p["rows_copied"] = total_rows;
          p["bytes_copied"] = total_bytes;
        });
        if (chunk->last) break;
      }
      spdlog::info("ResyncTableCopied table={} rows={}", st.relation, rows);
    }

    // 5. The active must not have applied anything of this node's after the snapshot.
    state("committing");
    auto applied_now = end_snapshot();
    if (!applied_now) throw Refusal{"ending the snapshot: " + applied_now.status().message(), ""};
    if (*applied_now != answer.peer_applied) {
      throw Refusal{"changes of node \"" + config_.node.name + "\" were applied on " + peer_q +
                        " during the copy (its applied position for this node moved from " +
                        answer.peer_applied.to_string() + " to " + applied_now->to_string() +
                        "); nothing was changed here",
                    "run mpfailover resync again"};
    }
    // This node's log restarts right after what the peer applied of it (see NOTES).
    tx.exec("LOCK TABLE mpfailover.tick IN EXCLUSIVE MODE");
    auto cleared = tx.exec(
        "WITH s AS (SELECT pg_current_snapshot() AS snap), d AS ("
        "  DELETE FROM mpfailover.change_log l USING s"
        "  WHERE l.txid < pg_snapshot_xmax(s.snap) AND pg_visible_in_snapshot(l.txid, s.snap)"
        "  RETURNING 1) "
        "SELECT s.snap::text, (SELECT count(*) FROM d) FROM s");
    const std::string snapshot_text = cleared[0][0].c_str();
    const int64_t newest =
        tx.exec("SELECT coalesce(max(tick_id), 0) FROM mpfailover.tick")[0][0].as<int64_t>();
    const TickRange ticks = resume_ticks(answer.peer_applied, newest);
    tx.exec("DELETE FROM mpfailover.tick");
    tx.exec_params(
        "INSERT INTO mpfailover.tick (tick_id, snapshot) "
        "SELECT i, $3::pg_snapshot FROM generate_series($1::bigint, $2::bigint) i",
        ticks.first, ticks.last, snapshot_text);
    tx.exec_params(
        "INSERT INTO mpfailover.peer_ack (peer, tick, seq) VALUES ($1, $2, $3) "
        "ON CONFLICT (peer) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
        "acked_at = now()",
        config_.peer.name, answer.peer_applied.tick, answer.peer_applied.seq);
    tx.exec_params("DELETE FROM mpfailover.peer_apply_error WHERE peer = $1", config_.peer.name);
    // Skips of the peer's transactions the copy holds are moot now.
    tx.exec_params(
        "UPDATE mpfailover.skip_request SET done_at = now() WHERE origin = $1 AND done_at IS NULL "
        "AND (tick, seq) <= ($2, $3)",
        config_.peer.name, answer.position.tick, answer.position.seq);
    tx.exec_params(
        "INSERT INTO mpfailover.applied_position (origin, tick, seq) VALUES ($1, $2, $3) "
        "ON CONFLICT (origin) DO UPDATE SET tick = EXCLUDED.tick, seq = EXCLUDED.seq, "
        "applied_at = now()",
        config_.peer.name, answer.position.tick, answer.position.seq);
    // The history row commits with the copy: it happened exactly when this commits.
    if (!tx.exec("SELECT to_regclass('mpfailover.history')")[0][0].is_null()) {
      HistoryEvent e;
      e.node = config_.node.name;
      e.event = "resync";
      e.who = job.who;
      e.why = job.force ? "resync --force" : "resync";
      e.applied_from_peer = answer.position.to_string();
      e.acked_by_peer = answer.peer_applied.to_string();
      json discarded;
      {
        std::lock_guard lock(mu_);
        discarded = progress_.value("discarded_transactions", 0);
      }
      e.detail = {{"rows_copied", total_rows},
                  {"discarded_transactions", discarded},
                  {"snapshot_position", answer.position.to_string()}};
      record_history(tx, e);
    }
    tx.commit();
    update([&](json& p) { p["copy_seconds"] = seconds_since(copy_started); });
    spdlog::info("ResyncCommitted node={} peer={} position={} rows={} seconds={:.3f}",
                 config_.node.name, config_.peer.name, answer.position.to_string(), total_rows,
                 seconds_since(copy_started));
  } catch (const Refusal& r) {
    refusal = r;
  } catch (const std::exception& e) {
    refusal = Refusal{"the copy failed and was rolled back: " + one_line(e.what()), ""};
  }
  if (!refusal.error.empty()) {
    (void)end_snapshot();
    release();
    return fail(refusal);
  }

  // 6. Replication resumes from the stored position; follow the catch-up.
  release();
  state("catching_up");
  const auto catch_started = Clock::now();
  const auto base = receiver_.stats().transactions;
  bool done = false;
  while (!stop.stop_requested()) {
    auto r = peer.ask(BacklogRequest{config_.node.name});
    const auto in = receiver_.stats();
    if (r) {
      if (auto* b = std::get_if<BacklogAnswer>(&*r)) {
        update([&](json& p) {
          p["backlog_transactions"] = b->transactions;
          p["backlog_rows"] = b->rows;
          p["backlog_oldest_age_s"] = b->oldest_age_ms / 1000.0;
          p["applied_from_peer"] = in.applied.to_string();
          p["applied_transactions"] = in.transactions - base;
        });
        if (in.connected && caught_up(b->transactions, b->oldest_age_ms, kLiveMs)) {
          done = true;
          break;
        }
      }
    }
    if (Clock::now() - catch_started > job.catch_up_timeout) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  update([&](json& p) {
    p["state"] = "done";
    p["caught_up"] = done;
    p["catch_up_seconds"] = seconds_since(catch_started);
    p["seconds"] = seconds_since(started);
  });
  spdlog::info("ResyncFinished node={} peer={} caught_up={} seconds={:.3f}", config_.node.name,
               config_.peer.name, done, seconds_since(started));
}

}  // namespace mpf::server
