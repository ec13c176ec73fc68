#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/server/queue_watch.hpp>

namespace mpf::server {

QueueWatch::QueueWatch(std::string conninfo, uint64_t warn_bytes, uint64_t sample_above_bytes)
    : conninfo_(std::move(conninfo)),
      warn_bytes_(warn_bytes),
      sample_above_bytes_(sample_above_bytes) {}

QueueWatch::~QueueWatch() = default;

void QueueWatch::check() {
  try {
    if (!conn_) conn_ = std::make_unique<pqxx::connection>(conninfo_);
    pqxx::nontransaction q(*conn_);
    // The log's pages (heap and TOAST; it has no indexes) hold every backlog row, so their size
    // bounds the backlog's from above, at the cost of a catalog lookup. A count over the whole
    // log every heartbeat competed with the shipper for the database.
    const auto on_disk =
        q.exec("SELECT pg_total_relation_size('mpfailover.change_log')")[0][0].as<uint64_t>();
    if (on_disk <= warn_bytes_ && !warned_) return;
    // Above sample_above_bytes on disk the rows are estimated from a block sample of about that
    // many bytes (TABLESAMPLE SYSTEM, scaled up) rather than all read: this runs every heartbeat,
    // and the exact sum over a 1,000,000-transaction backlog took seconds of the database's
    // time each second of the outage (issue #16).
    const bool sampled = on_disk > sample_above_bytes_;
    const double percent =
        sampled ? 100.0 * static_cast<double>(sample_above_bytes_) / static_cast<double>(on_disk)
                : 100.0;
    auto r = q.exec(sampled ? "SELECT (count(*) * 100 / " + std::to_string(percent) +
                                  ")::bigint, (coalesce(sum(pg_column_size(l.*)), 0) * 100 / " +
                                  std::to_string(percent) +
                                  ")::bigint FROM mpfailover.change_log l TABLESAMPLE SYSTEM (" +
                                  std::to_string(percent) + ")"
                            : std::string("SELECT count(*), coalesce(sum(pg_column_size(l.*)), 0) "
                                          "FROM mpfailover.change_log l"));
    const auto changes = r[0][0].as<int64_t>();
    const auto bytes = r[0][1].as<uint64_t>();
    if (bytes > warn_bytes_ && !warned_) {
      spdlog::warn("QueueAboveWarning changes={} bytes={} warn_bytes={} estimated={}", changes,
                   bytes, warn_bytes_, sampled);
    } else if (bytes <= warn_bytes_ && warned_) {
      spdlog::info("QueueBelowWarning changes={} bytes={} estimated={}", changes, bytes, sampled);
    }
    warned_ = bytes > warn_bytes_;
  } catch (const std::exception& e) {
    conn_.reset();
    spdlog::warn("QueueUnknown reason=\"{}\"", one_line(e.what()));
  }
}

}  // namespace mpf::server
