// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF;
// crc32c("123456789") == 0xE3069283. Used by the port-2008 codecs (replicator
// wire frames, heartbeat frames).
//
// Why a checksum on top of TCP: a batch payload is one slice of a zstd stream that spans the
// session. A frame lost or repeated under ZeroMQ's silent reconnects (docs/design.md §6) leaves the
// receiver's window out of step, and zstd may then decode wrong bytes without an error; those
// bytes could still parse as rows. The checksum turns that into a refused batch. Table-driven,
// one table of 1 KiB built at compile time: ~1 GB/s is plenty for a 16 KB/s link.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace mpf {

namespace crc32c_detail {
constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
inline constexpr std::array<uint32_t, 256> kTable = make_table();
}  // namespace crc32c_detail

inline uint32_t crc32c(std::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (char ch : data) {
    c = crc32c_detail::kTable[(c ^ static_cast<uint8_t>(ch)) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

}  // namespace mpf
