// NOTES: the backlog read in one snapshot.
//
// peer_ack, the log and the apply error are read in one REPEATABLE READ transaction, so a trim
// or an acknowledgement committing meanwhile cannot make the numbers disagree (rows counted as
// waiting that the position already covers). The log is scanned once: the CTE `waiting` is
// referenced several times and PostgreSQL materialises it once; totals, the per-table breakdown
// and the oldest change all come from it in one statement.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <mpf/core/text.hpp>
#include <mpf/replicator/pg_log_reader.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/backlog.hpp>

namespace mpf::server {
namespace {

// Acknowledgement history this far back gives the drain rate.
constexpr int kDrainWindowSeconds = 60;

std::string text_or_empty(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

// For the human report: newlines become "; ", quotes stay (one_line is for log fields).
std::string single_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "; ";
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

}  // namespace

BacklogReader::BacklogReader(std::string conninfo, std::string node, std::string peer)
    : conninfo_(std::move(conninfo)), node_(std::move(node)), peer_(std::move(peer)) {}

BacklogReader::~BacklogReader() = default;

Result<Backlog> BacklogReader::read() {
  const auto started = std::chrono::steady_clock::now();
  if (!conn_ || !conn_->is_open()) {
    try {
      conn_ = std::make_unique<pqxx::connection>(conninfo_);
    } catch (const std::exception& e) {
      conn_.reset();
      return unavailable("could not connect to the node's database: " + one_line(e.what()) +
                         " (check that PostgreSQL runs and node.database is right)");
    }
    auto version = schema::installed_version(*conn_, "catalog");
    if (!version) {
      conn_.reset();
      return version.status();
    }
    const int latest = schema::latest_version("catalog");
    if (*version == 0) {
      conn_.reset();
      return failed_precondition(
          "the node's database has no mpfailover catalog (run mpfailover init-db)");
    }
    if (*version < latest) {
      conn_.reset();
      return failed_precondition("the node's database catalog is at version " +
                                 std::to_string(*version) + ", older than this mpfailover (" +
                                 std::to_string(latest) + ") (run mpfailover init-db)");
    }
  }

  Backlog b;
  b.node = node_;
  b.peer = peer_;
  try {
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        *conn_);
    Position acked;
    auto ack = tx.exec_params(
        "SELECT tick, seq, acked_transactions, to_json(acked_at) #>> '{}', "
        "extract(epoch FROM now() - acked_at)::float8, to_json(now()) #>> '{}' "
        "FROM mpfailover.peer_ack WHERE peer = $1",
        peer_);
    if (!ack.empty()) {
      acked = Position{ack[0][0].as<int64_t>(), ack[0][1].as<int64_t>()};
      b.acked_position = acked;
      b.acked_transactions_total = ack[0][2].as<int64_t>();
      b.acked_at = ack[0][3].c_str();
      b.acked_age_s = ack[0][4].as<double>();
    }

    // A huge log is read from a block sample and the counts scaled up (see Backlog::estimated):
    // the whole scan took seconds on a 1,000,000-transaction backlog, every sampler period.
    const auto on_disk =
        tx.exec("SELECT pg_relation_size('mpfailover.change_log')")[0][0].as<int64_t>();
    const double percent =
        on_disk > kSampleAboveBytes
            ? 100.0 * static_cast<double>(kSampleAboveBytes) / static_cast<double>(on_disk)
            : 100.0;
    b.estimated = percent < 100;
    const std::string scale = "* " + std::to_string(100.0 / percent);
    auto log =
        tx.exec(replicator::waiting_changes_cte(acked, percent) +
                " SELECT ((SELECT count(*) FROM waiting_tx) " + scale +
                ")::bigint, ((SELECT coalesce(sum(rows), 0) FROM waiting_table) " + scale +
                ")::bigint, ((SELECT coalesce(sum(bytes), 0) FROM waiting_table) " + scale +
                ")::bigint, "
                "  (SELECT coalesce(json_agg(json_build_object('table',"
                "     coalesce(r.relation, 'table ' || t.table_id), 'rows', (t.rows " +
                scale + ")::bigint, 'bytes', (t.bytes " + scale +
                ")::bigint)"
                "     ORDER BY t.rows DESC, r.relation), '[]')"
                "   FROM waiting_table t LEFT JOIN mpfailover.replicated_table r USING (table_id)),"
                "  (SELECT json_build_object('txid', o.txid::text, 'seq', o.first_change[2],"
                "     'table', coalesce(r.relation, 'table ' || o.first_change[3]),"
                "     'captured_at', to_timestamp(o.first_change[1] / 1e6),"
                "     'age_s', extract(epoch FROM now())::float8 - o.first_change[1] / 1e6)"
                "   FROM (SELECT * FROM waiting_tx ORDER BY first_change LIMIT 1) o"
                "   LEFT JOIN mpfailover.replicated_table r ON r.table_id = o.first_change[3]),"
                "  to_json(now()) #>> '{}'");
    b.transactions = log[0][0].as<int64_t>();
    b.rows = log[0][1].as<int64_t>();
    b.bytes = log[0][2].as<int64_t>();
    for (const auto& t : nlohmann::json::parse(log[0][3].c_str())) {
      b.by_table.push_back({t.at("table").get<std::string>(), t.at("rows").get<int64_t>(),
                            t.at("bytes").get<int64_t>()});
    }
    if (!log[0][4].is_null()) {
      auto o = nlohmann::json::parse(log[0][4].c_str());
      b.oldest =
          Backlog::Oldest{o.at("txid").get<std::string>(), o.at("seq").get<int64_t>(),
                          o.at("table").get<std::string>(), o.at("captured_at").get<std::string>(),
                          std::max(0.0, o.at("age_s").get<double>())};
    }
    b.read_at = log[0][5].c_str();

    // The running total's growth since the newest sample at least a minute old (or the oldest
    // there is), up to now: a drain that stopped decays toward 0.
    auto base = tx.exec_params(
        "SELECT h.acked_transactions, extract(epoch FROM now() - h.sampled_at)::float8 FROM ("
        "  (SELECT acked_transactions, sampled_at, 0 AS pref FROM mpfailover.ack_history"
        "   WHERE peer = $1 AND sampled_at <= now() - interval '1 second' * $2"
        "   ORDER BY sampled_at DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT acked_transactions, sampled_at, 1 FROM mpfailover.ack_history"
        "   WHERE peer = $1 ORDER BY sampled_at LIMIT 1)) h ORDER BY h.pref LIMIT 1",
        peer_, kDrainWindowSeconds);
    if (!base.empty() && b.acked_position) {
      const double window = base[0][1].as<double>();
      if (window >= 1.0) {
        b.drain_window_s = window;
        b.drain_rate_tps =
            std::max<double>(0, b.acked_transactions_total - base[0][0].as<int64_t>()) / window;
      }
    }
    if (b.transactions == 0) {
      b.eta_s = 0.0;
    } else if (b.drain_rate_tps && *b.drain_rate_tps > 0) {
      b.eta_s = b.transactions / *b.drain_rate_tps;
    }

    auto err = tx.exec_params(
        "SELECT tick, seq, message, to_json(first_reported_at) #>> '{}', "
        "to_json(reported_at) #>> '{}' FROM mpfailover.peer_apply_error "
        "WHERE peer = $1 AND (tick, seq) > ($2, $3)",
        peer_, acked.tick, acked.seq);
    if (!err.empty()) {
      b.blocked = Backlog::Blocked{Position{err[0][0].as<int64_t>(), err[0][1].as<int64_t>()},
                                   text_or_empty(err[0][2]), text_or_empty(err[0][3]),
                                   text_or_empty(err[0][4])};
    }
    tx.commit();
  } catch (const pqxx::broken_connection& e) {
    conn_.reset();
    return unavailable("lost the connection to the node's database: " + one_line(e.what()));
  } catch (const std::exception& e) {
    conn_.reset();
    return unavailable("could not read the backlog from the node's database: " +
                       one_line(e.what()));
  }
  b.scan_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return b;
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string format_age(double seconds) {
  char buf[48];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  } else if (seconds < 3600) {
    const auto s = static_cast<int64_t>(seconds);
    std::snprintf(buf, sizeof buf, "%lldm %02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (seconds < 86400) {
    const auto m = static_cast<int64_t>(seconds / 60);
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", static_cast<long long>(m / 60),
                  static_cast<long long>(m % 60));
  } else {
    const auto h = static_cast<int64_t>(seconds / 3600);
    std::snprintf(buf, sizeof buf, "%lldd %02lldh", static_cast<long long>(h / 24),
                  static_cast<long long>(h % 24));
  }
  return buf;
}

std::string format_backlog(const Backlog& b) {
  std::ostringstream out;
  char num[64];
  out << "backlog of node \"" << b.node << "\" for peer \"" << b.peer << "\" at " << b.read_at
      << "\n";
  out << "  waiting:   " << b.transactions
      << (b.transactions == 1 ? " transaction, " : " transactions, ") << b.rows
      << (b.rows == 1 ? " row, " : " rows, ") << format_bytes(b.bytes)
      << (b.estimated ? " (estimated from a sample of the log)" : "") << "\n";
  if (b.oldest) {
    out << "  oldest:    transaction " << b.oldest->txid << " (change " << b.oldest->seq << ", "
        << b.oldest->table << "), captured " << b.oldest->captured_at << ", "
        << format_age(b.oldest->age_s) << " ago\n";
  }
  if (b.acked_position) {
    out << "  acked:     " << b.acked_position->to_string() << " by \"" << b.peer << "\" at "
        << b.acked_at << " (" << format_age(b.acked_age_s) << " ago)\n";
  } else {
    out << "  acked:     nothing yet (\"" << b.peer << "\" has never acknowledged a change)\n";
  }
  if (b.drain_rate_tps) {
    std::snprintf(num, sizeof num, "%.1f", *b.drain_rate_tps);
    out << "  drain:     " << num << " transactions/s over the last "
        << format_age(b.drain_window_s);
    if (b.transactions == 0) {
      out << "; the backlog is empty\n";
    } else if (b.eta_s) {
      out << "; empty in about " << format_age(*b.eta_s) << " at this rate\n";
    } else {
      out << "; not draining\n";
    }
  } else {
    out << "  drain:     unknown (no acknowledgement recorded yet)\n";
  }
  if (b.blocked) {
    out << "  BLOCKED:   apply on \"" << b.peer << "\" stopped at transaction "
        << b.blocked->position.to_string() << " since " << b.blocked->since << " (last reported "
        << b.blocked->reported_at << "): " << single_line(b.blocked->error) << "\n"
        << "             fix the cause on \"" << b.peer << "\", or there run: mpfailover skip "
        << b.blocked->position.to_string() << " --reason TEXT\n";
  }
  if (!b.by_table.empty()) {
    size_t width = 5;
    for (const auto& t : b.by_table) width = std::max(width, t.table.size());
    out << "  " << std::left << std::setw(static_cast<int>(width)) << "table" << std::right
        << std::setw(13) << "rows" << std::setw(11) << "bytes"
        << "\n";
    for (const auto& t : b.by_table) {
      out << "  " << std::left << std::setw(static_cast<int>(width)) << t.table << std::right
          << std::setw(13) << t.rows << std::setw(11) << format_bytes(t.bytes) << "\n";
    }
  }
  return out.str();
}

std::string backlog_json(const Backlog& b) {
  // Ordered: the fields come out in this (reading) order.
  using json = nlohmann::ordered_json;
  json j;
  j["node"] = b.node;
  j["peer"] = b.peer;
  j["read_at"] = b.read_at;
  j["scan_ms"] = std::round(b.scan_ms * 10) / 10;
  j["estimated"] = b.estimated;
  j["transactions"] = b.transactions;
  j["rows"] = b.rows;
  j["bytes"] = b.bytes;
  j["oldest_age_s"] = b.oldest ? json(b.oldest->age_s) : json(nullptr);
  j["oldest"] = b.oldest ? json{{"txid", b.oldest->txid},
                                {"seq", b.oldest->seq},
                                {"table", b.oldest->table},
                                {"captured_at", b.oldest->captured_at}}
                         : json(nullptr);
  j["by_table"] = json::object();
  j["by_table_detail"] = json::array();
  for (const auto& t : b.by_table) {
    j["by_table"][t.table] = t.rows;
    j["by_table_detail"].push_back({{"table", t.table}, {"rows", t.rows}, {"bytes", t.bytes}});
  }
  j["acked_position"] = b.acked_position ? json(b.acked_position->to_string()) : json(nullptr);
  j["acked_at"] = b.acked_position ? json(b.acked_at) : json(nullptr);
  j["acked_age_s"] = b.acked_position ? json(b.acked_age_s) : json(nullptr);
  j["acked_transactions_total"] = b.acked_transactions_total;
  j["drain_rate_tps"] = b.drain_rate_tps ? json(*b.drain_rate_tps) : json(nullptr);
  j["drain_window_s"] = b.drain_rate_tps ? json(b.drain_window_s) : json(nullptr);
  j["eta_s"] = b.eta_s ? json(*b.eta_s) : json(nullptr);
  j["blocked"] = b.blocked ? json{{"position", b.blocked->position.to_string()},
                                  {"error", b.blocked->error},
                                  {"since", b.blocked->since},
                                  {"reported_at", b.blocked->reported_at}}
                           : json(nullptr);
  return j.dump();
}

}  // namespace mpf::server
