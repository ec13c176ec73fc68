#include <algorithm>

#include <spdlog/spdlog.h>

#include <mpf/core/text.hpp>
#include <mpf/server/backlog.hpp>
#include <mpf/server/verify/verify_codec.hpp>
#include <mpf/server/verify_responder.hpp>

#include "pg_snapshot_source.hpp"
#include "pg_verify_source.hpp"

namespace mpf::server {

using namespace verify;

struct VerifyResponder::Job {
  VerifyMessage request;
};

namespace {

constexpr auto kKeepResults = std::chrono::seconds(120);

std::string encoded(uint64_t id, VerifyBody body) {
  return encode(VerifyMessage{id, std::move(body)});
}

}  // namespace

VerifyResponder::VerifyResponder(Config config)
    : config_(std::move(config)),
      source_(std::make_unique<PgVerifySource>(config_.node.database)),
      snapshots_(std::make_unique<PgSnapshotSource>(config_.node.database, config_.node.name,
                                                    config_.peer.name)),
      backlog_(std::make_unique<BacklogReader>(config_.node.database, config_.node.name,
                                               config_.peer.name)),
      worker_([this](std::stop_token st) { work(st); }) {}

VerifyResponder::~VerifyResponder() {
  worker_.request_stop();
  cv_.notify_all();
}

std::optional<std::string> VerifyResponder::on_port_frame(std::string_view frame) {
  if (!is_verify_frame(frame)) return std::nullopt;
  auto m = decode_verify(frame);
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  if (!m) {
    if (now - last_drop_log_ > std::chrono::seconds(1)) {
      spdlog::warn("VerifyFrameDropped reason=\"{}\"", one_line(m.status().message()));
      last_drop_log_ = now;
    }
    return encoded(0, ErrorAnswer{m.status().message()});
  }
  const uint64_t id = m->request_id;
  const bool is_request = !std::holds_alternative<PollRequest>(m->body) &&
                          (std::holds_alternative<FactsRequest>(m->body) ||
                           std::holds_alternative<SummarizeBatch>(m->body) ||
                           std::holds_alternative<RowsBatch>(m->body) ||
                           std::holds_alternative<FetchRequest>(m->body) ||
                           std::holds_alternative<SnapshotBegin>(m->body) ||
                           std::holds_alternative<SnapshotFetch>(m->body) ||
                           std::holds_alternative<SnapshotEnd>(m->body) ||
                           std::holds_alternative<BacklogRequest>(m->body));
  if (!is_request && !std::holds_alternative<PollRequest>(m->body)) {
    return encoded(id, ErrorAnswer{"not a verify request"});
  }
  for (auto it = results_.begin(); it != results_.end();) {
    it = now - it->second.second > kKeepResults ? results_.erase(it) : std::next(it);
  }
  if (is_request && !results_.count(id)) {
    if (queue_.size() >= kMaxQueued) {
      return encoded(
          id, ErrorAnswer{"node \"" + config_.node.name + "\" is busy with " +
                          std::to_string(queue_.size()) + " verify requests: try again later"});
    }
    results_[id] = {std::string(), now};
    queue_.push_back(std::make_unique<Job>(Job{std::move(*m)}));
    cv_.notify_all();
  } else if (!results_.count(id)) {
    return encoded(id, ErrorAnswer{"no verify request " + std::to_string(id) +
                                   " here (the daemon restarted?): run the command again"});
  }
  // Bounded wait: the port thread also answers heartbeats.
  cv_.wait_for(lock, kInlineWait, [&] { return !results_[id].first.empty(); });
  if (results_[id].first.empty()) return encoded(id, PendingAnswer{});
  std::string out = std::move(results_[id].first);
  results_.erase(id);
  return out;
}

void VerifyResponder::work(std::stop_token stop) {
  while (!stop.stop_requested()) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      // Woken at least every few seconds to end a snapshot its standby abandoned.
      cv_.wait_for(lock, stop, std::chrono::seconds(5), [&] { return !queue_.empty(); });
      if (stop.stop_requested()) return;
      if (queue_.empty()) {
        lock.unlock();
        snapshots_->expire(std::chrono::steady_clock::now());
        continue;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string out = answer(job->request);
    {
      std::lock_guard lock(mu_);
      auto it = results_.find(job->request.request_id);
      if (it != results_.end()) it->second.first = std::move(out);
    }
    cv_.notify_all();
  }
}

std::string VerifyResponder::answer(const VerifyMessage& request) {
  const uint64_t id = request.request_id;
  auto error = [&](const Status& s) {
    spdlog::warn("VerifyRequestFailed reason=\"{}\"", one_line(s.message()));
    return encoded(id, ErrorAnswer{"node \"" + config_.node.name + "\": " + s.message()});
  };
  if (std::holds_alternative<FactsRequest>(request.body)) {
    auto f = local_facts(config_, *source_);
    if (!f) return error(f.status());
    return encoded(id, FactsAnswer{*f});
  }
  if (const auto* q = std::get_if<SummarizeBatch>(&request.body)) {
    auto r = source_->summarize(q->relation, q->requests);
    if (!r) return error(r.status());
    return encoded(id, SummarizeAnswer{std::move(*r)});
  }
  if (const auto* q = std::get_if<RowsBatch>(&request.body)) {
    auto r = source_->rows(q->relation, q->requests);
    if (!r) return error(r.status());
    return encoded(id, RowsAnswer{std::move(*r)});
  }
  if (const auto* q = std::get_if<FetchRequest>(&request.body)) {
    auto r = source_->fetch(q->relation, q->keys);
    if (!r) return error(r.status());
    spdlog::info("VerifyRowsFetched relation={} rows={}", q->relation, r->size());
    return encoded(id, FetchAnswer{std::move(*r)});
  }
  if (const auto* q = std::get_if<SnapshotBegin>(&request.body)) {
    auto r = snapshots_->begin(q->node);
    if (!r) return error(r.status());
    return encoded(id, std::move(*r));
  }
  if (const auto* q = std::get_if<SnapshotFetch>(&request.body)) {
    auto r = snapshots_->fetch(*q);
    if (!r) return error(r.status());
    return encoded(id, std::move(*r));
  }
  if (const auto* q = std::get_if<SnapshotEnd>(&request.body)) {
    auto r = snapshots_->end(q->snapshot_id);
    if (!r) return error(r.status());
    return encoded(id, *r);
  }
  if (const auto* q = std::get_if<BacklogRequest>(&request.body)) {
    if (q->node != config_.peer.name) {
      return error(failed_precondition("node \"" + q->node + "\" is not this node's peer"));
    }
    auto b = backlog_->read();
    if (!b) return error(b.status());
    BacklogAnswer a;
    a.transactions = static_cast<uint64_t>(std::max<int64_t>(0, b->transactions));
    a.rows = static_cast<uint64_t>(std::max<int64_t>(0, b->rows));
    a.oldest_age_ms = b->oldest ? static_cast<uint64_t>(b->oldest->age_s * 1000) : 0;
    return encoded(id, a);
  }
  return encoded(id, ErrorAnswer{"not a verify request"});
}

}  // namespace mpf::server
