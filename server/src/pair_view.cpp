#include <mpf/server/pair_health.hpp>
#include <mpf/server/pair_view.hpp>

namespace mpf::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ojson opt_or_null(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? ojson(nullptr) : ojson::parse(it->dump());
}

std::string listen_address(const Config& cfg) {
  return cfg.replication.listen + ":" + std::to_string(cfg.replication.port);
}

std::string peer_address(const Config& cfg) {
  return cfg.peer.address + ":" +
         std::to_string(cfg.peer.port ? cfg.peer.port : cfg.replication.port);
}

}  // namespace

// The two rows, in the words of `list --json`.
ojson pair_view_json(const Config& cfg, const json& s) {
  const auto health = pair_health(s);
  const json backlog = s.value("backlog", json(nullptr));
  const json link = s.value("link", json::object());
  ojson self{{"name", s.value("node", cfg.node.name)},
             {"address", listen_address(cfg)},
             {"self", true},
             {"state", "running"},
             {"role", s.value("role", "unknown")},
             {"epoch", opt_or_null(s, "epoch")},
             {"writes", s.value("writes", "unknown")},
             {"link",
              {{"outbound", link.value("outbound", "unknown")},
               {"inbound", link.value("inbound", "unknown")}}},
             {"lag_s", opt_or_null(s, "lag_s")},
             {"backlog_transactions",
              backlog.is_object() ? ojson(backlog["transactions"]) : ojson(nullptr)},
             {"last_heartbeat_age_s", nullptr},
             {"maintenance", s.value("maintenance", false)},
             {"fenced", s.value("fenced", false)}};
  // The peer: live facts only while it answers heartbeats.
  const bool up = s.value("peer_state", "") == "up";
  const json facts = up ? s.value("peer_facts", json(nullptr)) : json(nullptr);
  auto fact = [&](const char* key) {
    return facts.is_object() && facts.contains(key) ? ojson::parse(facts[key].dump())
                                                    : ojson(nullptr);
  };
  ojson peer{{"name", s.value("peer", cfg.peer.name)},
             {"address", peer_address(cfg)},
             {"self", false},
             {"state", s.value("peer_state", "unknown")},
             {"role", up ? opt_or_null(s, "peer_role") : ojson(nullptr)},
             {"last_known_role", opt_or_null(s, "peer_role")},
             {"epoch", up ? opt_or_null(s, "peer_epoch") : ojson(nullptr)},
             {"writes", fact("writes")},
             {"link", facts.is_object() ? fact("link") : ojson(nullptr)},
             {"lag_s", fact("lag_s")},
             {"backlog_transactions", fact("backlog_transactions")},
             {"last_heartbeat_age_s", opt_or_null(s, "last_heartbeat_age_s")},
             {"facts_age_s", facts.is_object() ? opt_or_null(s, "peer_facts_age_s") : ojson()},
             {"maintenance", fact("maintenance")},
             {"fenced", fact("fenced")}};
  return ojson{{"nodes", {self, peer}}, {"healthy", health.healthy}, {"problems", health.problems}};
}

}  // namespace mpf::server
