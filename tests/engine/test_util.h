#pragma once
// Helpers shared by the engine tests.

#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>
#include <string>

#include "engine/format.h"
#include "engine/record.h"
#include "tests/common/temp_dir.h"

namespace annal::engine::testing {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("annal-engine") {}
};

inline EventRecord make_event(std::uint64_t position, std::size_t data_size = 40,
                              std::string stream = "orders-17") {
  EventRecord r;
  for (std::size_t i = 0; i < 16; ++i) r.id.bytes[i] = static_cast<std::uint8_t>(position * 31 + i);
  r.stream = std::move(stream);
  r.type = "OrderPlaced";
  r.revision = StreamRevision(position / 3);
  r.position = GlobalPosition(position);
  r.timestamp_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(position);
  r.flags = format::kFlagDataJson | format::kFlagCommit;
  r.metadata = "{\"m\":1}";
  r.data =
      "{\"n\":" + std::to_string(position) + ",\"pad\":\"" + std::string(data_size, 'x') + "\"}";
  return r;
}

// The event of the worked examples in docs/storage-format.md.
inline EventRecord documented_example() {
  EventRecord r;
  r.id = *EventId::parse("0f8e7d6c-5b4a-4938-8271-605f4e3d2c1b");
  r.stream = "order-1";
  r.type = "Placed";
  r.revision = StreamRevision(0);
  r.position = GlobalPosition(5);
  r.timestamp_us = 1764237600000000;
  r.flags = format::kFlagDataJson | format::kFlagCommit;
  r.data = "{\"qty\":2}";
  return r;
}

// The encoded bytes of one record.
inline std::string encoded(const EventRecord& r) {
  std::string s;
  encode(r, s);
  return s;
}

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace annal::engine::testing
