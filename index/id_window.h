#pragma once
// The idempotency window: the ids of the last `capacity` events (by global
// position) -> their positions, for retries with `any` / `stream_exists`.
// Compact: a 64-bit digest of the id per slot in an open-addressing table
// (16 bytes a slot, load <= 1/2) plus a ring of digests indexed by position
// (8 bytes an event). A hit is only a candidate: the caller confirms it by
// comparing the full id of the record at that position.
//
// Thread safety: none; used only on the log's writer thread (and at open).

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/types.h"
#include "index/zeroed_table.h"

namespace annal::index {

class IdWindow {
 public:
  explicit IdWindow(std::uint64_t capacity);

  // Remembers that the event at `position` has `id`; forgets the event at
  // position - capacity. REQUIRES: positions increase across calls (except
  // after erase of the most recent ones).
  void insert(const EventId& id, std::uint64_t position) { insert_digest(digest(id), position); }
  // The same with digest(id) computed already (reloaded from index files).
  void insert_digest(std::uint64_t key, std::uint64_t position);
  // The digest remembered for `position`, 0 if it is outside the window.
  std::uint64_t digest_at(std::uint64_t position) const;
  // Sizes the table for n ids at once (a bulk reload at open).
  void reserve(std::size_t n);
  // Forgets the event at `position` (an aborted append).
  void erase(const EventId& id, std::uint64_t position);
  // Positions of remembered events whose id digest equals id's.
  void find(const EventId& id, std::vector<std::uint64_t>& out) const;
  std::uint64_t capacity() const { return capacity_; }
  std::size_t size() const { return used_; }
  // Safe to call from any thread (an estimate).
  std::size_t memory_bytes() const { return memory_.load(std::memory_order_relaxed); }

  static std::uint64_t digest(const EventId& id);

 private:
  struct Slot {
    std::uint64_t key = 0;  // 0 = empty
    std::uint64_t position = 0;
  };
  static constexpr std::uint64_t kPrefetchDistance = 16;
  void erase_slot(std::uint64_t key, std::uint64_t position);
  void grow();

  std::uint64_t capacity_;
  ZeroedTable<Slot> slots_;  // power of two
  std::size_t used_ = 0;
  std::uint64_t end_ = 0;  // one past the highest position inserted
  std::atomic<std::size_t> memory_{0};
  // ring_[position % capacity_] = key of that event (0 = none); untouched
  // pages cost no memory.
  ZeroedTable<std::uint64_t> ring_;
};

}  // namespace annal::index
