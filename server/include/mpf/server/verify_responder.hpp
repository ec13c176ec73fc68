// The daemon's answerer for verify frames ("MPV") arriving on port 2008: the peer's
// `mpfailover verify` and `mpfailover check` ask it for range hashes, key lists, rows (repair)
// and configuration facts; the peer's `mpfailover resync` copies a snapshot of this node's data
// through it (docs/protocol.md "Snapshot copy").
//
// on_port_frame() runs on the receiver's port thread, which also answers heartbeats, so it never
// touches the database: it queues the request for a worker thread of its own (its own
// connection) and waits at most kInlineWait for the answer. A request not done by then is
// answered Pending, and the client polls for it. Work per request is bounded by the codec's
// limits (ranges per request, rows per range).
//
// Thread safety: on_port_frame() from any one thread at a time; the worker is internal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <mpf/server/config.hpp>

namespace mpf::server {

class BacklogReader;

namespace verify {
class PgSnapshotSource;
class PgVerifySource;
struct VerifyMessage;
}  // namespace verify

class VerifyResponder {
 public:
  static constexpr std::chrono::milliseconds kInlineWait{10};
  static constexpr size_t kMaxQueued = 16;

  explicit VerifyResponder(Config config);
  ~VerifyResponder();
  VerifyResponder(const VerifyResponder&) = delete;
  VerifyResponder& operator=(const VerifyResponder&) = delete;

  // nullopt: not a verify frame. Otherwise the answer to send back ("" for none).
  std::optional<std::string> on_port_frame(std::string_view frame);

 private:
  struct Job;
  void work(std::stop_token stop);
  std::string answer(const verify::VerifyMessage& request);

  Config config_;
  std::unique_ptr<verify::PgVerifySource> source_;
  // `mpfailover resync` on the peer: the snapshot it copies, and its catch-up backlog.
  std::unique_ptr<verify::PgSnapshotSource> snapshots_;
  std::unique_ptr<BacklogReader> backlog_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  // request id -> encoded answer ("" while being worked on), with the time it was queued.
  std::map<uint64_t, std::pair<std::string, std::chrono::steady_clock::time_point>> results_;
  std::chrono::steady_clock::time_point last_drop_log_{};
  std::jthread worker_;
};

}  // namespace mpf::server
