// MetricsSampler: the metrics that come from the database (the backlog, as `mpfailover queue`
// counts it, and the number of conflicts), read on a thread of its own every few seconds, so a
// scrape never touches the database and never waits for a scan.
//
// The backlog read is one sequential scan of change_log (backlog.hpp): the sampler waits at
// least kMinInterval between reads and at least 20 times as long as the last read took, so
// however large the backlog grows, sampling keeps a backend busy at most ~5% of the time.
//
// Thread safety: start() once; latest(), errors() and recent_events() from any thread. The
// destructor stops the thread (after a read in progress finishes).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <pqxx/connection>

#include <mpf/server/metrics_text.hpp>
#include <mpf/server/status_page.hpp>

namespace mpf::server {

class BacklogReader;

class MetricsSampler {
 public:
  static constexpr std::chrono::seconds kMinInterval{5};

  MetricsSampler(std::string conninfo, std::string node, std::string peer);
  ~MetricsSampler();

  void start();

  // The last successful sample, aged to now (sample_age_s, and the oldest change's age move on
  // with the clock); none before the first one.
  std::optional<MetricsValues::Database> latest() const;
  uint64_t errors() const;
  // The newest history events and conflicts for the status page, read with each sample (the
  // conflicts only when their count moved): two index scans of a few rows.
  RecentEvents recent_events() const;

 private:
  void run(std::stop_token st);
  void sample();
  void read_events(pqxx::connection& conn, int64_t conflicts);

  std::string conninfo_;
  std::string peer_;
  std::unique_ptr<BacklogReader> reader_;   // sampler thread only
  std::unique_ptr<pqxx::connection> conn_;  // sampler thread only: the conflict count
  std::chrono::steady_clock::duration last_duration_{};

  mutable std::mutex mu_;
  std::condition_variable_any wake_;
  std::optional<MetricsValues::Database> latest_;
  std::chrono::steady_clock::time_point latest_at_;
  uint64_t errors_ = 0;
  RecentEvents events_;
  std::optional<int64_t> events_conflicts_;  // the conflict count events_.conflicts was read at
  bool last_failed_ = false;
  std::jthread thread_;  // last: stopped and joined before the members above go
};

}  // namespace mpf::server
