// The data-path simulation (datapath_sim.hpp) over many seeds, its break switches, and the
// 200,000-change transaction. CI runs seeds 1..kDefaultSeeds; MPF_SIM_DATAPATH_SEEDS=<count> runs
// seeds 1..count (the long campaign: tests/bench/datapath_campaign.sh), MPF_SIM_DATAPATH_SEED=<n>
// replays one, MPF_SIM_DATAPATH_SECONDS sets the simulated seconds of faults per seed, and
// MPF_SIM_BREAK=ack_before_commit|trim_past_ack|resume_late runs the campaign with that bug in.
#include "sim/datapath_sim.hpp"

#include <cstdio>
#include <cstdlib>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
namespace dp = mpf::sim::datapath;

namespace {

constexpr uint64_t kDefaultSeeds = 200;

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void print(uint64_t first, uint64_t last, const dp::Counters& c, dp::Break b) {
  std::printf(
      "datapath sim: seeds %llu..%llu, break %s, %.2f simulated hours: %llu transactions, "
      "%llu changes, %llu frames, %llu sessions; cuts=%llu crashes=%llu db_restarts=%llu "
      "frame_faults=%llu late_frames=%llu apply_retries=%llu split_parts=%llu\n",
      static_cast<unsigned long long>(first), static_cast<unsigned long long>(last),
      dp::to_string(b), std::chrono::duration<double>(c.simulated).count() / 3600.0,
      static_cast<unsigned long long>(c.transactions), static_cast<unsigned long long>(c.changes),
      static_cast<unsigned long long>(c.frames), static_cast<unsigned long long>(c.sessions),
      static_cast<unsigned long long>(c.cuts), static_cast<unsigned long long>(c.crashes),
      static_cast<unsigned long long>(c.db_restarts),
      static_cast<unsigned long long>(c.frame_faults),
      static_cast<unsigned long long>(c.late_frames),
      static_cast<unsigned long long>(c.apply_retries),
      static_cast<unsigned long long>(c.split_parts));
  std::fflush(stdout);
}

dp::Config config(uint64_t seed, dp::Break b) {
  dp::Config c;
  c.seed = seed;
  c.inject = b;
  c.length = std::chrono::seconds(env_number("MPF_SIM_DATAPATH_SECONDS", 30));
  // Every fifth seed ships in parts of a 2,000-change transaction; some run a wider window.
  if (seed % 5 == 0) c.big_transaction = 2000;
  c.window = seed % 3 == 0 ? 1 : 4;
  return c;
}

// The first violation of `b` in seeds 1..limit, or "" when none fired.
std::string first_violation(dp::Break b, uint64_t limit) {
  for (uint64_t seed = 1; seed <= limit; ++seed) {
    auto r = dp::run(config(seed, b));
    if (!r.violations.empty()) return r.violations.front();
  }
  return "";
}

}  // namespace

TEST_SUITE("datapath_sim") {
  TEST_CASE(
      "every committed transaction is applied on the peer exactly once in commit order, trim and "
      "acks never run ahead of what is durable, and both sides converge") {
    uint64_t first = 1;
    uint64_t last = env_number("MPF_SIM_DATAPATH_SEEDS", kDefaultSeeds);
    if (const uint64_t one = env_number("MPF_SIM_DATAPATH_SEED", 0); one != 0) first = last = one;
    const dp::Break b = dp::break_from_env();
    dp::Counters total;
    uint64_t failed = 0;
    for (uint64_t seed = first; seed <= last; ++seed) {
      CAPTURE(seed);
      auto r = dp::run(config(seed, b));
      total += r.counters;
      if (!r.violations.empty()) {
        ++failed;
        if (failed <= 3) {
          std::fprintf(stderr,
                       "datapath sim: seed %llu failed (replay: MPF_SIM_DATAPATH_SEED=%llu); last "
                       "steps:\n%s\n",
                       static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
                       r.trace.c_str());
        }
      }
      for (const auto& v : r.violations) FAIL_CHECK(v);
    }
    print(first, last, total, b);
    std::printf("datapath sim: %llu of %llu seeds failed\n",
                static_cast<unsigned long long>(failed),
                static_cast<unsigned long long>(last - first + 1));
    // A campaign in which these never fired tested nothing.
    if (last - first >= 50) {
      CHECK(total.cuts > 0);
      CHECK(total.crashes > 0);
      CHECK(total.db_restarts > 0);
      CHECK(total.frame_faults > 0);
      CHECK(total.late_frames > 0);
      CHECK(total.apply_retries > 0);
      CHECK(total.split_parts > 0);
    }
  }

  TEST_CASE("ack_before_commit breaks 'acknowledged means durable'") {
    const std::string v = first_violation(dp::Break::kAckBeforeCommit, 20);
    CAPTURE(v);
    CHECK(v.find("as acknowledged but") != std::string::npos);
  }

  TEST_CASE("trim_past_ack breaks 'trim never deletes what the peer has not applied durably'") {
    const std::string v = first_violation(dp::Break::kTrimPastAck, 20);
    CAPTURE(v);
    CHECK(v.find("trimmed its log through") != std::string::npos);
  }

  TEST_CASE("resume_late breaks 'exactly once, in commit order'") {
    const std::string v = first_violation(dp::Break::kResumeLate, 20);
    CAPTURE(v);
    CHECK(v.find("lost, duplicated or out of order") != std::string::npos);
  }

  TEST_CASE("a 200,000-change transaction held open over several windows arrives whole, once") {
    dp::Config c;
    c.seed = 4242;
    c.length = 20s;
    c.big_transaction = 200'000;
    c.batch_changes = 1000;
    // No crash or database restart while it is open (either would roll it back); cuts, frame
    // faults and lost apply connections go on.
    c.crash_rate = 0;
    c.db_restart_rate = 0;
    auto r = dp::run(c);
    for (const auto& v : r.violations) FAIL_CHECK(v);
    if (!r.violations.empty()) std::fprintf(stderr, "%s\n", r.trace.c_str());
    CHECK(r.counters.changes >= 200'000);
    CHECK(r.counters.split_parts >= 200);
  }
}
