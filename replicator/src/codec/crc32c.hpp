// The codec's CRC-32C is the shared one (mpf/core/crc32c.hpp): the heartbeat frames on the same
// port use it too.
#pragma once

#include <mpf/core/crc32c.hpp>

namespace mpf::replicator::wire::codec {
using mpf::crc32c;
}  // namespace mpf::replicator::wire::codec
