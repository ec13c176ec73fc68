// The deterministic simulation of the data path: two nodes, each with an in-memory change log
// (with the real log's commit-order rules) and an in-memory applier with a durable position,
// simulated clients writing, and between them the SAME session classes the daemon runs
// (ShipperSession, ReceiverSession in replicator/src/core/) and the real wire codec, over a
// simulated network that drops, duplicates, reorders, delays and cuts, with node crashes and
// database restarts. One seed is one run; everything random comes from the seed.
//
// Invariants checked after every step and at the end (docs/simulation.md):
//  - exactly once, in commit order: what a node applied durably of its peer's transactions is a
//    prefix of the peer's commit order;
//  - trim never deletes a change the peer has not applied durably;
//  - acknowledged means durable: no shipper holds an acked position beyond what its peer has
//    durably applied;
//  - at the end, after the faults stop: both sides converge (every committed transaction applied
//    once on the peer, the same rows on both nodes).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <mpf/core/clock.hpp>

namespace mpf::sim::datapath {

// Data-path bugs injected on purpose (MPF_SIM_BREAK=<name>) to show each invariant can fail.
enum class Break {
  kNone,
  kAckBeforeCommit,  // "ack_before_commit": the applier reports a group before it is durable
  kTrimPastAck,      // "trim_past_ack": the log trims one transaction past the acked position
  kResumeLate,       // "resume_late": a seek resumes one transaction after the asked position
};
// MPF_SIM_BREAK for the data path: one of the names above, else kNone (the roles simulation
// owns the other names).
Break break_from_env();
const char* to_string(Break b);

struct Config {
  uint64_t seed = 1;
  Duration length = std::chrono::seconds(60);  // simulated time with faults and writes
  Break inject = Break::kNone;
  size_t batch_changes = 40;  // ShipperOptions::batch_changes (small: many parts and batches)
  int window = 4;
  // Fault rates, per simulated second.
  double cut_rate = 0.05;
  double crash_rate = 0.03;
  double db_restart_rate = 0.03;
  double frame_fault = 0.002;  // per frame: dropped, duplicated or delayed past the next one
  // One transaction of this many changes in the run (0: none); held open over several windows.
  int64_t big_transaction = 0;
};

struct Counters {
  uint64_t transactions = 0;  // committed by clients on both nodes
  uint64_t changes = 0;
  uint64_t frames = 0;
  uint64_t sessions = 0;
  uint64_t cuts = 0;
  uint64_t crashes = 0;
  uint64_t db_restarts = 0;
  uint64_t frame_faults = 0;
  uint64_t late_frames = 0;  // frames of an ended session delivered after a newer session's Hello
  uint64_t apply_retries = 0;
  uint64_t split_parts = 0;  // chunks that were parts of a split transaction
  Duration simulated{};
  Counters& operator+=(const Counters& o);
};

struct RunResult {
  std::vector<std::string> violations;
  Counters counters;
  std::string trace;  // the last steps, for a failing seed
};

RunResult run(const Config& config);

}  // namespace mpf::sim::datapath
