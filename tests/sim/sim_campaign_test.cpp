// The default campaign over many seeds (docs/design.md §12). CI runs the fixed seeds 1..24;
// MPF_SIM_SEED=<n> replays one, MPF_SIM_SEEDS=<count> runs seeds 1..count, MPF_SIM_MINUTES sets
// the simulated minutes of faults per seed (default 10), MPF_SIM_TRACE=1 prints every step.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include "sim/sim.hpp"

using namespace std::chrono_literals;
using mpf::sim::Counters;
using mpf::sim::Fault;

namespace {

constexpr uint64_t kDefaultSeeds = 24;

uint64_t env_number(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void print_summary(uint64_t first, uint64_t last, const Counters& c) {
  const double hours = std::chrono::duration<double>(c.simulated).count() / 3600.0;
  std::printf("sim campaign: seeds %llu..%llu, %.2f simulated hours, %llu frames\n",
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(last), hours,
              static_cast<unsigned long long>(c.frames));
  std::printf("  faults fired:");
  for (size_t i = 0; i < c.faults.size(); ++i) {
    std::printf(" %s=%llu", std::string(to_string(static_cast<Fault>(i))).c_str(),
                static_cast<unsigned long long>(c.faults[i]));
  }
  std::printf(
      "\n  failovers: automatic=%llu operator=%llu (after heal, no active: %llu); "
      "switchover requests=%llu, handovers=%llu; step-downs=%llu; standalone=%llu; "
      "promoted while still hearing the active peer=%llu; same epoch after a promotion that "
      "never heard the peer=%llu\n",
      static_cast<unsigned long long>(c.automatic_failovers),
      static_cast<unsigned long long>(c.operator_failovers),
      static_cast<unsigned long long>(c.end_operator_failovers),
      static_cast<unsigned long long>(c.switchover_requests),
      static_cast<unsigned long long>(c.handovers), static_cast<unsigned long long>(c.step_downs),
      static_cast<unsigned long long>(c.standalones),
      static_cast<unsigned long long>(c.promoted_while_hearing_active),
      static_cast<unsigned long long>(c.blind_same_epoch));
  std::printf(
      "  issue #18: self-fences=%llu unfences=%llu; no-active promotions=%llu; arbiter "
      "refusals=%llu; two-writer episodes=%llu (ICMP-witness seeds only: a cut both survive "
      "with the witness); writes open on a killed daemon beside a writer=%llu\n",
      static_cast<unsigned long long>(c.self_fences), static_cast<unsigned long long>(c.unfences),
      static_cast<unsigned long long>(c.no_active_promotions),
      static_cast<unsigned long long>(c.arbiter_refusals),
      static_cast<unsigned long long>(c.two_writer_episodes),
      static_cast<unsigned long long>(c.down_daemon_overlaps));
  std::fflush(stdout);
}

}  // namespace

TEST_CASE(
    "random faults and operator commands never put two actives in one epoch, and the pair "
    "settles to one active and one standby after the faults stop") {
  uint64_t first = 1;
  uint64_t last = env_number("MPF_SIM_SEEDS", kDefaultSeeds);
  if (const uint64_t one = env_number("MPF_SIM_SEED", 0); one != 0) first = last = one;
  const auto length = std::chrono::minutes(env_number("MPF_SIM_MINUTES", 10));

  Counters total;
  for (uint64_t seed = first; seed <= last; ++seed) {
    CAPTURE(seed);
    const auto r = mpf::sim::run_campaign(seed, length);
    total += r.counters;
    if (!r.violations.empty()) {
      std::fprintf(stderr,
                   "sim: seed %llu failed (replay: MPF_SIM_SEED=%llu; config: %s); last steps:\n"
                   "%s\n",
                   static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
                   r.config.c_str(), r.trace.c_str());
    }
    for (const auto& v : r.violations) FAIL_CHECK(v);
  }
  print_summary(first, last, total);
  // FoundationDB's CODE_PROBE: a campaign in which these never fired tested nothing.
  CHECK(total.fault(Fault::kPartition) > 0);
  CHECK(total.fault(Fault::kDaemonCrash) + total.fault(Fault::kHostCrash) > 0);
  CHECK(total.fault(Fault::kDrop) > 0);
}
