// Helpers for reading a change log to its end in tests.
#pragma once

#include <vector>

#include <doctest/doctest.h>

#include <mpf/replicator/log_source.hpp>

namespace mpf::test {

// Reads until next_batch returns empty; returns every chunk in delivery order.
inline std::vector<replicator::TxChunk> drain(replicator::LogSource& source,
                                              size_t max_changes = 100) {
  std::vector<replicator::TxChunk> out;
  for (int guard = 0; guard < 1'000'000; ++guard) {
    auto batch = source.next_batch(max_changes);
    REQUIRE_MESSAGE(batch, batch.status().message());
    if (batch->empty()) return out;
    for (auto& c : batch->chunks) out.push_back(std::move(c));
  }
  FAIL("drain did not reach the end of the log");
  return out;
}

}  // namespace mpf::test
