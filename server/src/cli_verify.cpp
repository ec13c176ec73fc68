// mpfailover verify [--repair] and mpfailover check: this node against its peer, over the verify
// channel on port 2008 (server/src/verify/). The CLI itself connects to the peer's daemon as a
// CURVE client with this node's keys; this node's side is read from its own database.
//
// NOTES: repair.
// Direction is always active -> standby, and only on the standby: the standby asks the active for
// the differing rows as they are now and writes them in one transaction per row, with
// mpfailover.applying = on (capture ignores the session, so nothing echoes back) and the
// replication origin "mpfailover_repair" whose commit timestamp is set to the active row's own
// commit time. So a change of that row still on its way from the active (newer by the active's
// clock) wins over the repaired row by last-writer-wins, and an older one loses, as it would
// have against the row it repaired. Rows the active lacks are deleted (children first); rows are
// written parents first. Each repaired row goes to mpfailover.conflict, kind 'repair', with the
// standby's old row as the loser.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <arpa/inet.h>
#include <boost/program_options.hpp>
#include <ifaddrs.h>
#include <netdb.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <unistd.h>

#include <mpf/server/config.hpp>
#include <mpf/server/control_client.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/init_db.hpp>
#include <mpf/server/verify/check_facts.hpp>
#include <mpf/server/verify/narrower.hpp>

#include "cli_commands.hpp"
#include "verify/peer_client.hpp"
#include "verify/pg_verify_source.hpp"

namespace mpf::server::cli {
namespace {

namespace po = boost::program_options;
using json = nlohmann::json;
using namespace mpf::server::verify;
using Clock = std::chrono::steady_clock;

int fail(const std::string& message) {
  std::cerr << "mpfailover: " << message << "\n";
  return kExitFailed;
}

std::string key_text(const Key& k) {
  std::string out = "(";
  for (size_t i = 0; i < k.size(); ++i) out += (i ? ", " : "") + k[i];
  return out + ")";
}

// One line on stderr, rewritten in place, only on a terminal and only once a table takes a while.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO) != 0) {}
  void start(const std::string& table, uint64_t estimate) {
    table_ = table;
    estimate_ = estimate;
    started_ = Clock::now();
    last_ = {};
  }
  void update(uint64_t rows, size_t diffs) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (now - started_ < std::chrono::milliseconds(500) ||
        now - last_ < std::chrono::milliseconds(100)) {
      return;
    }
    last_ = now;
    shown_ = true;
    std::cerr << "\r\033[Kverify " << table_ << ": " << rows << " of ~" << std::max(estimate_, rows)
              << " rows";
    if (estimate_ > 0) std::cerr << " (" << std::min<uint64_t>(100, rows * 100 / estimate_) << "%)";
    std::cerr << ", " << diffs << " differing" << std::flush;
  }
  void clear() {
    if (shown_) std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::string table_;
  uint64_t estimate_ = 0;
  Clock::time_point started_;
  Clock::time_point last_;
};

struct TableResult {
  std::string relation;
  uint64_t rows = 0;  // this node's rows compared
  std::vector<Difference> differences;
};

// Runs the narrowing for one table; this node's side locally, the peer's over the channel.
Result<TableResult> verify_table(const std::string& relation, PgVerifySource& local,
                                 PeerClient& peer, const NarrowerOptions& options,
                                 Progress& progress) {
  auto estimate = local.estimated_rows(relation);
  progress.start(relation, estimate ? *estimate : 0);
  Narrower n(options);
  for (;;) {
    auto step = n.next();
    if (step.kind == Narrower::Step::Kind::kDone) break;
    if (step.kind == Narrower::Step::Kind::kSummarize) {
      if (step.side == Side::kLocal) {
        auto r = local.summarize(relation, step.summarize);
        if (!r) return r.status();
        n.on_summaries(*r);
      } else {
        auto r = peer.ask(SummarizeBatch{relation, step.summarize});
        if (!r) return r.status();
        auto* a = std::get_if<SummarizeAnswer>(&*r);
        if (!a || a->summaries.size() != step.summarize.size()) {
          return unavailable("the peer answered a range summary with something else");
        }
        n.on_summaries(a->summaries);
      }
    } else {
      if (step.side == Side::kLocal) {
        auto r = local.rows(relation, step.rows);
        if (!r) return r.status();
        n.on_rows(*r);
      } else {
        auto r = peer.ask(RowsBatch{relation, step.rows});
        if (!r) return r.status();
        auto* a = std::get_if<RowsAnswer>(&*r);
        if (!a || a->lists.size() != step.rows.size()) {
          return unavailable("the peer answered a key listing with something else");
        }
        n.on_rows(a->lists);
      }
    }
    progress.update(n.local_rows_settled(), n.differences().size());
  }
  progress.clear();
  return TableResult{relation, n.local_rows_settled(), n.differences()};
}

std::string join_types(const replicator::TableDef& t) {
  std::string out;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    out += (i ? ", " : "") + t.columns[i] + " " + t.column_types[i];
  }
  return out;
}

// Repairs one table's differences on this standby from the active peer.
struct RepairCount {
  uint64_t rows = 0;
  std::vector<std::string> errors;
};

Status setup_repair_session(pqxx::connection& conn) {
  try {
    pqxx::nontransaction q(conn);
    q.exec(
        "SELECT pg_replication_origin_create('mpfailover_repair') WHERE NOT EXISTS "
        "(SELECT 1 FROM pg_replication_origin WHERE roname = 'mpfailover_repair')");
    if (!q.exec("SELECT pg_replication_origin_session_is_setup()")[0][0].as<bool>()) {
      q.exec("SELECT pg_replication_origin_session_setup('mpfailover_repair')");
    }
    return Status::ok();
  } catch (const std::exception& e) {
    return unavailable(std::string("could not set up replication origin \"mpfailover_repair\" "
                                   "(is another verify --repair running?): ") +
                       e.what());
  }
}

void repair_rows(const Config& cfg, const replicator::TableDef& def, pqxx::connection& conn,
                 const std::vector<FetchedRow>& rows, RepairCount& count) {
  std::vector<std::string> keys_idx;
  for (const auto& k : def.key_columns) {
    keys_idx.push_back(k);
  }
  auto type_of = [&](const std::string& col) {
    for (size_t i = 0; i < def.columns.size(); ++i) {
      if (def.columns[i] == col) return def.column_types[i];
    }
    return std::string("text");
  };
  const auto dot = def.relation.find('.');
  const std::string table = conn.quote_name(def.relation.substr(0, dot)) + "." +
                            conn.quote_name(def.relation.substr(dot + 1));
  for (const auto& row : rows) {
    try {
      pqxx::work tx(conn);
      std::string key_cond = "(";
      std::string key_vals = "(";
      for (size_t i = 0; i < def.key_columns.size(); ++i) {
        key_cond += (i ? ", " : "") + tx.quote_name(def.key_columns[i]);
        key_vals += (i ? ", " : "") + tx.quote(row.key[i]) + "::" + type_of(def.key_columns[i]);
      }
      key_cond += ")";
      key_vals += ")";
      // As the applier (#12): a replica session, so the copied row fires no ordinary trigger.
      tx.exec(
          "SET LOCAL mpfailover.applying = 'on'; SET LOCAL session_replication_role = replica; "
          "SET CONSTRAINTS ALL DEFERRED");
      if (row.present && row.commit_us > 0) {
        tx.exec("SELECT pg_replication_origin_xact_setup('0/0', 'epoch'::timestamptz + " +
                std::to_string(row.commit_us) + " * interval '1 microsecond')");
      }
      std::string old_cols;
      for (size_t i = 0; i < def.columns.size(); ++i) {
        old_cols += (i ? ", " : "") + tx.quote_name(def.columns[i]) + "::text";
      }
      auto old = tx.exec("SELECT ARRAY[" + old_cols + "]::text FROM " + table + " WHERE " +
                         key_cond + " = " + key_vals + " FOR UPDATE");
      const bool here = !old.empty();
      char op = 'U';
      std::string reason;
      if (row.present) {
        std::vector<std::string> cols, vals, sets;
        for (size_t i = 0; i < def.columns.size(); ++i) {
          cols.push_back(tx.quote_name(def.columns[i]));
          vals.push_back(row.values[i] ? tx.quote(*row.values[i]) + "::" + def.column_types[i]
                                       : "NULL::" + def.column_types[i]);
          if (std::find(def.key_columns.begin(), def.key_columns.end(), def.columns[i]) ==
              def.key_columns.end()) {
            sets.push_back(cols.back() + " = EXCLUDED." + cols.back());
          }
        }
        std::string sql = "INSERT INTO " + table + " (";
        for (size_t i = 0; i < cols.size(); ++i) sql += (i ? ", " : "") + cols[i];
        sql += ") OVERRIDING SYSTEM VALUE VALUES (";  // identity columns keep their values
        for (size_t i = 0; i < vals.size(); ++i) sql += (i ? ", " : "") + vals[i];
        sql += ") ON CONFLICT " + key_cond + " DO ";
        if (sets.empty()) {
          sql += "NOTHING";
        } else {
          sql += "UPDATE SET ";
          for (size_t i = 0; i < sets.size(); ++i) sql += (i ? ", " : "") + sets[i];
        }
        tx.exec(sql);
        op = here ? 'U' : 'I';
        reason =
            here
                ? "verify --repair: row differed; copied from active \"" + cfg.peer.name + "\""
                : "verify --repair: row missing here; copied from active \"" + cfg.peer.name + "\"";
      } else {
        if (here) tx.exec("DELETE FROM " + table + " WHERE " + key_cond + " = " + key_vals);
        op = 'D';
        reason = "verify --repair: row absent on active \"" + cfg.peer.name + "\"; deleted here";
      }
      std::vector<std::optional<std::string>> key_values(row.key.begin(), row.key.end());
      tx.exec(
          "INSERT INTO mpfailover.conflict (relation, key, kind, winner_origin, winner_hlc, "
          "loser_origin, loser_op, loser_image, reason) VALUES (" +
          tx.quote(def.relation) + ", " + tx.quote(text_array_literal(key_values)) +
          "::text[], 'repair', " + tx.quote(cfg.peer.name) + ", " +
          (row.present && row.commit_us > 0 ? std::to_string(row.commit_us) : "NULL") + ", " +
          tx.quote(cfg.node.name) + ", " + tx.quote(std::string(1, op)) + ", " +
          (here ? tx.quote(old[0][0].as<std::string>()) + "::text[]" : "NULL") + ", " +
          tx.quote(reason) + ")");
      tx.commit();
      ++count.rows;
    } catch (const std::exception& e) {
      count.errors.push_back(def.relation + " " + key_text(row.key) + ": " + e.what());
    }
  }
}

struct Options {
  std::vector<std::string> tables;
  bool json_output = false;
  bool repair = false;
  bool yes = false;
  bool dry_run = false;
  uint64_t batch_rows = 1000;
};

// Resolves --table names ("users" or "public.users") against the catalog; empty: all.
Result<std::vector<replicator::TableDef>> pick_tables(const std::vector<replicator::TableDef>& all,
                                                      const std::vector<std::string>& wanted) {
  if (wanted.empty()) return all;
  std::vector<replicator::TableDef> out;
  for (const auto& w : wanted) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& t) {
      return t.relation == w || t.relation.substr(t.relation.find('.') + 1) == w;
    });
    if (it == all.end()) {
      return invalid_argument("table \"" + w + "\" is not replicated on this node");
    }
    out.push_back(*it);
  }
  return out;
}

std::string kind_text(Difference::Kind k, const Config& cfg) {
  switch (k) {
    case Difference::Kind::kMissingHere:
      return "missing here (only on \"" + cfg.peer.name + "\")";
    case Difference::Kind::kMissingThere:
      return "missing on \"" + cfg.peer.name + "\" (only here)";
    case Difference::Kind::kDifferent:
      return "different";
  }
  return "?";
}

}  // namespace

int cmd_verify(const std::string& config_path, const std::vector<std::string>& args) {
  Options o;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")(
      "table", po::value(&o.tables), "only this table (repeatable; default: every replicated one)")(
      "json", po::bool_switch(&o.json_output), "print the result as JSON")(
      "batch-rows", po::value(&o.batch_rows)->default_value(1000),
      "rows hashed per query at most (smaller is gentler, larger needs fewer round trips)")(
      "repair", po::bool_switch(&o.repair),
      "on the standby: copy the differing rows from the active (recorded in mpfailover.conflict)")(
      "yes", po::bool_switch(&o.yes), "with --repair: do not ask for a confirmation (scripts)")(
      "dry-run", po::bool_switch(&o.dry_run),
      "with --repair: compare and say what would be repaired, change nothing");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover verify: " << e.what() << "\nhint: mpfailover verify --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] verify [--table T] [--json] [--batch-rows N] "
                 "[--repair [--yes] [--dry-run]]\n\n"
                 "Compares this node's replicated tables with the peer's, row by row, by\n"
                 "exchanging hashes of primary-key ranges over port 2008 and narrowing down\n"
                 "where they differ; lists the differing keys. On a live pair, rows still on\n"
                 "their way show as differences: run it again.\n"
                 "Exit codes: 0 equal, 1 could not check (peer unreachable, database error,\n"
                 "definitions differ: run check), 2 usage or config error, 3 rows differ.\n"
                 "--repair (on the standby only) copies the differing rows from the active,\n"
                 "after a confirmation on a terminal (--yes for scripts; without a terminal and\n"
                 "without --yes it is refused); --dry-run lists them and repairs nothing.\n\n"
              << desc;
    return kExitOk;
  }
  if (o.batch_rows < 32 || o.batch_rows > kMaxLimit) {
    std::cerr << "mpfailover verify: --batch-rows must be 32 to " << kMaxLimit << "\n";
    return kExitUsage;
  }
  if ((o.yes || o.dry_run) && !o.repair) {
    std::cerr << "mpfailover verify: --yes and --dry-run go with --repair (verify alone changes "
                 "nothing)\nhint: mpfailover verify --help\n";
    return kExitUsage;
  }
  auto cfg = load_config(config_path);
  if (!cfg) {
    std::cerr << "mpfailover: " << cfg.status().message() << "\n";
    return kExitUsage;
  }
  if (o.repair && !o.dry_run) {
    if (int rc = may_confirm("verify --repair", o.yes); rc >= 0) return rc;
  }
  if (o.repair) {
    // The direction must be beyond doubt: this node standby, the peer up and active.
    auto s = control_request(cfg->control.socket, json{{"command", "status"}});
    if (!s) {
      return fail("verify --repair needs this node's daemon to tell the roles: " +
                  s.status().message());
    }
    const std::string role = s->value("role", "");
    const std::string peer_role = s->value("peer_role", json()).is_string()
                                      ? (*s)["peer_role"].get<std::string>()
                                      : std::string("unknown");
    const std::string peer_state = s->value("peer_state", "");
    if (role != "standby" || peer_role != "active" || peer_state != "up") {
      return fail(
          "verify --repair refused: it copies rows from the active to the standby and runs "
          "on the standby, but this node \"" +
          cfg->node.name + "\" is " + role + " and peer \"" + cfg->peer.name + "\" is " +
          peer_role + " (" + peer_state +
          "); run it on the standby while the peer is up and active (mpfailover status)");
    }
  }
  PgVerifySource local(cfg->node.database);
  auto all = local.tables();
  if (!all) return fail(all.status().message());
  auto tables = pick_tables(*all, o.tables);
  if (!tables) {
    std::cerr << "mpfailover verify: " << tables.status().message() << "\n";
    return kExitUsage;
  }
  PeerClient peer(*cfg);
  if (auto s = peer.open(); !s) return fail(s.message());
  // Same definitions first: hashes of rows of different shapes never agree.
  auto facts = peer.ask(FactsRequest{});
  if (!facts) return fail(facts.status().message());
  std::map<std::string, std::string> peer_facts;
  if (auto* f = std::get_if<FactsAnswer>(&*facts))
    peer_facts.insert(f->facts.begin(), f->facts.end());
  if (peer_facts["node.name"] != cfg->peer.name) {
    return fail("the node answering at " + cfg->peer_endpoint() + " is \"" +
                peer_facts["node.name"] + "\", not peer \"" + cfg->peer.name +
                "\": run mpfailover check");
  }
  for (const auto& t : *tables) {
    const std::string mine = join_types(t) + "; key (" + [&] {
      std::string k;
      for (size_t i = 0; i < t.key_columns.size(); ++i) k += (i ? ", " : "") + t.key_columns[i];
      return k;
    }() + ")";
    auto it = peer_facts.find("table." + t.relation);
    if (it == peer_facts.end() || it->second != mine) {
      return fail("table \"" + t.relation + "\" is defined differently on \"" + cfg->peer.name +
                  "\" (or not replicated there): run mpfailover check");
    }
  }

  NarrowerOptions nopt;
  nopt.batch_rows = o.batch_rows;
  Progress progress(true);
  const auto started = Clock::now();
  std::vector<TableResult> results;
  for (const auto& t : *tables) {
    auto r = verify_table(t.relation, local, peer, nopt, progress);
    if (!r) {
      progress.clear();
      return fail("verify of \"" + t.relation + "\" failed: " + r.status().message());
    }
    results.push_back(std::move(*r));
  }
  size_t total_diffs = 0;
  for (const auto& r : results) total_diffs += r.differences.size();

  // Repair: deletes children first, writes parents first (catalog order is parents first).
  RepairCount repaired;
  std::vector<TableResult> after;
  if (o.repair && total_diffs > 0 && !o.dry_run) {
    if (int rc =
            confirm("verify --repair",
                    "verify --repair would overwrite or delete " + std::to_string(total_diffs) +
                        " row" + (total_diffs == 1 ? "" : "s") + " of node \"" + cfg->node.name +
                        "\" with the rows of active \"" + cfg->peer.name + "\".",
                    o.yes);
        rc >= 0) {
      return rc;
    }
  }
  const bool repairing = o.repair && !o.dry_run;
  if (repairing && total_diffs > 0) {
    auto conn = local.connection();
    if (!conn) return fail(conn.status().message());
    if (auto s = setup_repair_session(**conn); !s) return fail(s.message());
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t ti = 0; ti < tables->size(); ++ti) {
        const size_t i = pass == 0 ? tables->size() - 1 - ti : ti;
        const auto& def = (*tables)[i];
        std::vector<Key> keys;
        for (const auto& d : results[i].differences) keys.push_back(d.key);
        // 64 rows per fetch: a few seconds at most over a 128 kbit/s link.
        constexpr size_t kFetchRows = 64;
        for (size_t from = 0; from < keys.size(); from += kFetchRows) {
          std::vector<Key> chunk(keys.begin() + from,
                                 keys.begin() + std::min(keys.size(), from + kFetchRows));
          auto r = peer.ask(FetchRequest{def.relation, chunk});
          if (!r) return fail("verify --repair: " + r.status().message());
          auto* a = std::get_if<FetchAnswer>(&*r);
          if (!a || a->rows.size() != chunk.size()) {
            return fail("verify --repair: the peer answered a row fetch with something else");
          }
          std::vector<FetchedRow> todo;
          for (const auto& row : a->rows) {
            if (row.present == (pass == 1)) todo.push_back(row);
          }
          repair_rows(*cfg, def, **conn, todo, repaired);
        }
      }
    }
    // Verify the repaired tables again: the exit code says whether they are equal now.
    for (size_t i = 0; i < tables->size(); ++i) {
      if (results[i].differences.empty()) continue;
      auto r = verify_table((*tables)[i].relation, local, peer, nopt, progress);
      if (!r) return fail("verify after repair failed: " + r.status().message());
      after.push_back(std::move(*r));
    }
  }
  size_t left = total_diffs;
  if (repairing && total_diffs > 0) {
    left = 0;
    for (const auto& r : after) left += r.differences.size();
    HistoryEvent e;
    e.node = cfg->node.name;
    e.event = "repair";
    e.who = current_operator();
    e.why = "verify --repair from active \"" + cfg->peer.name + "\"";
    e.detail = {{"differences", total_diffs},
                {"rows_repaired", repaired.rows},
                {"errors", repaired.errors.size()},
                {"differences_left", left}};
    if (auto s = record_history(cfg->node.database, e); !s) {
      std::cerr << "mpfailover: warning: " << s.message() << "\n";
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  if (o.json_output) {
    json out{{"node", cfg->node.name},
             {"peer", cfg->peer.name},
             {"equal", total_diffs == 0},
             {"seconds", seconds},
             {"peer_round_trips", peer.round_trips()},
             {"bytes_sent", peer.bytes_sent()},
             {"bytes_received", peer.bytes_received()}};
    json ts = json::array();
    for (const auto& r : results) {
      json diffs = json::array();
      for (const auto& d : r.differences) {
        diffs.push_back({{"key", d.key}, {"kind", to_string(d.kind)}});
      }
      ts.push_back({{"table", r.relation}, {"rows", r.rows}, {"differences", diffs}});
    }
    out["tables"] = ts;
    if (o.dry_run) out["dry_run"] = true;
    if (repairing) {
      out["repaired_rows"] = repaired.rows;
      out["repair_errors"] = repaired.errors;
      out["differences_after_repair"] = left;
    }
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& r : results) {
      if (r.differences.empty()) {
        std::cout << r.relation << ": equal (" << r.rows << " rows)\n";
        continue;
      }
      std::cout << r.relation << ": " << r.differences.size() << " differing row"
                << (r.differences.size() == 1 ? "" : "s") << "\n";
      for (const auto& d : r.differences) {
        std::cout << "  " << key_text(d.key) << " " << kind_text(d.kind, *cfg) << "\n";
      }
    }
    if (o.dry_run && total_diffs > 0) {
      std::cout << "dry run: verify --repair would copy these " << total_diffs << " row"
                << (total_diffs == 1 ? "" : "s") << " from active \"" << cfg->peer.name
                << "\"; nothing changed\n";
    }
    if (repairing && total_diffs > 0) {
      std::cout << "repaired " << repaired.rows << " row" << (repaired.rows == 1 ? "" : "s")
                << " from active \"" << cfg->peer.name
                << "\" (recorded in mpfailover.conflict, kind 'repair'); " << left
                << " differing after the repair\n";
    }
  }
  for (const auto& e : repaired.errors) std::cerr << "mpfailover: repair failed: " << e << "\n";
  if (left > 0) {
    std::cerr << "mpfailover: " << left << " row" << (left == 1 ? "" : "s")
              << " differ from peer \"" << cfg->peer.name << "\""
              << (repairing ? ""
                            : ": run it again if the pair is busy; on the standby, "
                              "mpfailover verify --repair copies them from the active")
              << "\n";
    return kExitDifferent;
  }
  if (!repaired.errors.empty()) return kExitFailed;
  return kExitOk;
}

namespace {

std::vector<std::string> local_addresses(const Config& cfg) {
  std::vector<std::string> out;
  if (cfg.replication.listen != "0.0.0.0" && cfg.replication.listen != "::" &&
      cfg.replication.listen != "*") {
    out.push_back(cfg.replication.listen);
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (auto* a = list; a; a = a->ifa_next) {
      if (!a->ifa_addr) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (a->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
      } else if (a->ifa_addr->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, buf,
                  sizeof buf);
      } else {
        continue;
      }
      out.push_back(buf);
    }
    freeifaddrs(list);
  }
  return out;
}

std::vector<std::string> resolve(const std::string& host) {
  std::vector<std::string> out{host};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) == 0) {
    for (auto* r = res; r; r = r->ai_next) {
      char buf[NI_MAXHOST] = {};
      if (getnameinfo(r->ai_addr, r->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) ==
          0) {
        out.push_back(buf);
      }
    }
    freeaddrinfo(res);
  }
  return out;
}

}  // namespace

int cmd_check(const std::string& config_path, const std::vector<std::string>& args) {
  bool json_output = false;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("json", po::bool_switch(&json_output),
                                                 "print the result as JSON");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "mpfailover check: " << e.what() << "\nhint: mpfailover check --help\n";
    return kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << "usage: mpfailover [--config PATH] check [--json]\n\n"
                 "Compares this node's configuration with the peer's: names and addresses (each\n"
                 "node's view of the other), ports, public key fingerprints, catalog and protocol\n"
                 "versions, security mode, heartbeat interval, collation, encoding (a lossy pair,\n"
                 "e.g. UTF8 and LATIN1, is a mismatch), replicated tables and their columns.\n"
                 "Names every mismatch.\n"
                 "Exit codes: 0 all match, 1 could not check (peer unreachable, database\n"
                 "error), 2 usage or config error, 3 mismatches.\n\n"
              << desc;
    return kExitOk;
  }
  auto cfg = load_config(config_path);
  if (!cfg) {
    std::cerr << "mpfailover: " << cfg.status().message() << "\n";
    return kExitUsage;
  }
  // This node's tables first (#12): one replication cannot do exactly, or one changed since
  // init-db, is refused here as by init-db, before any comparison with the peer.
  if (auto tables = check_tables(*cfg); !tables) {
    if (json_output) {
      std::cout << json{{"ok", false},
                        {"mismatches", json::array({{{"fact", "replication.tables"},
                                                     {"message", tables.message()}}})}}
                       .dump(2)
                << "\n";
    }
    std::cerr << "mpfailover check: " << tables.message() << "\n";
    return kExitFailed;
  }
  PgVerifySource local(cfg->node.database);
  CheckInput in;
  auto mine = local_facts(*cfg, local);
  if (!mine) return fail(mine.status().message());
  in.local = *mine;
  PeerClient peer(*cfg);
  if (auto s = peer.open(); !s) return fail(s.message());
  auto theirs = peer.ask(FactsRequest{});
  if (!theirs) return fail(theirs.status().message());
  auto* f = std::get_if<FactsAnswer>(&*theirs);
  if (!f) return fail("the peer answered a facts request with something else");
  in.peer = f->facts;
  in.local_addresses = local_addresses(*cfg);
  for (const auto& [k, v] : in.peer) {
    if (k == "peer.address") in.peer_view_of_here = resolve(v);
  }
  const auto mismatches = compare_facts(in);
  const auto notes = compatible_differences(in);
  if (json_output) {
    json ms = json::array();
    for (const auto& m : mismatches) ms.push_back({{"fact", m.fact}, {"message", m.message}});
    json ns = json::array();
    for (const auto& n : notes) ns.push_back({{"fact", n.fact}, {"message", n.message}});
    json here = json::object(), there = json::object();
    for (const auto& [k, v] : in.local) here[k] = v;
    for (const auto& [k, v] : in.peer) there[k] = v;
    std::cout << json{{"ok", mismatches.empty()},
                      {"mismatches", ms},
                      {"notes", ns},
                      {"here", here},
                      {"peer", there}}
                     .dump(2)
              << "\n";
  } else {
    for (const auto& n : notes) std::cout << "note: " << n.fact << ": " << n.message << "\n";
    {
      // Both encodings, always: the pair's values are converted between them (PROTOCOL.md).
      auto enc = [](const Facts& facts) {
        for (const auto& [k, v] : facts)
          if (k == "database.encoding") return v;
        return std::string("(not reported)");
      };
      std::cout << "database encoding: here " << enc(in.local) << ", peer " << enc(in.peer) << "\n";
    }
    for (const auto& m : mismatches)
      std::cout << "mismatch: " << m.fact << ": " << m.message << "\n";
    if (mismatches.empty()) {
      std::cout << "node \"" << cfg->node.name << "\" and peer \"" << cfg->peer.name << "\" match ("
                << compared_facts(in) << " facts compared)\n";
    }
  }
  if (!mismatches.empty()) {
    std::cerr << "mpfailover: " << mismatches.size() << " configuration mismatch"
              << (mismatches.size() == 1 ? "" : "es") << " with peer \"" << cfg->peer.name
              << "\": fix the named settings so both nodes agree, then run init-db where tables "
                 "differ\n";
    return kExitDifferent;
  }
  return kExitOk;
}

}  // namespace mpf::server::cli
