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
  QueueWatch(std::string conninfo, uint64_t warn_bytes);
  ~QueueWatch();

  // Measures and logs a change of state. Cheap while the log is small: the backlog is the whole
  // change_log (it is trimmed up to the peer's ack), so when the log's size on disk is within
  // warn_bytes the backlog is too, and the rows are not read. Only a log above warn_bytes on disk
  // is measured row by row (the sum of its rows' sizes), which tells a real backlog from space
  // trimmed rows left behind until vacuum.
  void check();

 private:
  std::string conninfo_;
  uint64_t warn_bytes_;
  std::unique_ptr<pqxx::connection> conn_;
  bool warned_ = false;
};

}  // namespace mpf::server
