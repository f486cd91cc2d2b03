#pragma once
// Encoding and decoding of one log record. See docs/storage-format.md.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"
#include "engine/types.h"

namespace annal::engine {

// An event as stored: owns its bytes.
struct EventRecord {
  EventId id;
  std::string stream;
  std::string type;
  StreamRevision revision;
  GlobalPosition position;
  std::int64_t timestamp_us = 0;
  std::uint32_t flags = 0;  // format::kFlag*
  std::string metadata;
  std::string data;

  bool operator==(const EventRecord&) const = default;
  bool is_lost() const;
};

// A decoded record that points into a mapped segment (valid while the map is).
struct RecordView {
  EventId id;
  std::string_view stream;
  std::string_view type;
  StreamRevision revision;
  GlobalPosition position;
  std::int64_t timestamp_us = 0;
  std::uint32_t flags = 0;
  std::string_view metadata;
  std::string_view data;
  std::uint32_t size = 0;  // bytes the record occupies in the segment
  std::uint64_t checksum = 0;

  EventRecord to_record() const;
};

// Bytes the record will occupy.
std::size_t encoded_size(const EventRecord& r);

// Appends the encoded record to out.
void encode(const EventRecord& r, std::string& out);
// Writes the encoded record into dst, which must hold encoded_size(r) bytes.
void encode_into(const EventRecord& r, std::span<std::byte> dst);

enum class DecodeOutcome {
  kOk,
  kEnd,        // a zero length field: no record here (end of written data)
  kTruncated,  // the length runs past the available bytes
  kCorrupt,    // bad length, checksum mismatch, trailer mismatch, unknown flags
};

struct DecodeResult {
  DecodeOutcome outcome = DecodeOutcome::kCorrupt;
  RecordView view;     // valid when outcome == kOk
  std::string reason;  // human-readable when not ok
};

// Decodes one record at the start of `bytes`. Verifies length bounds, both
// length fields and the checksum. Never reads outside `bytes`.
DecodeResult decode(std::span<const std::byte> bytes);

// Decodes the record that ends exactly at the end of `bytes` (backward scan),
// using the trailing length field.
DecodeResult decode_backward(std::span<const std::byte> bytes);

}  // namespace annal::engine
