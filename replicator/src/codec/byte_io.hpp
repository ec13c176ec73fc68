// Byte-level primitives of the wire format (docs/protocol.md "Primitives"): LEB128 varints,
// zig-zag, length-prefixed strings and values. Private to the codec.
//
// Reader never reads past its input and never trusts a length or count before checking it
// against the bytes that remain, so a hostile frame costs at most its own size in allocations.
// On failure it keeps the first error, worded for an operator ("value length 4000000 exceeds
// remaining 12 bytes"); callers add where it happened.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <mpf/replicator/change.hpp>

namespace mpf::replicator::wire::codec {

inline uint64_t zigzag_encode(int64_t v) {
  // C++20: >> of a negative value is arithmetic, so this is all ones or all zeros.
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t zigzag_decode(uint64_t u) { return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1)); }

// a - b and a + d modulo 2^64: deltas of arbitrary (even hostile) values never overflow.
inline int64_t wrapping_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
inline int64_t wrapping_add(int64_t a, int64_t d) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(d));
}

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void byte(uint8_t b) { out_->push_back(static_cast<char>(b)); }
  void raw(std::string_view s) { out_->append(s.data(), s.size()); }
  void varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_->append(buf, n);
  }
  void zigzag(int64_t v) { varint(zigzag_encode(v)); }
  void string(std::string_view s) {
    varint(s.size());
    raw(s);
  }
  void value(const Value& v) {
    if (!v) {
      varint(0);
    } else {
      varint(static_cast<uint64_t>(v->size()) + 1);
      raw(*v);
    }
  }
  void u32le(uint32_t v) {
    for (int i = 0; i < 4; ++i) byte(static_cast<uint8_t>(v >> (8 * i)));
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  std::string_view rest() const { return in_.substr(pos_); }
  const std::string& error() const { return error_; }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  // Prefixes the error with where it happened: "chunk 3: " + error. Returns false.
  bool context(const std::string& where) {
    error_ = where + ": " + error_;
    return false;
  }

  bool byte(uint8_t* out, const char* what) {
    if (remaining() < 1) return fail(std::string("truncated ") + what);
    *out = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }

  // Minimal LEB128 only: at most 10 bytes, no bits beyond 64, no redundant high zero group
  // (so each number has exactly one encoding and re-encoding gives the same bytes).
  bool varint(uint64_t* out, const char* what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ >= in_.size()) return fail(std::string("truncated ") + what);
      const uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (i == 9 && b > 1) return fail(std::string(what) + " overflows 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return fail(std::string(what) + " has an overlong varint encoding");
        *out = v;
        return true;
      }
    }
    return fail(std::string(what) + " overflows 64 bits");
  }

  bool u32(uint32_t* out, const char* what) {
    uint64_t v;
    if (!varint(&v, what)) return false;
    if (v > UINT32_MAX) {
      return fail(std::string(what) + " " + std::to_string(v) + " is out of range for 32 bits");
    }
    *out = static_cast<uint32_t>(v);
    return true;
  }

  bool zigzag(int64_t* out, const char* what) {
    uint64_t u;
    if (!varint(&u, what)) return false;
    *out = zigzag_decode(u);
    return true;
  }

  bool i32(int32_t* out, const char* what) {
    int64_t v;
    if (!zigzag(&v, what)) return false;
    if (v < INT32_MIN || v > INT32_MAX) {
      return fail(std::string(what) + " " + std::to_string(v) + " is out of range for 32 bits");
    }
    *out = static_cast<int32_t>(v);
    return true;
  }

  bool u32le(uint32_t* out, const char* what) {
    if (remaining() < 4) return fail(std::string("truncated ") + what);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(static_cast<uint8_t>(in_[pos_++])) << (8 * i);
    *out = v;
    return true;
  }

  bool bytes(uint64_t n, std::string_view* out, const char* what) {
    if (n > remaining()) {
      return fail(std::string(what) + " length " + std::to_string(n) + " exceeds remaining " +
                  std::to_string(remaining()) + " bytes");
    }
    *out = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  bool string_view(std::string_view* out, const char* what) {
    uint64_t n;
    if (!varint(&n, what)) return false;
    return bytes(n, out, what);
  }

  bool string(std::string* out, const char* what) {
    std::string_view s;
    if (!string_view(&s, what)) return false;
    out->assign(s.data(), s.size());
    return true;
  }

  bool value(Value* out, const char* what) {
    uint64_t n;
    if (!varint(&n, what)) return false;
    if (n == 0) {
      out->reset();
      return true;
    }
    std::string_view s;
    if (!bytes(n - 1, &s, what)) return false;
    out->emplace(s.data(), s.size());
    return true;
  }

  // A count of elements that take at least `min_bytes` each on the wire: refused before anything
  // is reserved when the rest of the input could not hold that many, or when over `limit`.
  bool count(uint64_t* out, size_t min_bytes, uint64_t limit, const char* what) {
    uint64_t n;
    if (!varint(&n, what)) return false;
    if (n > limit) {
      return fail(std::string(what) + " " + std::to_string(n) + " exceeds the limit of " +
                  std::to_string(limit));
    }
    if (n > remaining() / min_bytes) {
      return fail(std::string(what) + " " + std::to_string(n) + " needs at least " +
                  std::to_string(n * min_bytes) + " bytes, " + std::to_string(remaining()) +
                  " remain");
    }
    *out = n;
    return true;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace mpf::replicator::wire::codec
