// Layout (all integers little-endian, fixed width; strings u8 length + bytes):
//   'M' 'P' 'H' kind(u8 'B'|'A') protocol(u8) seq(u64) echo_wall_us(i64)
//   node(str) target(str) role(u8) epoch(i64) wall_us(i64)
//   applied_from_peer(i64 tick, i64 seq) acked_by_peer(i64, i64) catalog_version(i32)
//   definitions_digest(u64) command(u8) command_epoch(i64) command_position(i64, i64)
//   note(u16 length + bytes) crc32c(u32 over everything before it)
// Fixed widths on purpose: a heartbeat is ~120 bytes once a minute, and a fixed layout is the
// easiest thing to check strictly against garbage.
#include <cstring>

#include <mpf/core/crc32c.hpp>
#include <mpf/heartbeat/heartbeat_message.hpp>

namespace mpf::heartbeat {
namespace {

constexpr size_t kMaxNote = 1024;

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { fixed(v, 2); }
  void u32(uint32_t v) { fixed(v, 4); }
  void u64(uint64_t v) { fixed(v, 8); }
  void i64(int64_t v) { fixed(static_cast<uint64_t>(v), 8); }
  void str8(const std::string& s) {
    u8(static_cast<uint8_t>(s.size()));
    out_ += s;
  }
  void position(const Position& p) {
    i64(p.tick);
    i64(p.seq);
  }
  std::string& out() { return out_; }

 private:
  void fixed(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  uint8_t u8() { return static_cast<uint8_t>(fixed(1)); }
  uint16_t u16() { return static_cast<uint16_t>(fixed(2)); }
  uint32_t u32() { return static_cast<uint32_t>(fixed(4)); }
  uint64_t u64() { return fixed(8); }
  int64_t i64() { return static_cast<int64_t>(fixed(8)); }
  std::string bytes(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::string str8() { return bytes(u8()); }
  Position position() {
    Position p;
    p.tick = i64();
    p.seq = i64();
    return p;
  }

 private:
  uint64_t fixed(int n) {
    if (!ok_ || in_.size() - pos_ < static_cast<size_t>(n)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += n;
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// The role octet is the enum's value: docs/protocol.md lists them, and these pin them.
static_assert(static_cast<uint8_t>(Role::kStarting) == 0 &&
              static_cast<uint8_t>(Role::kStandby) == 1 &&
              static_cast<uint8_t>(Role::kPromoting) == 2 &&
              static_cast<uint8_t>(Role::kActive) == 3 &&
              static_cast<uint8_t>(Role::kDemoting) == 4 &&
              static_cast<uint8_t>(Role::kStandalone) == 5);

bool valid_wire_role(uint8_t r) { return r <= static_cast<uint8_t>(Role::kStandalone); }

}  // namespace

uint8_t heartbeat_protocol_of(std::string_view frame) {
  return frame.size() >= 5 && is_heartbeat_frame(frame) ? static_cast<uint8_t>(frame[4]) : 0;
}

bool is_heartbeat_frame(std::string_view frame) {
  return frame.size() >= kHeartbeatMagic.size() && frame.substr(0, 3) == kHeartbeatMagic;
}

std::string encode(const HeartbeatMessage& m) {
  MPF_ASSERT(m.status.node.size() <= 255 && m.status.target.size() <= 255, "node names fit");
  Writer w;
  w.out() += kHeartbeatMagic;
  w.u8(static_cast<uint8_t>(m.kind));
  w.u8(kHeartbeatProtocol);
  w.u64(m.seq);
  w.i64(m.echo_wall_us);
  w.str8(m.status.node);
  w.str8(m.status.target);
  w.u8(static_cast<uint8_t>(m.status.role));
  w.i64(m.status.epoch);
  w.i64(m.status.wall_us);
  w.position(m.status.applied_from_peer);
  w.position(m.status.acked_by_peer);
  w.u32(static_cast<uint32_t>(m.status.catalog_version));
  w.u64(m.status.definitions_digest);
  w.u8(static_cast<uint8_t>(m.command));
  w.i64(m.command_epoch);
  w.position(m.command_position);
  const std::string note = m.note.substr(0, kMaxNote);
  w.u16(static_cast<uint16_t>(note.size()));
  w.out() += note;
  w.u32(crc32c(w.out()));
  return std::move(w.out());
}

Result<HeartbeatMessage> decode_heartbeat(std::string_view frame) {
  if (!is_heartbeat_frame(frame)) return invalid_argument("not a heartbeat frame (bad magic)");
  if (frame.size() < 8) return invalid_argument("heartbeat frame truncated");
  const std::string_view body = frame.substr(0, frame.size() - 4);
  Reader crc_reader(frame.substr(frame.size() - 4));
  if (crc32c(body) != crc_reader.u32()) return invalid_argument("heartbeat frame CRC mismatch");

  Reader r(body.substr(3));
  HeartbeatMessage m;
  const uint8_t kind = r.u8();
  if (kind != 'B' && kind != 'A') {
    return invalid_argument("heartbeat frame of unknown kind " + std::to_string(kind));
  }
  m.kind = static_cast<HeartbeatMessage::Kind>(kind);
  const uint8_t protocol = r.u8();
  if (r.ok() && protocol != kHeartbeatProtocol) {
    // Well-formed (the CRC matched) but of another release: kFailedPrecondition, so the port
    // answers it (docs/protocol.md, heartbeat frames) instead of dropping it as garbage.
    return failed_precondition("heartbeat protocol " + std::to_string(protocol) +
                               " is not supported (this node speaks " +
                               std::to_string(kHeartbeatProtocol) + ")");
  }
  m.seq = r.u64();
  m.echo_wall_us = r.i64();
  m.status.node = r.str8();
  m.status.target = r.str8();
  const uint8_t role = r.u8();
  m.status.epoch = r.i64();
  m.status.wall_us = r.i64();
  m.status.applied_from_peer = r.position();
  m.status.acked_by_peer = r.position();
  m.status.catalog_version = static_cast<int32_t>(r.u32());
  m.status.definitions_digest = r.u64();
  const uint8_t command = r.u8();
  m.command_epoch = r.i64();
  m.command_position = r.position();
  const uint16_t note_size = r.u16();
  if (note_size > kMaxNote) return invalid_argument("heartbeat note too long");
  m.note = r.bytes(note_size);
  if (!r.ok()) return invalid_argument("heartbeat frame truncated");
  if (!r.at_end()) return invalid_argument("heartbeat frame has trailing bytes");
  if (!valid_wire_role(role)) return invalid_argument("heartbeat names an unknown role");
  m.status.role = static_cast<Role>(role);
  if (command > static_cast<uint8_t>(Command::kHandover)) {
    return invalid_argument("heartbeat carries an unknown command " + std::to_string(command));
  }
  m.command = static_cast<Command>(command);
  if (m.status.node.empty()) return invalid_argument("heartbeat without a node name");
  return m;
}

uint64_t definitions_digest(std::string_view canonical_text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : canonical_text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace mpf::heartbeat
