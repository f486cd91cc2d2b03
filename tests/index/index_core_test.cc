#include "index/index_core.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "index/head_cache.h"
#include "index/id_window.h"
#include "index/manifest.h"
#include "tests/index/test_util.h"

namespace annal::index {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

class IndexCoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<IndexCore> open(std::uint64_t log_end) {
    IndexCoreOptions o;
    o.dir = dir_.path() + "/index";
    o.memtable_entries = memtable_;
    o.merge_fanout = 3;
    o.summary_interval = 4;  // tiny, so summaries have many slots
    auto c = IndexCore::open(o, log_end);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(c).value();
  }
  // Appends `n` entries over `streams` hashes, in log order, durable at once.
  void add(IndexCore& c, std::uint64_t n, std::uint64_t streams, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t h = rng() % streams;
      IndexEntry e{h * 0x9E3779B97F4A7C15ull, revs_[h]++, next_++};
      c.add(e);
      model_.insert(e);
      c.set_durable(next_);
    }
  }
  // Every query answer equals the model's.
  void expect_matches_model(const IndexCore& c, std::uint64_t limit) {
    std::set<std::uint64_t> hashes;
    for (const auto& e : model_) hashes.insert(e.hash);
    hashes.insert(12345);  // a hash with no entries
    for (std::uint64_t h : hashes) {
      std::vector<IndexEntry> want;
      for (const auto& e : model_)
        if (e.hash == h && e.position < limit) want.push_back(e);
      EXPECT_EQ(c.collect(h, 0, UINT64_MAX, limit), want) << "hash " << h;
      if (want.size() > 3) {
        std::vector<IndexEntry> mid(want.begin() + 1, want.begin() + 3);
        EXPECT_EQ(c.collect(h, want[1].revision, want[2].revision, limit), mid);
      }
      std::vector<IndexEntry> desc;
      c.visit_desc(h, limit, [&](const IndexEntry& e) {
        desc.push_back(e);
        return true;
      });
      std::vector<IndexEntry> rwant(want.rbegin(), want.rend());
      EXPECT_EQ(desc, rwant) << "hash " << h;
    }
  }

  TempDir dir_;
  std::size_t memtable_ = 7;
  std::uint64_t next_ = 0;
  std::map<std::uint64_t, std::uint64_t> revs_;
  std::set<IndexEntry> model_;
};

TEST_F(IndexCoreTest, FlushesAndMergesWithATinyMemtable) {
  auto c = open(0);
  add(*c, 500, 13, 1);
  c->wait_idle();
  auto s = c->stats();
  EXPECT_GT(s.flushes, 50u);
  EXPECT_GT(s.merges, 10u);
  EXPECT_LT(s.index_files, 12u);
  EXPECT_GE(c->indexed_through(), 500u - memtable_);
  expect_matches_model(*c, next_);
  ASSERT_TRUE(c->background_status().is_ok());
}

TEST_F(IndexCoreTest, CleanReopenLoadsEverythingFromFiles) {
  {
    auto c = open(0);
    add(*c, 300, 11, 2);
    ASSERT_TRUE(c->flush(next_).is_ok());
  }
  auto c = open(next_);
  EXPECT_EQ(c->indexed_through(), next_);
  EXPECT_EQ(c->rebuild_reason(), "");
  expect_matches_model(*c, next_);
}

TEST_F(IndexCoreTest, ReopenWithoutFlushKeepsWhatTheManifestCovers) {
  std::uint64_t covered = 0;
  {
    auto c = open(0);
    add(*c, 200, 5, 3);
    c->wait_idle();
    covered = c->indexed_through();
  }  // no flush: as after a kill
  auto c = open(next_);
  EXPECT_EQ(c->indexed_through(), covered);
  EXPECT_LT(next_ - covered, 2 * memtable_);
  expect_matches_model(*c, covered);
}

TEST_F(IndexCoreTest, EntriesNotYetDurableStayInMemoryAndCanBeRemoved) {
  memtable_ = 4;
  auto c = open(0);
  for (std::uint64_t i = 0; i < 10; ++i) c->add(IndexEntry{1, i, i});
  c->set_durable(6);  // 6 durable entries: freezes them, keeps 6..9 in memory
  c->remove(IndexEntry{1, 9, 9});
  c->remove(IndexEntry{1, 8, 8});
  c->wait_idle();
  EXPECT_EQ(c->indexed_through(), 6u);
  std::vector<IndexEntry> want;
  for (std::uint64_t i = 0; i < 8; ++i) want.push_back(IndexEntry{1, i, i});
  EXPECT_EQ(c->collect(1, 0, UINT64_MAX, UINT64_MAX), want);
  want.resize(7);
  EXPECT_EQ(c->collect(1, 0, UINT64_MAX, 7), want);
}

TEST_F(IndexCoreTest, MissingManifestOnAFreshDirectoryIsNotARebuild) {
  auto c = open(0);
  EXPECT_EQ(c->rebuild_reason(), "");
  EXPECT_TRUE(fs::exists(dir_.path() + "/index/MANIFEST"));
}

class IndexCoreDamageTest : public IndexCoreTest {
 protected:
  void SetUp() override {
    auto c = open(0);
    add(*c, 100, 7, 4);
    ASSERT_TRUE(c->flush(next_).is_ok());
  }
  std::vector<std::string> files() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path() + "/index")) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  static void flip(const std::string& path, std::uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char b = 0;
    f.read(&b, 1);
    b = static_cast<char>(b ^ 0x10);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&b, 1);
  }
};

TEST_F(IndexCoreDamageTest, AnyFlippedByteOfAnyFileOrTheManifestIsDetected) {
  for (const auto& path : files()) {
    const std::uint64_t size = fs::file_size(path);
    // About 10 probes a file, spread over header, entries, summary, footer.
    for (std::uint64_t off = 0; off < size; off += std::max<std::uint64_t>(1, size / 10) + 1) {
      flip(path, off);
      IndexCoreOptions o;
      o.dir = dir_.path() + "/index";
      // Open into a copy so a rebuild does not destroy the fixture.
      TempDir copy;
      fs::copy(o.dir, copy.path() + "/index");
      o.dir = copy.path() + "/index";
      auto c = IndexCore::open(o, next_);
      ASSERT_TRUE(c.is_ok());
      EXPECT_NE((*c)->rebuild_reason(), "") << path << " offset " << off;
      EXPECT_EQ((*c)->indexed_through(), 0u);
      flip(path, off);
    }
  }
}

TEST_F(IndexCoreDamageTest, DeletedFileOrManifestIsRebuiltAndNamed) {
  auto all = files();
  std::string victim;
  for (const auto& p : all)
    if (p.ends_with(".ix")) victim = p;
  ASSERT_FALSE(victim.empty());
  fs::remove(victim);
  {
    auto c = open(next_);
    EXPECT_NE(c->rebuild_reason().find(fs::path(victim).filename().string()), std::string::npos)
        << c->rebuild_reason();
    EXPECT_EQ(c->indexed_through(), 0u);
  }
  // After the rebuild reset, the directory holds only an empty manifest.
  EXPECT_EQ(files().size(), 1u);
  fs::remove(dir_.path() + "/index/MANIFEST");
  auto c = open(next_);
  EXPECT_NE(c->rebuild_reason().find("MANIFEST"), std::string::npos) << c->rebuild_reason();
}

TEST_F(IndexCoreDamageTest, IndexAheadOfTheLogIsRebuilt) {
  auto c = open(next_ - 1);
  EXPECT_NE(c->rebuild_reason().find("log ends at"), std::string::npos) << c->rebuild_reason();
}

TEST(ManifestTest, RoundTripsAndRejectsEveryFlippedByte) {
  Manifest m;
  m.next_file_number = 9;
  m.files = {{3, 1, 0, 100, 90}, {8, 0, 100, 130, 30}};
  m.indexed_through = 130;
  std::string bytes = encode_manifest(m);
  auto back = decode_manifest(bytes, "M");
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, m);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 1);
    EXPECT_FALSE(decode_manifest(bad, "M").is_ok()) << i;
  }
  EXPECT_FALSE(decode_manifest(bytes.substr(0, bytes.size() - 1), "M").is_ok());
}

TEST(IdWindowTest, RemembersExactlyTheLastCapacityPositions) {
  IdWindow w(100);
  std::vector<EventId> ids;
  for (int i = 0; i < 1000; ++i) {
    ids.push_back(EventId::random());
    w.insert(ids.back(), static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(w.size(), 100u);
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::uint64_t> got;
    w.find(ids[static_cast<std::size_t>(i)], got);
    if (i >= 900)
      EXPECT_EQ(got, std::vector<std::uint64_t>{static_cast<std::uint64_t>(i)});
    else
      EXPECT_TRUE(got.empty()) << i;
  }
  w.erase(ids[999], 999);
  std::vector<std::uint64_t> got;
  w.find(ids[999], got);
  EXPECT_TRUE(got.empty());
  // The same id at two positions is found at both.
  w.insert(ids[5], 999);
  w.insert(ids[5], 1000);
  got.clear();
  w.find(ids[5], got);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::uint64_t>{999, 1000}));
}

TEST(HeadCacheTest, KeepsRecentHeadsAndEvictsWithinBound) {
  HeadCache c(64);
  for (int i = 0; i < 1000; ++i) c.put(HeadCache::key_of("s-" + std::to_string(i)), {static_cast<std::uint64_t>(i), 7});
  int hits = 0;
  for (int i = 0; i < 1000; ++i) {
    auto h = c.get(HeadCache::key_of("s-" + std::to_string(i)));
    if (h) {
      EXPECT_EQ(h->revision, static_cast<std::uint64_t>(i));
      ++hits;
    }
  }
  EXPECT_LE(hits, 72 + 8);
  EXPECT_TRUE(c.get(HeadCache::key_of("s-999")).has_value());
  c.erase(HeadCache::key_of("s-999"));
  EXPECT_FALSE(c.get(HeadCache::key_of("s-999")).has_value());
}

}  // namespace
}  // namespace annal::index
