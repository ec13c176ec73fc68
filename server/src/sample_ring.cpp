#include <mpf/server/sample_ring.hpp>

namespace mpf::server {

SampleRing::SampleRing(size_t capacity, double interval_s)
    : slots_(capacity == 0 ? 1 : capacity), interval_(interval_s) {}

bool SampleRing::record(double t, std::optional<int64_t> backlog, uint64_t applied_total) {
  if (last_t_ && t <= *last_t_) return false;
  RateSample s;
  s.t = t;
  s.backlog = backlog;
  // A gap of more than two intervals means missed samples: the rate would be the gap's average.
  if (last_t_ && t - *last_t_ <= 2.5 * interval_ && applied_total >= last_applied_) {
    s.apply_rate = static_cast<double>(applied_total - last_applied_) / (t - *last_t_);
  }
  last_t_ = t;
  last_applied_ = applied_total;
  slots_[next_] = s;
  next_ = (next_ + 1) % slots_.size();
  if (count_ < slots_.size()) ++count_;
  return true;
}

std::vector<RateSample> SampleRing::samples() const {
  std::vector<RateSample> out;
  out.reserve(count_);
  const size_t first = (next_ + slots_.size() - count_) % slots_.size();
  for (size_t i = 0; i < count_; ++i) out.push_back(slots_[(first + i) % slots_.size()]);
  return out;
}

nlohmann::ordered_json SampleRing::to_json() const {
  using ojson = nlohmann::ordered_json;
  ojson points = ojson::array();
  for (const auto& s : samples()) {
    points.push_back({{"t", s.t},
                      {"backlog", s.backlog ? ojson(*s.backlog) : ojson(nullptr)},
                      {"apply_rate", s.apply_rate ? ojson(*s.apply_rate) : ojson(nullptr)}});
  }
  return ojson{{"interval_s", interval_}, {"capacity", slots_.size()}, {"points", points}};
}

}  // namespace mpf::server
