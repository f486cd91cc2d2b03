#pragma once
// Errors for the engine and index: one mechanism, Status / Result<T>, built on
// an enum class with its own std::error_category so codes map onto wire codes.

#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace annal {

enum class Errc : std::uint16_t {
  kOk = 0,
  kWrongExpectedRevision = 1,  // optimistic concurrency check failed
  kStreamNotFound = 2,
  kInvalidJson = 3,
  kTooLarge = 4,  // event, append, stream name over a limit
  kBadRequest = 5,
  kWriterFailed = 6,  // sticky: an fdatasync or write failed; restart to recover
  kNoSpace = 7,       // ENOSPC or below the free-space floor
  kShuttingDown = 8,
  kCorruption = 9,  // checksum or structural damage, names file and offset
  kIoError = 10,
  kNotFound = 11,      // position / revision out of range
  kLostAtRepair = 12,  // position was replaced by a repair marker
  kLocked = 13,        // data directory held by another process
  kInvalidArgument = 14,
  kInternal = 15,
  kAppendConditionFailed = 16,  // an append condition (DCB query) found a matching event
  kStreamDeleted = 17,          // the stream was hard-deleted (tombstone): never written again
  kBusy = 18,                   // one at a time: a backup or a scavenge is already running
  kAlreadyExists = 19,          // a path or name in use (wire: already_exists, 109)
};

const std::error_category& annal_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;
const char* errc_name(Errc e) noexcept;

// A success or an error code with a message naming what it is about
// (file, offset, stream). Cheap to pass when ok.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == Errc::kOk; }
  explicit operator bool() const { return is_ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code_name: message"
  std::string to_string() const;

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

// Value or error. A small stand-in for std::expected (C++23).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)
  Result(Errc code, std::string message) : v_(Status(code, std::move(message))) {}

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // The error; Status::ok() when this holds a value.
  Status status() const { return is_ok() ? Status() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace annal

template <>
struct std::is_error_code_enum<annal::Errc> : std::true_type {};

// Always-on invariant check: aborts with file:line and a message, in release too.
#define ANNAL_CHECK(cond, msg)                                          \
  do {                                                                  \
    if (!(cond)) ::annal::check_failed(__FILE__, __LINE__, #cond, msg); \
  } while (0)

namespace annal {
[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const std::string& msg);
}  // namespace annal

#define ANNAL_RETURN_IF_ERROR(expr) \
  do {                              \
    ::annal::Status _st = (expr);   \
    if (!_st.is_ok()) return _st;   \
  } while (0)
