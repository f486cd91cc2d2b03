#pragma once
// The stream index's memtable (index/memtable.h): a hash map from stream hash
// to that hash's entries as a vector kept in (revision, position) order. The
// writer appends to a stream's vector in the common case (revisions grow with
// positions), so an insert is one hash lookup instead of a walk down a tree of
// every recent entry (the ordered set this replaced was the writer thread's
// largest cost under load). Entries of colliding streams interleave and are
// inserted in sorted place. A shared mutex guards it.

#include <cstdint>
#include <functional>
#include <shared_mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "index/memtable.h"

namespace annal::index {

class KeyedMemtable final : public Memtable {
 public:
  KeyedMemtable() = default;
  KeyedMemtable(const KeyedMemtable&) = delete;
  KeyedMemtable& operator=(const KeyedMemtable&) = delete;

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
