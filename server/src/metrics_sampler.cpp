#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/conflict_log.hpp>
#include <mpf/server/history.hpp>
#include <mpf/server/metrics_sampler.hpp>

namespace mpf::server {

MetricsSampler::MetricsSampler(std::string conninfo, std::string node, std::string peer)
    : conninfo_(conninfo),
      peer_(peer),
      reader_(
          std::make_unique<BacklogReader>(std::move(conninfo), std::move(node), std::move(peer))) {}

MetricsSampler::~MetricsSampler() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

void MetricsSampler::start() {
  thread_ = std::jthread([this](std::stop_token st) { run(st); });
}

void MetricsSampler::run(std::stop_token st) {
  while (!st.stop_requested()) {
    const auto started = std::chrono::steady_clock::now();
    sample();
    last_duration_ = std::chrono::steady_clock::now() - started;
    const auto pause =
        std::max<std::chrono::steady_clock::duration>(kMinInterval, 20 * last_duration_);
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, st, pause, [] { return false; });
  }
}

void MetricsSampler::sample() {
  const auto started = std::chrono::steady_clock::now();
  auto backlog = reader_->read();
  std::optional<int64_t> conflicts;
  double last_apply = 0;
  std::string error;
  if (backlog) {
    try {
      if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(conninfo_);
      pqxx::nontransaction q(*conn_);
      // The conflicts ever recorded, from the id sequence: a counter must never go down, and
      // conflicts.retention deletes old rows (ids of a rolled-back apply count too: rare).
      conflicts = q.exec(
                       "SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                       "FROM mpfailover.conflict_conflict_id_seq")[0][0]
                      .as<int64_t>();
      auto applied = q.exec_params(
          "SELECT extract(epoch FROM applied_at)::float8 FROM mpfailover.applied_position "
          "WHERE origin = $1",
          peer_);
      if (!applied.empty() && !applied[0][0].is_null()) last_apply = applied[0][0].as<double>();
    } catch (const std::exception& e) {
      conn_.reset();
      error = one_line(e.what());
    }
  } else {
    error = one_line(backlog.status().message());
  }
  // After the nontransaction above is closed: one transaction at a time on a connection.
  if (conflicts && conn_) read_events(*conn_, *conflicts);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  if (!conflicts) {
    ++errors_;
    // Once per outage, not every few seconds.
    if (!last_failed_) spdlog::warn("MetricsSampleFailed reason=\"{}\"", error);
    last_failed_ = true;
    return;
  }
  if (last_failed_) spdlog::info("MetricsSampleRecovered");
  last_failed_ = false;
  MetricsValues::Database d;
  d.backlog_transactions = backlog->transactions;
  d.backlog_rows = backlog->rows;
  d.backlog_bytes = backlog->bytes;
  if (backlog->oldest) d.backlog_oldest_age_s = backlog->oldest->age_s;
  d.conflicts = *conflicts;
  d.last_apply_timestamp_s = last_apply;
  d.peer_apply_blocked = backlog->blocked.has_value();
  d.sample_duration_s = std::chrono::duration<double>(now - started).count();
  latest_ = d;
  latest_at_ = now;
}

void MetricsSampler::read_events(pqxx::connection& conn, int64_t conflicts) {
  // Not a sample error: the metrics stay good when only the page's lists cannot be read.
  std::string error;
  auto history = read_history(conn, HistoryFilter{"", kPageHistoryEvents});
  if (!history) error = one_line(history.status().message());
  std::optional<ConflictList> recent;
  bool conflicts_moved;
  {
    std::lock_guard lock(mu_);
    conflicts_moved = events_conflicts_ != conflicts;
  }
  if (conflicts_moved) {
    auto c = read_conflicts(conn, ConflictFilter{"", "", kPageConflicts});
    if (c) {
      recent = std::move(*c);
    } else if (error.empty()) {
      error = one_line(c.status().message());
    }
  }
  std::lock_guard lock(mu_);
  if (history) events_.history = std::move(*history);
  if (recent) {
    events_.conflicts = std::move(*recent);
    events_conflicts_ = conflicts;
  }
  events_.error = error;
}

RecentEvents MetricsSampler::recent_events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::optional<MetricsValues::Database> MetricsSampler::latest() const {
  std::lock_guard lock(mu_);
  if (!latest_) return std::nullopt;
  auto d = *latest_;
  const double age =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - latest_at_).count();
  d.sample_age_s = age;
  if (d.backlog_oldest_age_s) *d.backlog_oldest_age_s += age;
  return d;
}

uint64_t MetricsSampler::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

}  // namespace mpf::server
