#include "index/keyed_memtable.h"

#include <algorithm>
#include <mutex>

namespace annal::index {

void KeyedMemtable::insert(const IndexEntry& e) {
  std::unique_lock lock(mu_);
  insert_locked(e);
}

void KeyedMemtable::insert(std::span<const IndexEntry> entries) {
  std::unique_lock lock(mu_);
  for (const IndexEntry& e : entries) insert_locked(e);
}

void KeyedMemtable::insert_locked(const IndexEntry& e) {
  const Slot s{e.revision, e.position};
  auto& v = streams_[e.hash];
  if (v.empty()) v.reserve(4);  // most keys of a memtable see a few events
  if (v.empty() || v.back() < s) {
    v.push_back(s);  // the common case: revisions grow with positions
  } else {
    auto it = std::lower_bound(v.begin(), v.end(), s);
    if (it != v.end() && *it == s) return;  // already there
    v.insert(it, s);
  }
  ++size_;
}

void KeyedMemtable::erase(const IndexEntry& e) {
  const Slot s{e.revision, e.position};
  std::unique_lock lock(mu_);
  auto found = streams_.find(e.hash);
  if (found == streams_.end()) return;
  auto& v = found->second;
  auto it = std::lower_bound(v.begin(), v.end(), s);
  if (it == v.end() || !(*it == s)) return;
  v.erase(it);
  --size_;
  if (v.empty()) streams_.erase(found);
}

std::size_t KeyedMemtable::size() const {
  std::shared_lock lock(mu_);
  return size_;
}

void KeyedMemtable::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                            std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                            std::size_t max) const {
  std::shared_lock lock(mu_);
  auto found = streams_.find(hash);
  if (found == streams_.end()) return;
  const auto& v = found->second;
  for (auto it = std::lower_bound(v.begin(), v.end(), Slot{lo, 0});
       it != v.end() && out.size() < max; ++it) {
    if (it->revision > hi) break;
    if (it->position < pos_limit) out.push_back(IndexEntry{hash, it->revision, it->position});
  }
}

bool KeyedMemtable::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                               const std::function<bool(const IndexEntry&)>& fn,
                               std::uint64_t max_revision) const {
  // Copies out batches so fn (which may read the log) runs without the lock;
  // the next batch starts below the last slot seen, found again by value
  // because the writer may have changed the vector meanwhile.
  Slot cursor{max_revision, UINT64_MAX};
  bool first = true;
  std::vector<IndexEntry> batch;
  for (;;) {
    batch.clear();
    bool more = false;
    {
      std::shared_lock lock(mu_);
      auto found = streams_.find(hash);
      if (found == streams_.end()) return true;
      const auto& v = found->second;
      auto it = first ? std::upper_bound(v.begin(), v.end(), cursor)
                      : std::lower_bound(v.begin(), v.end(), cursor);
      first = false;
      std::size_t scanned = 0;
      while (it != v.begin()) {
        --it;
        cursor = *it;
        if (it->position < pos_limit) batch.push_back(IndexEntry{hash, it->revision, it->position});
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

void KeyedMemtable::for_each(const std::function<void(const IndexEntry&)>& fn) const {
  std::shared_lock lock(mu_);
  std::vector<std::uint64_t> hashes;
  hashes.reserve(streams_.size());
  for (const auto& [h, v] : streams_) hashes.push_back(h);
  std::sort(hashes.begin(), hashes.end());
  for (std::uint64_t h : hashes)
    for (const Slot& s : streams_.find(h)->second) fn(IndexEntry{h, s.revision, s.position});
}

}  // namespace annal::index
