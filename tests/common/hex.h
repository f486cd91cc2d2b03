#pragma once
// Bytes as lowercase hex, for comparing frames with documented examples.

#include <cstdio>
#include <string>
#include <string_view>

namespace annal::test {

inline std::string to_hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

}  // namespace annal::test
