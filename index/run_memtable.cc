#include "index/run_memtable.h"

#include <algorithm>
#include <array>
#include <mutex>

namespace annal::index {

namespace {

// Merges two sorted runs into one, dropping repeats.
std::vector<IndexEntry> merge_runs(const std::vector<IndexEntry>& a,
                                   const std::vector<IndexEntry>& b) {
  std::vector<IndexEntry> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

void sort_unique(std::vector<IndexEntry>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// The tail sorted and without repeats: one counting pass on the hash's top
// byte (the keys are XXH3 digests, so 256 buckets of a few entries each),
// then a sort of each bucket (an insertion sort at that size, over entries
// mostly in order already). About three times faster than std::sort of the
// whole tail, which was the writer's largest cost with tags; colliding
// hashes (tests) only make one bucket larger.
std::vector<IndexEntry> sorted_tail(const std::vector<IndexEntry>& tail) {
  std::array<std::size_t, 257> start{};
  for (const IndexEntry& e : tail) ++start[(e.hash >> 56) + 1];
  for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::vector<IndexEntry> out(tail.size());
  std::array<std::size_t, 257> at = start;
  for (const IndexEntry& e : tail) out[at[e.hash >> 56]++] = e;
  for (std::size_t b = 0; b + 1 < start.size(); ++b)
    if (start[b + 1] - start[b] > 1)
      std::sort(out.begin() + static_cast<std::ptrdiff_t>(start[b]),
                out.begin() + static_cast<std::ptrdiff_t>(start[b + 1]));
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The two probes of a key hash, spread by a 64-bit mix so that small test
// hashes (forced collisions) still use the whole set.
std::pair<std::uint64_t, std::uint64_t> probes(std::uint64_t h, std::uint64_t mask) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return {h & mask, (h >> 32) & mask};
}

}  // namespace

void RunMemtable::Filter::build(const std::vector<IndexEntry>& entries) {
  std::size_t bits = 512;
  while (bits < entries.size() * 8) bits *= 2;
  words.assign(bits / 64, 0);
  for (const IndexEntry& e : entries) add(e.hash);
}

void RunMemtable::Filter::add(std::uint64_t hash) {
  const std::uint64_t mask = words.size() * 64 - 1;
  const auto [a, b] = probes(hash, mask);
  words[a >> 6] |= std::uint64_t{1} << (a & 63);
  words[b >> 6] |= std::uint64_t{1} << (b & 63);
}

bool RunMemtable::Filter::may_hold(std::uint64_t hash) const {
  if (words.empty()) return true;
  const std::uint64_t mask = words.size() * 64 - 1;
  const auto [a, b] = probes(hash, mask);
  return (words[a >> 6] >> (a & 63) & 1) != 0 && (words[b >> 6] >> (b & 63) & 1) != 0;
}

void RunMemtable::Filter::clear() {
  std::fill(words.begin(), words.end(), 0);
}

RunMemtable::RunMemtable(std::size_t tail_entries, std::size_t max_run_entries)
    : tail_entries_(std::max<std::size_t>(tail_entries, 1)),
      max_run_tails_(std::max<std::size_t>(max_run_entries / tail_entries_, 1)) {
  tail_.reserve(tail_entries_);
  // 8 bits per tail entry: ~5% false positives when full.
  std::size_t bits = 512;
  while (bits < tail_entries_ * 8) bits *= 2;
  tail_filter_.words.assign(bits / 64, 0);
}

void RunMemtable::insert(const IndexEntry& e) {
  insert(std::span<const IndexEntry>(&e, 1));
}

void RunMemtable::insert(std::span<const IndexEntry> entries) {
  {
    std::unique_lock lock(mu_);
    tail_.insert(tail_.end(), entries.begin(), entries.end());
    for (const IndexEntry& e : entries) tail_filter_.add(e.hash);
    size_ += entries.size();
  }
  if (tail_.size() >= tail_entries_) seal_tail();
}

void RunMemtable::seal_tail() {
  // Only this (the writer) thread changes runs_ and tail_: reading them
  // without the lock is safe; readers only wait for the swap below.
  Run fresh{sorted_tail(tail_), 1, {}};
  std::size_t keep = runs_.size();
  while (keep > 0 && runs_[keep - 1].tails == fresh.tails && 2 * fresh.tails <= max_run_tails_) {
    fresh.entries = merge_runs(runs_[keep - 1].entries, fresh.entries);
    fresh.tails *= 2;
    --keep;
  }
  fresh.filter.build(fresh.entries);
  std::unique_lock lock(mu_);
  // size_ counts inserts; repeats dropped by the sort and merges do not count.
  std::size_t before = tail_.size();
  for (std::size_t i = keep; i < runs_.size(); ++i) before += runs_[i].entries.size();
  size_ -= before - fresh.entries.size();
  runs_.resize(keep);
  runs_.push_back(std::move(fresh));
  tail_.clear();
  tail_filter_.clear();
}

void RunMemtable::erase(const IndexEntry& e) {
  // An aborted append's entries: the newest, so nearly always in the tail.
  std::unique_lock lock(mu_);
  for (auto it = tail_.rbegin(); it != tail_.rend(); ++it) {
    if (*it == e) {
      tail_.erase(std::next(it).base());
      --size_;
      return;
    }
  }
  for (auto r = runs_.rbegin(); r != runs_.rend(); ++r) {
    auto& v = r->entries;
    auto it = std::lower_bound(v.begin(), v.end(), e);
    if (it != v.end() && *it == e) {
      v.erase(it);
      --size_;
      return;
    }
  }
}

std::size_t RunMemtable::size() const {
  std::shared_lock lock(mu_);
  return size_;
}

std::size_t RunMemtable::runs() const {
  std::shared_lock lock(mu_);
  return runs_.size();
}

void RunMemtable::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                          std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                          std::size_t max) const {
  if (out.size() >= max) return;
  const std::size_t want = max - out.size();
  // The first `want` matches of every run and of the tail hold the first
  // `want` matches overall.
  std::vector<IndexEntry> got;
  {
    std::shared_lock lock(mu_);
    const IndexEntry from{hash, lo, 0};
    for (const Run& run : runs_) {
      if (!run.filter.may_hold(hash)) continue;
      const auto& r = run.entries;
      std::size_t n = 0;
      for (auto it = std::lower_bound(r.begin(), r.end(), from);
           it != r.end() && it->hash == hash && it->revision <= hi && n < want; ++it) {
        if (it->position < pos_limit) {
          got.push_back(*it);
          ++n;
        }
      }
    }
    if (tail_filter_.may_hold(hash))
      for (const IndexEntry& e : tail_)
        if (e.hash == hash && e.revision >= lo && e.revision <= hi && e.position < pos_limit)
          got.push_back(e);
  }
  sort_unique(got);
  if (got.size() > want) got.resize(want);
  out.insert(out.end(), got.begin(), got.end());
}

bool RunMemtable::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                             const std::function<bool(const IndexEntry&)>& fn,
                             std::uint64_t max_revision) const {
  // Batches of the next kBatch entries below the cursor (of every run and
  // the tail), copied out so fn (which may read the log) runs without the
  // lock. The first batch includes the cursor itself (<= max_revision).
  constexpr std::size_t kBatch = 64;
  IndexEntry cursor{hash, max_revision, UINT64_MAX};
  bool inclusive = true;
  std::vector<IndexEntry> batch;
  for (;;) {
    batch.clear();
    {
      std::shared_lock lock(mu_);
      auto below = [&](const IndexEntry& e) {
        return e.hash == hash && (e < cursor || (inclusive && e == cursor));
      };
      for (const Run& run : runs_) {
        if (!run.filter.may_hold(hash)) continue;
        const auto& r = run.entries;
        auto it = inclusive ? std::upper_bound(r.begin(), r.end(), cursor)
                            : std::lower_bound(r.begin(), r.end(), cursor);
        for (std::size_t n = 0; it != r.begin() && n < kBatch; ++n) {
          --it;
          if (it->hash != hash) break;
          batch.push_back(*it);
        }
      }
      if (tail_filter_.may_hold(hash))
        for (const IndexEntry& e : tail_)
          if (below(e)) batch.push_back(e);
    }
    if (batch.empty()) return true;
    sort_unique(batch);
    // The kBatch largest: every run contributed its kBatch largest, so
    // these are exactly the next kBatch overall.
    const std::size_t skip = batch.size() > kBatch ? batch.size() - kBatch : 0;
    for (std::size_t i = batch.size(); i > skip; --i) {
      const IndexEntry& e = batch[i - 1];
      if (e.position < pos_limit && !fn(e)) return false;
    }
    cursor = batch[skip];
    inclusive = false;
  }
}

void RunMemtable::for_each(const std::function<void(const IndexEntry&)>& fn) const {
  std::shared_lock lock(mu_);
  // Merge the runs and the sorted tail pairwise, smallest first, like the
  // last passes of a merge sort: each entry is moved log2(runs) times by
  // sequential merges (a heap of run heads cost more per entry).
  std::vector<std::vector<IndexEntry>> parts;
  parts.reserve(runs_.size() + 1);
  parts.push_back(sorted_tail(tail_));
  for (auto r = runs_.rbegin(); r != runs_.rend(); ++r) {
    if (parts.size() == 1 && parts[0].empty()) parts.clear();
    parts.push_back(r->entries);
  }
  while (parts.size() > 1) {
    std::vector<std::vector<IndexEntry>> next;
    for (std::size_t i = 0; i + 1 < parts.size(); i += 2)
      next.push_back(merge_runs(parts[i], parts[i + 1]));
    if (parts.size() % 2 == 1) next.push_back(std::move(parts.back()));
    parts = std::move(next);
  }
  if (!parts.empty())
    for (const IndexEntry& e : parts[0]) fn(e);
}

}  // namespace annal::index
