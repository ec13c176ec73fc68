// libFuzzer target for the port-2008 wire decoder (docs/protocol.md): whatever arrives on
// the port may be truncated, corrupted or hostile (docs/design.md §6). Built with clang by
// tests/fuzz/CMakeLists.txt under ASan and UBSan, with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
// so frame checksums are not enforced and mutated frames can reach acceptance.
//
// Each input is used three ways:
// 1. as one frame for a fresh Decoder; an accepted message must re-encode (in every version)
//    and decode to itself;
// 2. split at "#next-frame#" into up to 3 frames for one Decoder, as a session's stream (the
//    seed corpus holds such streams, so mutations reach batches decoded after other batches);
// 3. as a raw batch payload of each protocol version; an accepted payload must re-encode to
//    exactly the same bytes (the encoding is canonical: version 2 refuses a value in any form but
//    the one its encoder picks).
// Crashes, hangs, leaks, undefined behaviour and allocations over -rss_limit_mb are findings.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <mpf/replicator/wire.hpp>

namespace wire = mpf::replicator::wire;

namespace {

constexpr std::string_view kSeparator = "#next-frame#";

void require(bool cond, const char* what, const std::string& detail = {}) {
  if (!cond) {
    std::fprintf(stderr, "wire_fuzz: %s %s\n", what, detail.c_str());
    std::abort();
  }
}

// In every protocol version: a batch read from a version 1 frame must also survive version 2.
void check_round_trip(const wire::Message& m) {
  for (uint32_t version = wire::kMinProtocolVersion; version <= wire::kProtocolVersion; ++version) {
    wire::Encoder enc;
    require(enc.use_version(version).is_ok(), "version not accepted");
    auto frame = enc.try_encode(m);
    require(frame.is_ok(), "an accepted message does not encode:", frame.status().message());
    wire::Decoder dec;
    auto back = dec.decode(*frame);
    require(back.is_ok(), "a re-encoded message does not decode:", back.status().message());
    require(*back == m, "a message changed in a round trip:", wire::message_name(m));
  }
}

size_t find_separator(std::string_view s) {
  const void* p = memmem(s.data(), s.size(), kSeparator.data(), kSeparator.size());
  return p ? static_cast<size_t>(static_cast<const char*>(p) - s.data()) : std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  {
    wire::Decoder d;
    auto m = d.decode(input);
    require(m.is_ok() != d.broken(), "broken() does not match the result");
    if (m.is_ok()) check_round_trip(*m);
  }

  {
    wire::Decoder d;
    std::string_view rest = input;
    for (int i = 0; i < 3; ++i) {
      const size_t cut = i < 2 ? find_separator(rest) : std::string_view::npos;
      const std::string_view frame = rest.substr(0, cut);
      auto m = d.decode(frame);
      require(m.is_ok() || d.broken(), "a failed decode left the decoder usable");
      if (cut == std::string_view::npos) break;
      rest = rest.substr(cut + kSeparator.size());
    }
  }

  for (uint32_t version = wire::kMinProtocolVersion; version <= wire::kProtocolVersion; ++version) {
    auto chunks = wire::decode_batch_payload(input, version);
    if (chunks.is_ok()) {
      require(wire::encode_batch_payload(*chunks, version) == input,
              "an accepted payload is not canonical, version", std::to_string(version));
    }
  }
  return 0;
}
