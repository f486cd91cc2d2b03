#include "engine/status.h"

#include <cstdio>
#include <cstdlib>

namespace annal {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "annal"; }
  std::string message(int ev) const override { return errc_name(static_cast<Errc>(ev)); }
};

}  // namespace

const std::error_category& annal_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), annal_category()};
}

const char* errc_name(Errc e) noexcept {
  switch (e) {
    case Errc::kOk:
      return "ok";
    case Errc::kWrongExpectedRevision:
      return "wrong_expected_revision";
    case Errc::kStreamNotFound:
      return "stream_not_found";
    case Errc::kInvalidJson:
      return "invalid_json";
    case Errc::kTooLarge:
      return "too_large";
    case Errc::kBadRequest:
      return "bad_request";
    case Errc::kWriterFailed:
      return "writer_failed";
    case Errc::kNoSpace:
      return "no_space";
    case Errc::kShuttingDown:
      return "shutting_down";
    case Errc::kCorruption:
      return "corruption";
    case Errc::kIoError:
      return "io_error";
    case Errc::kNotFound:
      return "not_found";
    case Errc::kLostAtRepair:
      return "lost_at_repair";
    case Errc::kLocked:
      return "locked";
    case Errc::kInvalidArgument:
      return "invalid_argument";
    case Errc::kInternal:
      return "internal";
    case Errc::kAppendConditionFailed:
      return "append_condition_failed";
    case Errc::kStreamDeleted:
      return "stream_deleted";
    case Errc::kBusy:
      return "busy";
    case Errc::kAlreadyExists:
      return "already_exists";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(errc_name(code_)) + ": " + message_;
}

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "annal: invariant violated at %s:%d: %s: %s\n", file, line, cond,
               msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace annal
