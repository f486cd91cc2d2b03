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
  std::uint32_t flags = 0;  // format::kFlag*; kFlagExtended is the encoder's
  std::string metadata;
  std::string data;
  // The extension (docs/storage-format.md): a record with all of these empty
  // or zero is written without it. Tags are sorted bytewise, without
  // duplicates, none empty (the encoder checks; the store normalises).
  std::uint64_t epoch = 0;  // the leader epoch that wrote it (0 on a single node)
  std::vector<std::string> tags;
  std::string correlation_id;
  std::string causation_id;

  bool operator==(const EventRecord&) const = default;
  bool is_lost() const;
  bool has_extension() const;
};

// The tags of a decoded record, in order, as views into the record.
class TagView {
 public:
  TagView() = default;
  TagView(const char* lengths, const char* bytes, std::uint16_t count)
      : lengths_(lengths), bytes_(bytes), count_(count) {}
  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

  class Iterator {
   public:
    Iterator(const char* lengths, const char* bytes, std::uint16_t left)
        : lengths_(lengths), bytes_(bytes), left_(left) {}
    std::string_view operator*() const { return {bytes_, length()}; }
    Iterator& operator++() {
      bytes_ += length();
      lengths_ += 2;
      --left_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return left_ == o.left_; }

   private:
    std::size_t length() const {
      return static_cast<std::size_t>(static_cast<std::uint8_t>(lengths_[0])) |
             static_cast<std::size_t>(static_cast<std::uint8_t>(lengths_[1])) << 8;
    }
    const char* lengths_;
    const char* bytes_;
    std::uint16_t left_;
  };
  Iterator begin() const { return {lengths_, bytes_, count_}; }
  Iterator end() const { return {nullptr, nullptr, 0}; }

 private:
  const char* lengths_ = nullptr;
  const char* bytes_ = nullptr;
  std::uint16_t count_ = 0;
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
  // The extension; empty and zero for a record without it.
  std::uint64_t epoch = 0;
  TagView tags;
  std::string_view correlation_id;
  std::string_view causation_id;

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
