#pragma once
// Small helpers for the offline tools' machine output: JSON string escaping,
// a line-at-a-time object builder, and base64.

#include <cstdint>
#include <string>
#include <string_view>

namespace annal::tools {

// Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 are
// written as \u00XX escapes of the byte (so output is always valid JSON).
void append_json_string(std::string& out, std::string_view s);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

// Builds one JSON object: {"k":v,...}. Keys are written as given (callers
// use plain ASCII keys).
class JsonObject {
 public:
  JsonObject& str(std::string_view key, std::string_view value);
  JsonObject& num(std::string_view key, std::uint64_t value);
  JsonObject& num(std::string_view key, std::int64_t value);
  JsonObject& num(std::string_view key, double value);
  JsonObject& boolean(std::string_view key, bool value);
  JsonObject& null(std::string_view key);
  // `json` must already be valid JSON text (an object, array, number...).
  JsonObject& raw(std::string_view key, std::string_view json);
  std::string done() const { return buf_ + "}"; }

 private:
  void key(std::string_view k);
  std::string buf_ = "{";
};

// Whether `text` is one complete, valid JSON value (simdjson DOM parse).
bool is_valid_json(std::string_view text);

}  // namespace annal::tools
