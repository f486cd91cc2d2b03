#pragma once
// Strong types for the numbers that must never be mixed up.

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace annal {

// A dense, 0-based position in the global log. Position N is the N-th event
// ever appended to this node.
struct GlobalPosition {
  std::uint64_t value = 0;
  constexpr GlobalPosition() = default;
  constexpr explicit GlobalPosition(std::uint64_t v) : value(v) {}
  constexpr auto operator<=>(const GlobalPosition&) const = default;
  constexpr GlobalPosition next() const { return GlobalPosition(value + 1); }
  constexpr GlobalPosition operator+(std::uint64_t n) const { return GlobalPosition(value + n); }
};

// A 0-based revision within one stream.
struct StreamRevision {
  std::uint64_t value = 0;
  constexpr StreamRevision() = default;
  constexpr explicit StreamRevision(std::uint64_t v) : value(v) {}
  constexpr auto operator<=>(const StreamRevision&) const = default;
  constexpr StreamRevision next() const { return StreamRevision(value + 1); }
};

// A byte offset inside one segment file.
struct SegmentOffset {
  std::uint64_t value = 0;
  constexpr SegmentOffset() = default;
  constexpr explicit SegmentOffset(std::uint64_t v) : value(v) {}
  constexpr auto operator<=>(const SegmentOffset&) const = default;
};

// 16-byte event id (a UUID, stored in its RFC 4122 byte order).
struct EventId {
  std::array<std::uint8_t, 16> bytes{};
  constexpr auto operator<=>(const EventId&) const = default;
  bool is_nil() const;
  // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", lower case.
  std::string to_string() const;
  // Parses the canonical 36-character form (either case); nullopt if invalid.
  static std::optional<EventId> parse(std::string_view text);
  // A random version-4 UUID.
  static EventId random();
};

struct EventIdHash {
  std::size_t operator()(const EventId& id) const noexcept;
};

// Expected revision of an append (EventStoreDB's semantics).
struct ExpectedRevision {
  enum class Kind : std::uint8_t { kAny = 0, kNoStream = 1, kStreamExists = 2, kExact = 3 };
  Kind kind = Kind::kAny;
  StreamRevision revision{};  // only for kExact

  static constexpr ExpectedRevision any() { return {Kind::kAny, {}}; }
  static constexpr ExpectedRevision no_stream() { return {Kind::kNoStream, {}}; }
  static constexpr ExpectedRevision stream_exists() { return {Kind::kStreamExists, {}}; }
  static constexpr ExpectedRevision exact(std::uint64_t r) {
    return {Kind::kExact, StreamRevision(r)};
  }
  bool operator==(const ExpectedRevision&) const = default;
  std::string to_string() const;
};

}  // namespace annal
