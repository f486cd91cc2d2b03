#pragma once
// The in-memory part of an index: the entries of recent positions, bounded by
// memtable_entries (the owner freezes it when full and writes it out as an
// index file). Two layouts behind one interface, chosen per index by the
// shape of its writes and reads:
//
//   KeyedMemtable (index/keyed_memtable.h): a hash map from key to that key's
//     entries. An insert or a lookup of one stream is a hash probe: right for
//     the stream index, whose writer looks up a stream's last revision on
//     every append.
//   RunMemtable (index/run_memtable.h): an unsorted tail sorted into runs.
//     An insert is an append to a buffer; a lookup searches every run: right
//     for the secondary index, which writes 5-7 keys per event, most of them
//     of high cardinality, and whose reads are ranges.
//
// Thread safety: insert/erase from one writer thread; the queries from any
// thread concurrently (queries copy out small batches so no lock is held
// while the caller reads records).

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "index/entry.h"

namespace annal::index {

enum class MemtableKind { kKeyed, kRuns };

class Memtable {
 public:
  virtual ~Memtable() = default;

  virtual void insert(const IndexEntry& e) = 0;
  // The entries of one event at once: one lock for all of them.
  virtual void insert(std::span<const IndexEntry> entries) = 0;
  virtual void erase(const IndexEntry& e) = 0;
  // Entries inserted and not erased (a repeat of an entry may count until
  // the memtable compacts it; it is answered once).
  virtual std::size_t size() const = 0;

  // Appends to out the entries of `hash` with revision in [lo, hi] and
  // position < pos_limit, in (revision, position) order, until out holds `max`.
  virtual void collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                       std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                       std::size_t max = SIZE_MAX) const = 0;
  // Calls fn with the entries of `hash` (position < pos_limit, revision <=
  // max_revision) in descending (revision, position) order until fn returns
  // false. Returns false if fn stopped the visit.
  virtual bool visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                          const std::function<bool(const IndexEntry&)>& fn,
                          std::uint64_t max_revision = UINT64_MAX) const = 0;
  // All entries in (hash, revision, position) order, each once. Only for a
  // frozen memtable (no concurrent writer).
  virtual void for_each(const std::function<void(const IndexEntry&)>& fn) const = 0;

  // Position range the memtable covers once frozen: [first, end).
  std::uint64_t first_position = 0;
  std::uint64_t end_position = 0;
  // Once frozen: the id digest of every position in [first, end), 0 if
  // unknown (written into the index file for the idempotency window).
  std::vector<std::uint64_t> id_digests;
};

// capacity: the owner's memtable_entries; a run memtable sizes its tail and
// runs from it (a small memtable in tests seals and merges runs early).
std::shared_ptr<Memtable> make_memtable(MemtableKind kind, std::size_t capacity);

}  // namespace annal::index
