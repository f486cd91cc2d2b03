#pragma once
// annald's logs: one line per message on stderr, as text or as JSON lines
// with the same fields (docs/operations.md, "Logs"):
//   2026-11-27T09:36:21.236Z info annald: listening on 127.0.0.1:7411
//   {"time":"2026-11-27T09:36:21.236Z","level":"info","logger":"annald","message":"listening on
//   127.0.0.1:7411"}
//
// Thread safety: setup_node_logging replaces spdlog's default logger and is
// called once by main before any other thread logs. JsonLogFormatter is used
// by spdlog under its sink's lock, like any formatter.

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

#include "tools/node_config.h"

namespace annal::tools {

// {"time":…,"level":…,"logger":…,"message":…}\n. time is UTC ISO-8601 with
// milliseconds; level is spdlog's name (trace, debug, info, warning, error,
// critical). Strings are JSON-escaped: quotes, backslashes and control
// characters escaped, valid UTF-8 passed through as is, a byte that is not
// part of valid UTF-8 replaced by U+FFFD, so every line is valid JSON.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// Appends `text` JSON-escaped (without the surrounding quotes) to `out`.
void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out);

// Makes "annald" the default logger, writing to stderr in `format` at `level`.
void setup_node_logging(spdlog::level::level_enum level, LogFormat format);

}  // namespace annal::tools
