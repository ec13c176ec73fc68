#include <sstream>

#include <pwd.h>
#include <unistd.h>

#include <mpf/core/text.hpp>
#include <mpf/schema/migrations.hpp>
#include <mpf/server/conflict_log.hpp>
#include <mpf/server/history.hpp>

namespace mpf::server {
namespace {

std::optional<std::string> opt(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional(s);
}

std::string text_or_empty(const pqxx::field& f) { return f.is_null() ? "" : f.c_str(); }

}  // namespace

std::string history_event_for_reason(const std::string& reason) {
  if (reason == "operator_failover" || reason == "automatic_failover") return "failover";
  if (reason == "operator_switchover" || reason == "switchover_request" || reason == "handover" ||
      reason == "backlog_drained" || reason == "switchover_timeout") {
    return "switchover";
  }
  if (reason == "operator_standalone") return "standalone";
  if (reason == "operator_join") return "join";
  return "role_change";
}

std::string current_operator() {
  const uid_t uid = ::getuid();
  std::string name = "uid";
  if (const passwd* pw = ::getpwuid(uid)) name = pw->pw_name;
  return name + " (uid " + std::to_string(uid) + ")";
}

void record_history(pqxx::transaction_base& tx, const HistoryEvent& e) {
  tx.exec_params(
      "INSERT INTO mpfailover.history (node, event, role_from, role_to, epoch, who, why,"
      " applied_from_peer, acked_by_peer, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
      " $10::jsonb)",
      e.node, e.event, opt(e.role_from), opt(e.role_to), e.epoch, e.who, e.why,
      opt(e.applied_from_peer), opt(e.acked_by_peer), e.detail.dump());
}

Status record_history(const std::string& conninfo, const HistoryEvent& e) {
  try {
    pqxx::connection conn(conninfo);
    pqxx::work tx(conn);
    record_history(tx, e);
    tx.commit();
    return Status::ok();
  } catch (const std::exception& ex) {
    return unavailable("could not record the " + e.event +
                       " in mpfailover.history: " + one_line(ex.what()));
  }
}

Result<HistoryList> read_history(const std::string& conninfo, const HistoryFilter& filter) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(conninfo);
  } catch (const std::exception& e) {
    return unavailable("could not connect to the node's database: " + one_line(e.what()) +
                       " (check that PostgreSQL runs and node.database is right)");
  }
  return read_history(*conn, filter);
}

Result<HistoryList> read_history(pqxx::connection& c, const HistoryFilter& filter) {
  auto* conn = &c;
  try {
    pqxx::nontransaction q(*conn);
    if (q.exec("SELECT to_regclass('mpfailover.history') IS NULL")[0][0].as<bool>()) {
      return failed_precondition(
          "the node's database has no mpfailover.history (catalog older than version 7)\n"
          "hint: run mpfailover init-db on this node");
    }
  } catch (const std::exception& e) {
    return unavailable("could not read the history: " + one_line(e.what()));
  }
  const std::optional<double> since_s =
      filter.since.empty() ? std::nullopt : parse_since_duration(filter.since);
  std::optional<std::string> since_time;
  if (!filter.since.empty() && !since_s) {
    try {
      pqxx::nontransaction q(*conn);
      since_time = q.exec_params("SELECT $1::timestamptz::text", filter.since)[0][0].c_str();
    } catch (const pqxx::data_exception&) {
      return invalid_argument("invalid --since \"" + filter.since +
                              "\": expected a duration (90s, 30min, 2h, 7d) or a time such as "
                              "\"2026-11-22 10:00\"");
    } catch (const std::exception& e) {
      return unavailable("could not read the history: " + one_line(e.what()));
    }
  }
  HistoryList list;
  try {
    pqxx::nontransaction q(*conn);
    // The newest `limit` (+1 to tell there are more), shown oldest first like a log.
    auto rows = q.exec_params(
        "SELECT * FROM (SELECT event_id, to_json(at) #>> '{}', node, event, role_from, role_to,"
        "  epoch, who, why, applied_from_peer, acked_by_peer, detail::text "
        " FROM mpfailover.history"
        " WHERE at >= coalesce(now() - interval '1 second' * $1::float8, $2::timestamptz,"
        "                      '-infinity')"
        " ORDER BY at DESC, event_id DESC LIMIT $3) h ORDER BY 1",
        since_s, since_time, filter.limit + 1);
    const bool more = static_cast<int64_t>(rows.size()) > filter.limit;
    for (pqxx::result::size_type i = more ? 1 : 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      HistoryEvent e;
      e.at = r[1].c_str();
      e.node = r[2].c_str();
      e.event = r[3].c_str();
      e.role_from = text_or_empty(r[4]);
      e.role_to = text_or_empty(r[5]);
      if (!r[6].is_null()) e.epoch = r[6].as<int64_t>();
      e.who = r[7].c_str();
      e.why = r[8].c_str();
      e.applied_from_peer = text_or_empty(r[9]);
      e.acked_by_peer = text_or_empty(r[10]);
      e.detail = nlohmann::json::parse(r[11].c_str());
      list.events.push_back(std::move(e));
    }
    list.more = more;
  } catch (const std::exception& e) {
    return unavailable("could not read the history: " + one_line(e.what()));
  }
  return list;
}

std::string format_history(const HistoryList& list) {
  if (list.events.empty()) return "no events\n";
  std::ostringstream out;
  if (list.more) out << "(older events left out: raise --limit or narrow --since)\n";
  for (const auto& e : list.events) {
    out << e.at << "  " << e.node << "  " << e.event;
    if (!e.role_to.empty()) out << "  " << e.role_from << " -> " << e.role_to;
    if (e.epoch) out << "  epoch " << *e.epoch;
    out << "\n    by " << e.who;
    if (!e.why.empty()) out << ": " << one_line(e.why);
    out << "\n";
    if (!e.applied_from_peer.empty() || !e.acked_by_peer.empty()) {
      out << "    applied from peer " << (e.applied_from_peer.empty() ? "-" : e.applied_from_peer)
          << ", acked by peer " << (e.acked_by_peer.empty() ? "-" : e.acked_by_peer) << "\n";
    }
    if (!e.detail.empty()) out << "    " << e.detail.dump() << "\n";
  }
  out << list.events.size() << (list.events.size() == 1 ? " event\n" : " events\n");
  return out.str();
}

std::string history_json(const HistoryList& list) {
  using json = nlohmann::ordered_json;
  auto o = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j;
  j["events"] = json::array();
  for (const auto& e : list.events) {
    j["events"].push_back({{"at", e.at},
                           {"node", e.node},
                           {"event", e.event},
                           {"role_from", o(e.role_from)},
                           {"role_to", o(e.role_to)},
                           {"epoch", e.epoch ? json(*e.epoch) : json(nullptr)},
                           {"who", e.who},
                           {"why", e.why},
                           {"applied_from_peer", o(e.applied_from_peer)},
                           {"acked_by_peer", o(e.acked_by_peer)},
                           {"detail", json::parse(e.detail.dump())}});
  }
  j["count"] = list.events.size();
  j["more"] = list.more;
  return j.dump();
}

}  // namespace mpf::server
