#!/usr/bin/env bash
# The README's second command: install dependencies, build, and run the whole test suite
# (unit tests and the deterministic simulation also under ASan/UBSan; integration tests against
# real PostgreSQL 15 clusters).
# Usage: deploy/test.sh [extra ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)

echo "== installing dependencies"
deploy/install-deps.sh

# CI (.ci/run sets CI=true) keeps warnings as errors; a user's run only shows them.
werror=OFF
[[ ${CI:-} != true ]] || werror=ON

echo "== building (RelWithDebInfo) in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPF_WERROR=$werror >/dev/null
cmake --build build -j "$jobs"

echo "== building unit tests and the simulation with ASan/UBSan in build-asan/"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMPF_SANITIZE=ON -DMPF_WERROR=$werror >/dev/null
cmake --build build-asan -j "$jobs" --target mpf_unit_tests mpf_sim_tests mpf_datapath_sim_tests

echo "== unit tests and the simulation under ASan/UBSan"
(cd build-asan && ctest -L "unit|sim" --output-on-failure)

echo "== whole suite"
cd "$root/build"
ctest --output-on-failure --timeout 900 "$@"
