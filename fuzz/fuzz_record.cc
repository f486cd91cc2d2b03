// libFuzzer target: the record decoder (engine/record.h) on arbitrary bytes.
// Input byte 0 picks the mode: bit 0 fixes the checksum first so mutations
// reach the checks behind it; bit 1 decodes backward as well.
// Properties: never reads outside the input (ASan: the input is copied to a
// heap buffer of exactly its size); a record that decodes re-encodes to a
// record that decodes to the same fields; views lie inside the input.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/record.h"
#include "fuzz/fuzz_util.h"

using namespace annal;

namespace {

void check_view_inside(const engine::RecordView& v, std::span<const std::byte> bytes) {
  auto inside = [&](std::string_view s) {
    if (s.empty()) return true;
    const auto* b = reinterpret_cast<const char*>(bytes.data());
    return s.data() >= b && s.data() + s.size() <= b + bytes.size();
  };
  FUZZ_CHECK(inside(v.stream) && inside(v.type) && inside(v.metadata) && inside(v.data));
  FUZZ_CHECK(inside(v.correlation_id) && inside(v.causation_id));
  for (std::string_view t : v.tags) FUZZ_CHECK(!t.empty() && inside(t));
  FUZZ_CHECK(v.size <= bytes.size());
}

void round_trip(const engine::RecordView& v) {
  engine::EventRecord r = v.to_record();
  std::string enc;
  engine::encode(r, enc);
  FUZZ_CHECK(enc.size() == engine::encoded_size(r));
  FUZZ_CHECK(enc.size() == v.size);
  auto again = engine::decode(fuzz::as_bytes(enc));
  FUZZ_CHECK(again.outcome == engine::DecodeOutcome::kOk);
  FUZZ_CHECK(again.view.to_record() == r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  std::string buf(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) fuzz::fix_record_checksum(buf, 0);
  // An exact-size heap copy, so any over-read is an ASan report.
  auto* heap = new std::byte[buf.size()];
  std::memcpy(heap, buf.data(), buf.size());
  std::span<const std::byte> bytes(heap, buf.size());

  auto d = engine::decode(bytes);
  if (d.outcome == engine::DecodeOutcome::kOk) {
    check_view_inside(d.view, bytes);
    round_trip(d.view);
  } else {
    FUZZ_CHECK(d.outcome == engine::DecodeOutcome::kEnd || !d.reason.empty());
  }
  if (mode & 2) {
    auto b = engine::decode_backward(bytes);
    if (b.outcome == engine::DecodeOutcome::kOk) {
      check_view_inside(b.view, bytes);
      round_trip(b.view);
    }
  }
  delete[] heap;
  return 0;
}
