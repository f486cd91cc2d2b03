#pragma once
// A bounded cache of stream heads (last revision and its position), so the
// expected-revision check of a hot stream reads neither the index files nor
// the log. Keyed by the 128-bit XXH3 of the stream name (never the test hash),
// so two streams whose 64-bit index hashes collide still have their own
// entries. 8-way set associative, least recently used evicted within a set.
//
// Thread safety: all methods may be called from any thread (one mutex).

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "index/zeroed_table.h"

namespace annal::index {

class HeadCache {
 public:
  struct Key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    bool operator==(const Key&) const = default;
  };
  struct Head {
    std::uint64_t revision = 0;
    std::uint64_t position = 0;
  };

  explicit HeadCache(std::size_t capacity);
  static Key key_of(std::string_view stream);

  std::optional<Head> get(const Key& key);
  void put(const Key& key, Head head);
  void erase(const Key& key);
  std::size_t memory_bytes() const { return sets_ * kWays * sizeof(Slot); }

 private:
  static constexpr std::size_t kWays = 8;
  struct Slot {
    Key key;
    Head head;
    std::uint64_t stamp = 0;  // 0 = empty
  };
  Slot* set_of(const Key& key) { return slots_.data() + (key.lo % sets_) * kWays; }

  std::mutex mu_;
  std::size_t sets_ = 0;
  std::uint64_t clock_ = 0;
  ZeroedTable<Slot> slots_;  // untouched pages of an empty cache cost nothing
};

}  // namespace annal::index
