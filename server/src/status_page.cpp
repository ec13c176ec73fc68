#include <mpf/server/pair_view.hpp>
#include <mpf/server/status_page.hpp>

namespace mpf::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ojson pick(const json& s, std::initializer_list<const char*> keys) {
  ojson out = ojson::object();
  for (const char* k : keys) {
    auto it = s.find(k);
    out[k] = it == s.end() ? ojson(nullptr) : ojson::parse(it->dump());
  }
  return out;
}

ojson history_events(const HistoryList& list) {
  // history_json() is `mpfailover history --json`: the same words on the page.
  return ojson::parse(history_json(list));
}

// The conflicts without their row images: the page shows what happened, `mpfailover conflicts`
// shows the rows.
ojson conflict_rows(const ConflictList& list) {
  auto o = [](const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); };
  ojson rows = ojson::array();
  for (const auto& c : list.conflicts) {
    rows.push_back({{"id", c.id},
                    {"detected_at", c.detected_at},
                    {"table", c.table},
                    {"key", c.key_text},
                    {"kind", c.kind},
                    {"winner_origin", o(c.winner_origin)},
                    {"loser_origin", o(c.loser_origin)},
                    {"reason", c.reason}});
  }
  return ojson{{"conflicts", rows}, {"count", list.conflicts.size()}, {"more", list.more}};
}

}  // namespace

ojson status_page_json(const Config& cfg, const json& status, const SampleRing& ring,
                       const RecentEvents& events, double now_unix) {
  ojson j;
  j["generated_at"] = now_unix;
  j["list"] = pair_view_json(cfg, status);
  j["details"] = pick(status, {"backlog", "peer_state", "fenced_reason", "operation", "last_error",
                               "clock_skew_ms", "clock_skew_warning", "automatic_failover",
                               "shared_address", "shared_address_holder", "witness_state",
                               "applied_from_peer", "acked_by_peer", "role_changes"});
  j["versions"] =
      pick(status, {"software_version", "protocol_versions", "catalog_version",
                    "negotiated_protocol_version", "heartbeat_protocol", "peer_software_version",
                    "peer_protocol_versions", "peer_catalog_version", "version_error"});
  j["samples"] = ring.to_json();
  j["history"] = events.history ? history_events(*events.history) : ojson(nullptr);
  j["conflicts"] = events.conflicts ? conflict_rows(*events.conflicts) : ojson(nullptr);
  j["events_error"] = events.error.empty() ? ojson(nullptr) : ojson(events.error);
  return j;
}

}  // namespace mpf::server
