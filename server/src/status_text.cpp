// The text of `mpfailover status` and the pair's health verdict, from the daemon's status JSON.
#include <iomanip>
#include <sstream>

#include <mpf/server/status_text.hpp>

namespace mpf::server {
namespace {

using json = nlohmann::json;

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
  return out;
}

std::string str(const json& s, const char* key) {
  return s.contains(key) && s[key].is_string() ? s[key].get<std::string>() : std::string();
}

}  // namespace

std::vector<std::string> unhealthy_reasons(const json& s) {
  std::vector<std::string> out;
  const std::string role = str(s, "role");
  const std::string peer_role = str(s, "peer_role");
  const std::string peer_state = str(s, "peer_state");
  if (role != "active" && role != "standby") out.push_back("this node is " + role);
  if (peer_state != "up") out.push_back("peer " + (peer_state.empty() ? "unknown" : peer_state));
  if (role == "active" && peer_role == "active") out.push_back("both nodes active");
  if (role == "standby" && peer_role == "standby") out.push_back("no node active");
  if (s.contains("link") && s["link"].is_object()) {
    for (const char* dir : {"outbound", "inbound"}) {
      const std::string state = str(s["link"], dir);
      if (state != "up") out.push_back(std::string(dir) + " link " + state);
    }
  }
  if (s.contains("version_error") && !s["version_error"].is_null()) {
    out.push_back("version error");
  }
  if (s.value("clock_skew_warning", false)) out.push_back("clock skew above heartbeat.max_skew");
  if (s.contains("definitions_match_peer") && s["definitions_match_peer"].is_boolean() &&
      !s["definitions_match_peer"].get<bool>()) {
    out.push_back("catalog or tables differ from the peer's");
  }
  return out;
}

namespace {

std::string text_or_dash(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string secs(const json& v) {
  if (!v.is_number()) return "never";
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << v.get<double>() << " s";
  return out.str();
}

}  // namespace

std::string format_status(const json& s) {
  std::ostringstream out;
  out << "node " << s["node"].get<std::string>() << ": " << s["role"].get<std::string>()
      << ", epoch " << s["epoch"] << " (writes " << s["writes"].get<std::string>() << ")";
  if (s.value("fenced", false)) {
    out << " FENCED: " << text_or_dash(s["fenced_reason"])
        << " (writes stay closed until the peer or the arbiter confirms the epoch)";
  }
  if (s.value("maintenance", false)) out << " [maintenance: automatic failover paused]";
  out << "\n";
  out << "peer " << s["peer"].get<std::string>() << " (" << s["peer_address"].get<std::string>()
      << "): " << s["peer_state"].get<std::string>();
  if (!s["peer_role"].is_null()) {
    out << ", " << s["peer_role"].get<std::string>() << ", epoch " << s["peer_epoch"];
  }
  // "last heartbeat never ago" read as a bug report: say it in words when none came back.
  if (s["last_heartbeat_age_s"].is_number()) {
    out << "; last heartbeat " << secs(s["last_heartbeat_age_s"]) << " ago\n";
  } else {
    out << "; no heartbeat answered yet\n";
  }
  out << "ping: " << text_or_dash(s["last_ping"]) << " (" << text_or_dash(s["ping_socket"])
      << " socket); witness: " << s["witness_state"].get<std::string>();
  out << "; clock skew " << text_or_dash(s["clock_skew_ms"]) << " ms"
      << (s.value("clock_skew_warning", false) ? " (ABOVE heartbeat.max_skew)" : "") << "\n";
  out << "link: outbound " << s["link"]["outbound"].get<std::string>() << ", inbound "
      << s["link"]["inbound"].get<std::string>() << ", reconnects " << s["link"]["reconnects"]
      << (s.value("replicating", true) ? "" : " (replication paused: standalone)") << "\n";
  out << "replication: acked by peer " << s["acked_by_peer"].get<std::string>()
      << ", applied from peer " << s["applied_from_peer"].get<std::string>() << ", lag "
      << (s["lag_s"].is_null() ? std::string("unknown") : secs(s["lag_s"])) << "\n";
  out << "shared address: " << text_or_dash(s["shared_address"]) << ", held by "
      << text_or_dash(s["shared_address_holder"]) << "\n";
  if (!s["last_hook"].is_null()) {
    out << "last hook: " << s["last_hook"]["hook"].get<std::string>() << " "
        << (s["last_hook"]["ok"].get<bool>() ? "ok" : "FAILED") << " ("
        << s["last_hook"]["detail"].get<std::string>() << ")\n";
  }
  if (!s["operation"].get<std::string>().empty()) {
    out << "operation: " << s["operation"].get<std::string>() << "\n";
  }
  // Versions (absent from a daemon of a release before them: the CLI may be newer than the
  // daemon between a package install and the daemon's restart).
  if (s.contains("software_version")) {
    const json& neg = s["negotiated_protocol_version"];
    out << "versions: software " << text_or_dash(s["software_version"]) << ", protocol "
        << text_or_dash(s["protocol_versions"])
        << (s["max_protocol_version"].is_null() ? "" : " (pinned by max_protocol_version)")
        << " (outbound " << text_or_dash(neg["outbound"]) << ", inbound "
        << text_or_dash(neg["inbound"]) << "), heartbeat " << text_or_dash(s["heartbeat_protocol"])
        << ", catalog " << text_or_dash(s["catalog_version"]) << "\n";
    out << "peer versions: software " << text_or_dash(s["peer_software_version"]) << ", protocol "
        << text_or_dash(s["peer_protocol_versions"]) << ", heartbeat "
        << text_or_dash(s["peer_heartbeat_protocol"]) << ", catalog "
        << text_or_dash(s["peer_catalog_version"]) << "\n";
    if (!s["version_error"].is_null()) {
      out << "version error: " << s["version_error"].get<std::string>() << "\n";
    }
  }
  out << "last error: " << text_or_dash(s["last_error"]) << "\n";
  const auto reasons = unhealthy_reasons(s);
  out << "health: " << (reasons.empty() ? "ok" : "UNHEALTHY (" + join(reasons) + ")") << "\n";
  return out.str();
}

}  // namespace mpf::server
