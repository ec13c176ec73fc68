// QueueWatch: the backlog's size against queue.warn_bytes, for the daemon's periodic report. A
// warning when the backlog grows above warn_bytes, an info line when it falls back; nothing is
// ever dropped.
//
// Thread safety: none; one caller. Owns its own database connection (opened on first use, and
// again after an error).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace mpf::server {

class QueueWatch {
 public:
  // sample_above_bytes: a log larger than this on disk is measured from a sample (see check).
  QueueWatch(std::string conninfo, uint64_t warn_bytes,
             uint64_t sample_above_bytes = kSampleAboveBytes);
  static constexpr uint64_t kSampleAboveBytes = 8ull << 20;
  ~QueueWatch();

  // Measures and logs a change of state. Cheap while the log is small: the backlog is the whole
  // change_log (it is trimmed up to the peer's ack), so when the log's size on disk is within
  // warn_bytes the backlog is too, and the rows are not read. Only a log above warn_bytes on disk
  // is measured row by row (the sum of its rows' sizes), which tells a real backlog from space
  // trimmed rows left behind until vacuum. A log above sample_above_bytes on disk is measured
  // from a block sample of that size, scaled up (the log lines say estimated=true), so a check
  // costs at most about that much reading whatever the backlog.
  void check();
  bool warned() const { return warned_; }

 private:
  std::string conninfo_;
  uint64_t warn_bytes_;
  uint64_t sample_above_bytes_;
  std::unique_ptr<pqxx::connection> conn_;
  bool warned_ = false;
};

}  // namespace mpf::server
