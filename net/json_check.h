#pragma once
// Validation of an append's events before anything is written: event flags,
// tags and correlation/causation ids strictly valid UTF-8, and every
// JSON-flagged payload parsed completely (docs/protocol.md §3.2). The store
// checks their sizes and counts (index::Limits).
// One per connection (it keeps a parser and a padded buffer); not thread-safe.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/protocol.h"

namespace annal::net::detail {

struct EventRejection {
  proto::Code code;
  std::uint64_t detail;  // the 0-based index of the event
  std::string message;
};

class JsonCheck {
 public:
  // The first event the node must refuse, or nothing.
  std::optional<EventRejection> check(const proto::AppendReq& req) {
    return check(req.stream, req.events);
  }
  // The same for one stream's events (append_multi checks each stream).
  std::optional<EventRejection> check(const std::string& stream,
                                      const std::vector<index::NewEvent>& events);

 private:
  simdjson::error_code parse(const std::string& text);
  // The first tag or id of `e` that is not valid UTF-8, described.
  static std::optional<std::string> non_utf8(const index::NewEvent& e);

  simdjson::dom::parser parser_;
  std::vector<char> buf_;
};

}  // namespace annal::net::detail
