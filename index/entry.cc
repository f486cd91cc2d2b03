#include "index/entry.h"

#include <xxhash.h>

namespace annal::index {

std::uint64_t xxh3_stream_hash(std::string_view stream) {
  return XXH3_64bits(stream.data(), stream.size());
}

}  // namespace annal::index
