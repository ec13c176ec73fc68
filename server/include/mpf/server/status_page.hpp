// The status page (docs/monitoring.md "The status page"): GET / on the metrics listener answers
// one self-contained HTML page (inline CSS, JS and SVG: no external asset, so it works on an
// isolated management network) that fetches GET /status.json every few seconds and draws it.
//
// status.json is {generated_at, list, details, versions, samples, history, conflicts}: `list` is
// pair_view_json(), the very object `mpfailover list --json` prints; `samples` the last hour of
// the backlog and the apply rate (SampleRing); `history` and `conflicts` the newest events as the
// daemon's sampler last read them from the database (a request never touches the database).
//
// Pure: the daemon's status, the ring and the events in, JSON out (the clock is a parameter).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <mpf/server/config.hpp>
#include <mpf/server/conflict_log.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/sample_ring.hpp>

namespace mpf::server {

inline constexpr int64_t kPageHistoryEvents = 20;  // the newest history events on the page
inline constexpr int64_t kPageConflicts = 10;      // the newest conflicts on the page

// The newest history events and conflicts, as the sampler last read them. None before the first
// successful read; `error` says why the last read failed (the older lists stay shown).
struct RecentEvents {
  std::optional<HistoryList> history;
  std::optional<ConflictList> conflicts;
  std::string error;
};

nlohmann::ordered_json status_page_json(const Config& cfg, const nlohmann::json& status,
                                        const SampleRing& ring, const RecentEvents& events,
                                        double now_unix);

// The page itself (server/src/status_page.html, compiled in).
std::string_view status_page_html();

inline constexpr const char* kHtmlContentType = "text/html; charset=utf-8";

}  // namespace mpf::server
