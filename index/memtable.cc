#include "index/memtable.h"

#include <mutex>

namespace annal::index {

Memtable::Memtable() : set_(&arena_) {}

void Memtable::insert(const IndexEntry& e) {
  std::unique_lock lock(mu_);
  set_.insert(e);
}

void Memtable::erase(const IndexEntry& e) {
  std::unique_lock lock(mu_);
  set_.erase(e);
}

std::size_t Memtable::size() const {
  std::shared_lock lock(mu_);
  return set_.size();
}

void Memtable::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                       std::uint64_t pos_limit, std::vector<IndexEntry>& out) const {
  std::shared_lock lock(mu_);
  for (auto it = set_.lower_bound(IndexEntry{hash, lo, 0}); it != set_.end(); ++it) {
    if (it->hash != hash || it->revision > hi) break;
    if (it->position < pos_limit) out.push_back(*it);
  }
}

bool Memtable::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                          const std::function<bool(const IndexEntry&)>& fn) const {
  // Copies out batches so fn (which may read the log) runs without the lock.
  IndexEntry cursor{hash, UINT64_MAX, UINT64_MAX};
  bool first = true;
  std::vector<IndexEntry> batch;
  for (;;) {
    batch.clear();
    bool more = false;
    {
      std::shared_lock lock(mu_);
      auto it = first ? set_.upper_bound(cursor) : set_.lower_bound(cursor);
      first = false;
      std::size_t scanned = 0;
      while (it != set_.begin()) {
        --it;
        if (it->hash != hash) break;
        cursor = *it;
        if (it->position < pos_limit) batch.push_back(*it);
        if (++scanned == 64) {
          more = true;
          break;
        }
      }
    }
    for (const auto& e : batch)
      if (!fn(e)) return false;
    if (!more) return true;
  }
}

void Memtable::for_each(const std::function<void(const IndexEntry&)>& fn) const {
  std::shared_lock lock(mu_);
  for (const auto& e : set_) fn(e);
}

}  // namespace annal::index
