#include "tools/node_log.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <chrono>

namespace annal::tools {

namespace {

void append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

// The length of the valid UTF-8 sequence at s[i], or 0 if there is none
// (bad lead byte, truncated, overlong, a surrogate, or above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  return n;
}

}  // namespace

void append_json_escaped(std::string_view s, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (std::size_t n = utf8_sequence(s, i)) {
        append(out, s.substr(i, n));
        i += n;
      } else {
        append(out, "\\ufffd");
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"':
        append(out, "\\\"");
        break;
      case '\\':
        append(out, "\\\\");
        break;
      case '\n':
        append(out, "\\n");
        break;
      case '\r':
        append(out, "\\r");
        break;
      case '\t':
        append(out, "\\t");
        break;
      case '\b':
        append(out, "\\b");
        break;
      case '\f':
        append(out, "\\f");
        break;
      default:
        if (c < 0x20) {
          const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          append(out, std::string_view(esc, sizeof esc));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  const auto since = msg.time.time_since_epoch();
  const auto secs = duration_cast<seconds>(since);
  const auto ms = duration_cast<milliseconds>(since - secs).count();
  const time_t t = static_cast<time_t>(secs.count());
  struct tm tm {};
  ::gmtime_r(&t, &tm);
  fmt::format_to(std::back_inserter(dest),
                 "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ms);
  const auto level = spdlog::level::to_string_view(msg.level);
  append_json_escaped(std::string_view(level.data(), level.size()), dest);
  append(dest, "\",\"logger\":\"");
  append_json_escaped(std::string_view(msg.logger_name.data(), msg.logger_name.size()), dest);
  append(dest, "\",\"message\":\"");
  append_json_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  append(dest, "\"}\n");
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

void setup_node_logging(spdlog::level::level_enum level, LogFormat format) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("annald"));
  if (format == LogFormat::kJson)
    spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
  else
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %n: %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(level);
}

}  // namespace annal::tools
