#!/usr/bin/env bash
# The long data-path simulation campaign (docs/simulation.md): many seeds of the deterministic
# simulation of shipping and applying (tests/sim/datapath_sim.cpp), not part of CI.
#   tests/bench/datapath_campaign.sh [SEEDS] [SECONDS_PER_SEED]
# Defaults: 10,000 seeds of 60 simulated seconds each. BUILD_DIR (default build/) must hold a
# built mpf_datapath_sim_tests. A failing seed prints its replay command and last steps; the
# summary line gives the simulated hours and how often each fault fired.
set -euo pipefail
seeds=${1:-10000}
seconds=${2:-60}
build=${BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
bin="$build/tests/mpf_datapath_sim_tests"
[[ -x "$bin" ]] || { echo "datapath_campaign: $bin is not built (cmake --build build --target mpf_datapath_sim_tests)" >&2; exit 2; }
MPF_SIM_DATAPATH_SEEDS=$seeds MPF_SIM_DATAPATH_SECONDS=$seconds \
  "$bin" --test-case='*exactly once*' --no-intro=true
