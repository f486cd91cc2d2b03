#pragma once
// The secondary index's memtable (index/memtable.h): inserts append to an
// unsorted tail; a full tail (kTailEntries) is sorted into a run, and runs
// made of as many tails are merged (a binary counter, up to runs of
// kMaxRunEntries / kTailEntries tails), so an
// insert costs a buffer append plus its share of sorting and sequential
// merging, with no allocation per key and no cache miss per key. (The keyed
// memtable's hash map took two to three cache misses per entry: with 5-7
// keys per event, most of them nearly unique, that was the largest cost of
// an append with tags.)
//
// A query binary-searches every run (at most ~20) and scans the tail, each
// only if its filter (two bits per key hash, ~1 byte per entry: a few
// percent false positives) says the key may be there: a lookup of a key the
// memtable does not hold, the common case for append conditions on the
// writer, costs a few cache misses instead of a binary search per run. Runs
// are immutable once built; the writer builds a new one outside the lock and
// swaps it in under the exclusive lock, so readers wait at most for a swap,
// never for a sort or a merge.
//
// Thread safety: insert/erase from one writer thread (which alone changes
// runs_ and tail_, so it reads them without the lock); queries under the
// shared lock from any thread.

#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <span>
#include <vector>

#include "index/memtable.h"

namespace annal::index {

class RunMemtable final : public Memtable {
 public:
  static constexpr std::size_t kTailEntries = 1024;
  static constexpr std::size_t kMaxRunEntries = std::size_t{1} << 17;

  // Smaller figures make tests seal and merge runs after a few entries.
  explicit RunMemtable(std::size_t tail_entries = kTailEntries,
                       std::size_t max_run_entries = kMaxRunEntries);
  RunMemtable(const RunMemtable&) = delete;
  RunMemtable& operator=(const RunMemtable&) = delete;

  void insert(const IndexEntry& e) override;
  void insert(std::span<const IndexEntry> entries) override;
  void erase(const IndexEntry& e) override;
  std::size_t size() const override;
  void collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi, std::uint64_t pos_limit,
               std::vector<IndexEntry>& out, std::size_t max = SIZE_MAX) const override;
  bool visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                  const std::function<bool(const IndexEntry&)>& fn,
                  std::uint64_t max_revision = UINT64_MAX) const override;
  void for_each(const std::function<void(const IndexEntry&)>& fn) const override;

  std::size_t runs() const;  // tests

 private:
  // Two bits per key hash in a power-of-two bit set (a Bloom filter with two
  // probes): "absent" is certain, "present" is a candidate.
  struct Filter {
    std::vector<std::uint64_t> words;
    void build(const std::vector<IndexEntry>& entries);
    void add(std::uint64_t hash);
    bool may_hold(std::uint64_t hash) const;
    void clear();
  };
  struct Run {
    std::vector<IndexEntry> entries;  // sorted, distinct
    std::size_t tails = 1;            // sealed tails merged into it
    Filter filter;
  };
  // Sorts the tail into a run and merges it with the runs it has caught up
  // with. Writer thread; takes the exclusive lock only to swap.
  void seal_tail();

  const std::size_t tail_entries_;
  const std::size_t max_run_tails_;
  mutable std::shared_mutex mu_;
  std::vector<Run> runs_;         // oldest (largest) first
  std::vector<IndexEntry> tail_;  // insertion order, unsorted
  Filter tail_filter_;            // of tail_ (under mu_)
  std::size_t size_ = 0;
};

}  // namespace annal::index
