// Status and Result<T>: how expected failures cross component boundaries.
//
// A Status is cheap when OK (no allocation). Codes exist only where some caller reacts to them
// differently; the message carries the details for the operator, in PostgreSQL's error style:
// short, lower case, no final period, naming the object in quotes.
#pragma once

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace mpf {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // bad config, bad CLI argument, bad input from a peer
  kNotFound,            // a named object (table, key file, position) does not exist
  kUnavailable,         // database or peer unreachable right now; retry later
  kFailedPrecondition,  // state forbids it (catalog newer than we know, peer active, ...)
  kUnknownOutcome,      // the operation may or may not have happened (lost ack, broken commit)
  kInternal,
};

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }

  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context, keeping the code: "init-db: " + original.
  Status with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status failed_precondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status unknown_outcome(std::string m) { return {Code::kUnknownOutcome, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).is_ok()) v_ = Status(Code::kInternal, "Result built from OK status");
  }

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }

  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace mpf

// A broken invariant in core is a bug, not an expected failure: abort loudly.
#define MPF_ASSERT(cond, msg)                                                                  \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::cerr << "mpfailover: assertion failed: " #cond " (" << (msg) << ") at " << __FILE__ \
                << ":" << __LINE__ << std::endl;                                               \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
