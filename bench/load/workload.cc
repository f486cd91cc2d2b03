#include "bench/load/workload.h"

#include "engine/format.h"
#include "engine/record.h"

namespace annal::bench {

// Bytes one event of the load occupies in a segment (for comparing with the
// disk's bandwidth).
std::size_t record_bytes(const Options& o) {
  engine::EventRecord r;
  r.stream = fmt::format("{}-{}", o.stream_prefix, o.streams - 1);
  r.type = "BenchEvent";
  r.flags = engine::format::kFlagDataJson;
  r.data = json_data(1'000'000, o.size);
  return engine::encoded_size(r);
}

}  // namespace annal::bench
