#include "admin/target.h"

#include <charconv>

namespace annal::admin {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> url_decode(std::string_view s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && query) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Target> Target::parse(std::string_view raw) {
  Target t;
  const std::size_t q = raw.find('?');
  auto path = url_decode(raw.substr(0, q), false);
  if (!path) return std::nullopt;
  t.path = std::move(*path);
  if (q == std::string_view::npos) return t;
  std::string_view rest = raw.substr(q + 1);
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq), true);
    auto value =
        url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    t.query[std::move(*key)] = std::move(*value);
  }
  return t;
}

std::string Target::get(std::string_view key, std::string_view fallback) const {
  auto it = query.find(key);
  return it == query.end() ? std::string(fallback) : it->second;
}

Target::Number Target::number(std::string_view key, std::uint64_t fallback) const {
  auto it = query.find(key);
  if (it == query.end()) return {fallback, {}};
  const std::string& s = it->second;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size())
    return {0, "query parameter '" + std::string(key) + "' must be an unsigned number, got '" + s +
                   "'"};
  return {v, {}};
}

}  // namespace annal::admin
