#pragma once
// The newest batches of the global log that live subscriptions read, kept so
// that subscribers with the same filter at the same position share one scan
// of the log (each record decoded and its checksum verified once, not once per
// subscriber) and skip the hop to the reading pool. A batch of durable
// positions never changes, so a cached one stays correct; it may end before
// the durable end has since moved, and the subscriber then asks again.
//
// Thread safety: all methods may be called from any thread (one mutex; a
// lookup walks at most kMaxEntries keys).

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace annal::net::detail {

template <class Batch>
class LiveCache {
 public:
  struct Key {
    std::uint16_t version = 0;  // protocol version the batch is encoded for
    std::string stream_prefix;
    std::string type_prefix;
    std::uint64_t max_scan = 0;  // positions one step may scan (checkpoints bound it)
    std::uint64_t from = 0;
    std::uint64_t rules_version = 0;  // the stream rules it was read under
    friend bool operator==(const Key&, const Key&) = default;
  };

  std::shared_ptr<const Batch> find(const Key& k) const {
    std::lock_guard lock(mu_);
    for (const auto& [key, batch] : entries_)
      if (key == k) return batch;
    return nullptr;
  }

  // `bytes` is what the batch holds, for the cache's byte bound.
  void insert(Key k, std::shared_ptr<const Batch> b, std::size_t bytes) {
    if (bytes >= kMaxBytes / 4) return;  // a catch-up sized batch: not worth keeping
    std::lock_guard lock(mu_);
    for (const auto& e : entries_)
      if (e.first == k) return;  // another subscriber scanned it meanwhile
    entries_.emplace_back(std::move(k), std::move(b));
    sizes_.push_back(bytes);
    bytes_ += bytes;
    while (entries_.size() > kMaxEntries || bytes_ > kMaxBytes) {
      bytes_ -= sizes_.front();
      sizes_.pop_front();
      entries_.pop_front();
    }
  }

 private:
  static constexpr std::size_t kMaxEntries = 64;
  static constexpr std::size_t kMaxBytes = 8u << 20;

  mutable std::mutex mu_;
  std::deque<std::pair<Key, std::shared_ptr<const Batch>>> entries_;
  std::deque<std::size_t> sizes_;
  std::size_t bytes_ = 0;
};

}  // namespace annal::net::detail
