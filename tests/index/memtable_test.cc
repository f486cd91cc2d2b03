// Both memtable layouts (index/memtable.h) against a model: random inserts
// (runs of one key, repeats, colliding keys), erases of recent entries, and
// every query compared with the same query on a std::set. The run layout is
// built with a tiny tail and run cap so the random walks seal, merge and cap
// runs many times. And readers racing the writer (for TSan).

#include "index/memtable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "index/keyed_memtable.h"
#include "index/run_memtable.h"

namespace annal::index {
namespace {

std::shared_ptr<Memtable> make(int kind) {
  if (kind == 0) return std::make_shared<KeyedMemtable>();
  return std::make_shared<RunMemtable>(/*tail_entries=*/kind == 1 ? 8 : 1,
                                       /*max_run_entries=*/kind == 1 ? 64 : 3);
}

std::vector<IndexEntry> model_collect(const std::set<IndexEntry>& m, std::uint64_t hash,
                                      std::uint64_t lo, std::uint64_t hi, std::uint64_t limit,
                                      std::size_t max) {
  std::vector<IndexEntry> out;
  for (auto it = m.lower_bound({hash, lo, 0});
       it != m.end() && it->hash == hash && it->revision <= hi && out.size() < max; ++it)
    if (it->position < limit) out.push_back(*it);
  return out;
}

class MemtableModelTest : public ::testing::TestWithParam<int> {};

TEST_P(MemtableModelTest, EveryQueryMatchesTheModel) {
  std::mt19937_64 rng(1234 + GetParam());
  for (int round = 0; round < 20; ++round) {
    auto mt = make(GetParam());
    std::set<IndexEntry> model;
    std::vector<IndexEntry> recent;
    std::uint64_t position = 0;
    for (int step = 0; step < 1500; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 7) {
        // One event: 1-4 entries at one position over 6 keys; a revision
        // that grows with the position (secondary) or its own (streams).
        std::vector<IndexEntry> event;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n; ++i) {
          const std::uint64_t hash = rng() % 6;
          const std::uint64_t rev = rng() % 3 == 0 ? rng() % 50 : position;
          event.push_back({hash, rev, position});
        }
        if (rng() % 20 == 0 && !recent.empty()) event.push_back(recent.back());  // a repeat
        mt->insert(event);
        for (const auto& e : event) {
          model.insert(e);
          recent.push_back(e);
        }
        ++position;
      } else if (op < 8 && !recent.empty()) {
        // An aborted append: its entries go, newest first; an entry added
        // twice is erased twice (IndexCore::remove per added copy).
        const IndexEntry e = recent.back();
        for (auto it = recent.begin(); it != recent.end();) {
          if (*it == e) {
            mt->erase(e);
            it = recent.erase(it);
          } else {
            ++it;
          }
        }
        model.erase(e);
      } else {
        const std::uint64_t hash = rng() % 7;
        const std::uint64_t lo = rng() % 3 == 0 ? 0 : rng() % (position + 1);
        const std::uint64_t hi = rng() % 3 == 0 ? UINT64_MAX : lo + rng() % 100;
        const std::uint64_t limit = rng() % 2 == 0 ? UINT64_MAX : rng() % (position + 1);
        const std::size_t max = rng() % 2 == 0 ? SIZE_MAX : 1 + rng() % 20;
        std::vector<IndexEntry> got = {{99, 99, 99}};  // collect appends
        mt->collect(hash, lo, hi, limit, got, max == SIZE_MAX ? SIZE_MAX : max + 1);
        got.erase(got.begin());
        ASSERT_EQ(got, model_collect(model, hash, lo, hi, limit, max)) << "step " << step;
        // visit_desc: stop after k entries, below a max revision.
        const std::uint64_t max_rev = rng() % 2 == 0 ? UINT64_MAX : rng() % (position + 1);
        const std::size_t stop = 1 + rng() % 200;
        std::vector<IndexEntry> desc;
        const bool all = mt->visit_desc(
            hash, limit,
            [&](const IndexEntry& e) {
              desc.push_back(e);
              return desc.size() < stop;
            },
            max_rev);
        std::vector<IndexEntry> want;
        for (auto it = model.rbegin(); it != model.rend() && want.size() < stop; ++it)
          if (it->hash == hash && it->revision <= max_rev && it->position < limit)
            want.push_back(*it);
        ASSERT_EQ(desc, want) << "step " << step;
        ASSERT_EQ(all, desc.size() < stop);
      }
    }
    ASSERT_GE(mt->size(), model.size());
    std::vector<IndexEntry> all;
    mt->for_each([&](const IndexEntry& e) { all.push_back(e); });
    ASSERT_EQ(all, std::vector<IndexEntry>(model.begin(), model.end()));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, MemtableModelTest, ::testing::Values(0, 1, 2),
                         [](const auto& info) {
                           return info.param == 0   ? std::string("Keyed")
                                  : info.param == 1 ? std::string("Runs")
                                                    : std::string("RunsOfOne");
                         });

TEST(RunMemtable, RunsStayFewAndSealingCompactsRepeats) {
  RunMemtable mt(/*tail_entries=*/16, /*max_run_entries=*/1024);
  for (std::uint64_t p = 0; p < 100000; ++p) {
    const IndexEntry e{p % 7, p, p};
    mt.insert(std::span<const IndexEntry>(&e, 1));
    mt.insert(std::span<const IndexEntry>(&e, 1));  // a repeat
  }
  // Runs of 64 sealed tails (1024 / 16), each tail 8 distinct entries: 512
  // entries a run, plus at most one run of each smaller power of two tails;
  // never one run per sealed tail (12,500 tails).
  EXPECT_LE(mt.runs(), 100000u / 512 + 7);
  EXPECT_EQ(mt.size(), 100000u);  // every tail was sealed: repeats compacted
}

TEST(RunMemtable, ReadersRacingTheWriterSeeOrderedPrefixes) {
  RunMemtable mt(/*tail_entries=*/32, /*max_run_entries=*/2048);
  constexpr std::uint64_t kEntries = 60000;
  std::atomic<std::uint64_t> written{0};
  std::atomic<bool> bad{false};
  auto reader = [&] {
    while (written.load() < kEntries) {
      const std::uint64_t seen = written.load();
      std::vector<IndexEntry> got;
      mt.collect(1, 0, UINT64_MAX, UINT64_MAX, got, 500);
      for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i].position != 2 * i) bad = true;  // key 1 holds every even position
      std::uint64_t prev = UINT64_MAX, count = 0;
      mt.visit_desc(2, UINT64_MAX, [&](const IndexEntry& e) {
        if (e.position >= prev || e.position % 2 == 0) bad = true;
        prev = e.position;
        return ++count < 300;
      });
      // Everything written before the query started is visible.
      std::vector<IndexEntry> last;
      if (seen >= 2) {
        mt.collect(1, (seen - 2) & ~std::uint64_t{1}, UINT64_MAX, UINT64_MAX, last, 1);
        if (last.empty()) bad = true;
      }
    }
  };
  std::thread r1(reader), r2(reader);
  for (std::uint64_t p = 0; p < kEntries; ++p) {
    const IndexEntry e{1 + p % 2, p, p};
    mt.insert(std::span<const IndexEntry>(&e, 1));
    written.store(p + 1);
  }
  r1.join();
  r2.join();
  EXPECT_FALSE(bad.load());
}

}  // namespace
}  // namespace annal::index
