#include "index/memtable.h"

#include <algorithm>

#include "index/keyed_memtable.h"
#include "index/run_memtable.h"

namespace annal::index {

std::shared_ptr<Memtable> make_memtable(MemtableKind kind, std::size_t capacity) {
  if (kind == MemtableKind::kRuns)
    return std::make_shared<RunMemtable>(
        std::clamp<std::size_t>(capacity / 16, 1, RunMemtable::kTailEntries),
        std::clamp<std::size_t>(capacity / 8, 1, RunMemtable::kMaxRunEntries));
  return std::make_shared<KeyedMemtable>();
}

}  // namespace annal::index
