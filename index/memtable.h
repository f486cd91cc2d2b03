#pragma once
// The in-memory part of the per-stream index: recent entries, sorted per
// stream hash, bounded by StoreOptions::memtable_entries (the owner freezes it
// when full).
//
// Layout: a hash map from stream hash to that hash's entries as a vector kept
// in (revision, position) order. The writer appends to a stream's vector in
// the common case (revisions grow with positions), so an insert is one hash
// lookup instead of a walk down a tree of every recent entry (the ordered set
// this replaces was the writer thread's largest cost under load). Entries of
// colliding streams interleave and are inserted in sorted place.
//
// Thread safety: insert/erase from one writer thread; the queries from any
// thread concurrently (a shared mutex; queries copy out small batches so no
// lock is held while the caller reads records).

#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "index/entry.h"

namespace annal::index {

class Memtable {
 public:
  Memtable();
  Memtable(const Memtable&) = delete;
  Memtable& operator=(const Memtable&) = delete;

  void insert(const IndexEntry& e);
  // The entries of one event at once: one lock for all of them.
  void insert(std::span<const IndexEntry> entries);
  void erase(const IndexEntry& e);
  std::size_t size() const;

  // Appends to out the entries of `hash` with revision in [lo, hi] and
  // position < pos_limit, in (revision, position) order, until out holds `max`.
  void collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi, std::uint64_t pos_limit,
               std::vector<IndexEntry>& out, std::size_t max = SIZE_MAX) const;
  // Calls fn with the entries of `hash` (position < pos_limit, revision <=
  // max_revision) in descending
  // (revision, position) order until fn returns false. Returns false if fn
  // stopped the visit.
  bool visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                  const std::function<bool(const IndexEntry&)>& fn,
                  std::uint64_t max_revision = UINT64_MAX) const;
  // All entries in (hash, revision, position) order. Only for a frozen
  // memtable (no concurrent writer).
  void for_each(const std::function<void(const IndexEntry&)>& fn) const;

  // Position range the memtable covers once frozen: [first, end).
  std::uint64_t first_position = 0;
  std::uint64_t end_position = 0;
  // Once frozen: the id digest of every position in [first, end), 0 if
  // unknown (written into the index file for the idempotency window).
  std::vector<std::uint64_t> id_digests;

 private:
  struct Slot {
    std::uint64_t revision;
    std::uint64_t position;
    friend constexpr bool operator==(const Slot&, const Slot&) = default;
    friend constexpr bool operator<(const Slot& a, const Slot& b) {
      return a.revision != b.revision ? a.revision < b.revision : a.position < b.position;
    }
  };
  // Identity hash: stream hashes are already XXH3 digests.
  struct SameHash {
    std::size_t operator()(std::uint64_t h) const { return static_cast<std::size_t>(h); }
  };

  void insert_locked(const IndexEntry& e);  // REQUIRES: mu_ held exclusively

  mutable std::shared_mutex mu_;
  std::unordered_map<std::uint64_t, std::vector<Slot>, SameHash> streams_;
  std::size_t size_ = 0;
};

}  // namespace annal::index
