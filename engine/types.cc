#include "engine/types.h"

#include <xxhash.h>

#include <random>

namespace annal {

bool EventId::is_nil() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

std::string EventId::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xF]);
  }
  return out;
}

std::optional<EventId> EventId::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  EventId id;
  std::size_t j = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = nibble(text[i]);
    int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id.bytes[j++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return id;
}

EventId EventId::random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  EventId id;
  for (std::size_t i = 0; i < 16; i += 8) {
    std::uint64_t v = rng();
    for (std::size_t k = 0; k < 8; ++k) id.bytes[i + k] = static_cast<std::uint8_t>(v >> (8 * k));
  }
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x40);
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);
  return id;
}

std::size_t EventIdHash::operator()(const EventId& id) const noexcept {
  return static_cast<std::size_t>(XXH3_64bits(id.bytes.data(), id.bytes.size()));
}

std::string ExpectedRevision::to_string() const {
  switch (kind) {
    case Kind::kAny:
      return "any";
    case Kind::kNoStream:
      return "no_stream";
    case Kind::kStreamExists:
      return "stream_exists";
    case Kind::kExact:
      return std::to_string(revision.value);
  }
  return "?";
}

}  // namespace annal
