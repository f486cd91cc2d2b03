#pragma once
// A request target ("/api/log?from=5&limit=20") split into its decoded path
// and query parameters, with checked number parsing.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace annal::admin {

// Percent-decoding ('+' is a space in the query only); nullopt when a %
// escape is malformed.
std::optional<std::string> url_decode(std::string_view s, bool query);

struct Target {
  std::string path;  // decoded
  std::map<std::string, std::string, std::less<>> query;

  // nullopt: malformed target (bad escape).
  static std::optional<Target> parse(std::string_view raw);

  bool has(std::string_view key) const { return query.find(key) != query.end(); }
  std::string get(std::string_view key, std::string_view fallback = {}) const;
  // The parameter as an unsigned number; `fallback` when absent; an error
  // message naming it when present but not a number.
  struct Number {
    std::uint64_t value = 0;
    std::string error;  // empty: ok
  };
  Number number(std::string_view key, std::uint64_t fallback) const;
};

}  // namespace annal::admin
