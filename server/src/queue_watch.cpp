#include <pqxx/pqxx>
#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/server/queue_watch.hpp>

namespace mpf::server {

QueueWatch::QueueWatch(std::string conninfo, uint64_t warn_bytes)
    : conninfo_(std::move(conninfo)), warn_bytes_(warn_bytes) {}

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
    auto r = q.exec(
        "SELECT count(*), coalesce(sum(pg_column_size(l.*)), 0) FROM mpfailover.change_log l");
    const auto changes = r[0][0].as<int64_t>();
    const auto bytes = r[0][1].as<uint64_t>();
    if (bytes > warn_bytes_ && !warned_) {
      spdlog::warn("QueueAboveWarning changes={} bytes={} warn_bytes={}", changes, bytes,
                   warn_bytes_);
    } else if (bytes <= warn_bytes_ && warned_) {
      spdlog::info("QueueBelowWarning changes={} bytes={}", changes, bytes);
    }
    warned_ = bytes > warn_bytes_;
  } catch (const std::exception& e) {
    conn_.reset();
    spdlog::warn("QueueUnknown reason=\"{}\"", one_line(e.what()));
  }
}

}  // namespace mpf::server
