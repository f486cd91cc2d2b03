#include "index/head_cache.h"

#include <xxhash.h>

#include "engine/status.h"

namespace annal::index {

HeadCache::HeadCache(std::size_t capacity) {
  sets_ = capacity / kWays + 1;
  slots_ = ZeroedTable<Slot>(sets_ * kWays);
}

HeadCache::Key HeadCache::key_of(std::string_view stream) {
  XXH128_hash_t h = XXH3_128bits(stream.data(), stream.size());
  return Key{h.high64, h.low64};
}

std::optional<HeadCache::Head> HeadCache::get(const Key& key) {
  std::lock_guard lock(mu_);
  Slot* s = set_of(key);
  for (std::size_t i = 0; i < kWays; ++i) {
    if (s[i].stamp != 0 && s[i].key == key) {
      s[i].stamp = ++clock_;
      return s[i].head;
    }
  }
  return std::nullopt;
}

void HeadCache::put(const Key& key, Head head) {
  std::lock_guard lock(mu_);
  Slot* s = set_of(key);
  Slot* victim = &s[0];
  for (std::size_t i = 0; i < kWays; ++i) {
    if (s[i].stamp != 0 && s[i].key == key) {
      victim = &s[i];
      break;
    }
    if (s[i].stamp < victim->stamp) victim = &s[i];
  }
  *victim = Slot{key, head, ++clock_};
}

void HeadCache::erase(const Key& key) {
  std::lock_guard lock(mu_);
  Slot* s = set_of(key);
  for (std::size_t i = 0; i < kWays; ++i)
    if (s[i].stamp != 0 && s[i].key == key) s[i] = Slot{};
}

}  // namespace annal::index
