// PgLogReader: the LogSource over mpfailover.change_log, read in snapshot windows.
//
// Thread safety: none; one reader per thread. Owns its own database connection.
// After any error, the caller must seek() again before next_batch().
#pragma once

#include <memory>
#include <string>

#include <pqxx/pqxx>

#include <mpf/core/clock.hpp>
#include <mpf/replicator/log_source.hpp>
#include <mpf/replicator/tx_assembler.hpp>

namespace mpf::replicator {

class PgLogReader final : public LogSource {
 public:
  struct Options {
    size_t fetch_rows = 2000;  // rows per FETCH from the window cursor
    // Off for a connection that only trims and records peer_ack: losing those in a crash is
    // harmless (the trim is redone; a session resumes from the peer's applied position), and
    // waiting for their WAL flush would compete with the application's commits.
    bool synchronous_commit = true;
  };

  static Result<std::unique_ptr<PgLogReader>> open(const std::string& conninfo, Options options);
  static Result<std::unique_ptr<PgLogReader>> open(const std::string& conninfo) {
    return open(conninfo, Options{});
  }
  ~PgLogReader() override;

  Status seek(Position after) override;
  Result<ChangeBatch> next_batch(size_t max_changes) override;

  // Closes a window: records the current snapshot as a new tick when changes have committed
  // beyond the newest tick. Returns the newest tick id either way.
  Result<int64_t> tick();

  // Deletes the log rows of every transaction up to `acked` (inclusive) and the ticks no longer
  // needed. With a retention, acknowledged windows are kept until their tick is that old.
  // Returns rows deleted.
  Result<int64_t> trim(Position acked, Duration retention = Duration::zero());

  // Vacuums change_log, so that the space of trimmed rows is reused and a window read scans
  // little more than the backlog. (Left to autovacuum, a minute of trimmed rows piled up and
  // every poll of the log scanned them.) Never truncates the file: that needs a lock the capture
  // trigger's inserts would wait for.
  Status vacuum_log();

  // Deletes tombstones older than `retention`. Returns rows deleted.
  Result<int64_t> forget_tombstones(Duration retention);

  // The last change number taken on this node (committed or not): a cheap way to notice new
  // changes without NOTIFY, which would serialise the application's commits.
  Result<int64_t> change_counter();

  // True when the next next_batch() has rows to return without a new tick: a window is being
  // read, or windows already closed are not read yet.
  bool has_pending() const {
    return cursor_open_ || small_open_ || assembler_.has_ready() || newest_tick_ >= next_window_;
  }

  // The name of the abstract Unix socket the capture module sends its commit wake-ups to for
  // this database ("mpfailover-wake/<system identifier>/<database oid>", see
  // replicator/pgmodule/mpfailover_capture.c).
  Result<std::string> wake_name();

  // Records the peer's acknowledged position (source side), for status and restarts, and adds
  // `transactions` (those the acknowledgement covers) to the running total that `mpfailover
  // queue`'s drain rate is computed from (sampled into ack_history at most once a second).
  Status store_peer_ack(const std::string& peer, Position acked, uint64_t transactions = 0);

  // Records that the peer's apply stopped at `position` (its ApplyError), for `mpfailover queue`.
  Status store_apply_error(const std::string& peer, Position position, const std::string& message);

 private:
  PgLogReader(std::string conninfo, std::unique_ptr<pqxx::connection> conn, Options options);

  // Opens the cursor over window `next_window_`. False when that window does not exist yet
  // and nothing new has committed.
  Result<bool> open_window();
  void close_window();
  std::string window_query(int64_t t) const;
  // Feeds window rows whose columns start at `column`.
  void feed(const pqxx::result& rows, int column);

  std::string conninfo_;
  std::unique_ptr<pqxx::connection> conn_;
  Options options_;
  TxAssembler assembler_;
  int64_t next_window_ = 1;
  int64_t resume_seq_ = 0;
  bool cursor_open_ = false;
  bool small_open_ = false;  // small_window_ holds a whole window not yet fed
  pqxx::result small_window_;
  int small_offset_ = 0;        // the column small_window_'s window rows start at
  bool start_checked_ = false;  // the tick before next_window_ exists (checked after a seek)
  bool backlog_ahead_ = false;  // after a seek: more than a fetch of changes ahead (open_window)
  int64_t newest_tick_ = 0;     // newest tick this reader knows of
  bool broken_ = false;
};

// SQL for inspecting the backlog without a reader: "WITH win AS (...), ..." ending in two CTEs
// over the log rows `acked` does not cover (what trim(acked) would leave without a retention):
//   waiting_tx    one row per waiting transaction: txid, rows, bytes (pg_column_size), last_seq,
//                 first_change (bigint[]: hlc, seq, table_id of its first-captured change)
//   waiting_table one row per table with waiting rows: table_id, rows, bytes, first_hlc
// Both come from one sequential scan of the log (hash or sort aggregation within work_mem).
// sample_percent < 100: only a block sample of the log is read (TABLESAMPLE SYSTEM), so the
// counts are that share of the backlog's, for the caller to scale (a bounded read of a huge log).
std::string waiting_changes_cte(Position acked, double sample_percent = 100);

}  // namespace mpf::replicator
