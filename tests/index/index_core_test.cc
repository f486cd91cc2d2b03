#include "index/index_core.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>

#include "index/head_cache.h"
#include "index/id_window.h"
#include "index/manifest.h"
#include "tests/common/file_edit.h"
#include "tests/index/test_util.h"

namespace annal::index {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

class IndexCoreTest : public ::testing::Test {
 protected:
  IndexCoreOptions options(const std::string& dir) {
    IndexCoreOptions o;
    o.dir = dir;
    o.memtable_entries = memtable_;
    o.merge_fanout = 3;
    o.summary_interval = 4;  // tiny, so summaries have many slots
    o.scrub_after_open = scrub_;
    // The "log" a damaged file is rebuilt from: the model.
    o.load_range = [this](std::uint64_t first, std::uint64_t end, std::vector<IndexEntry>& entries,
                          std::vector<std::uint64_t>&) {
      ++loads_;
      for (const auto& e : model_)
        if (e.position >= first && e.position < end) entries.push_back(e);
      return Status::ok();
    };
    return o;
  }
  std::unique_ptr<IndexCore> open(std::uint64_t log_end) {
    auto c = IndexCore::open(options(dir_.path() + "/index"), log_end);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return std::move(c).value();
  }
  static std::vector<IndexEntry> collect(const IndexCore& c, std::uint64_t h, std::uint64_t lo,
                                         std::uint64_t hi, std::uint64_t limit) {
    auto r = c.collect(h, lo, hi, limit);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r ? *r : std::vector<IndexEntry>{};
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
      EXPECT_EQ(collect(c, h, 0, UINT64_MAX, limit), want) << "hash " << h;
      if (want.size() > 3) {
        std::vector<IndexEntry> mid(want.begin() + 1, want.begin() + 3);
        EXPECT_EQ(collect(c, h, want[1].revision, want[2].revision, limit), mid);
      }
      std::vector<IndexEntry> desc;
      Status st = c.visit_desc(h, limit, [&](const IndexEntry& e) {
        desc.push_back(e);
        return true;
      });
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      std::vector<IndexEntry> rwant(want.rbegin(), want.rend());
      EXPECT_EQ(desc, rwant) << "hash " << h;
    }
  }

  TempDir dir_;
  bool scrub_ = true;
  std::atomic<int> loads_{0};
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
  EXPECT_EQ(collect(*c, 1, 0, UINT64_MAX, UINT64_MAX), want);
  want.resize(7);
  EXPECT_EQ(collect(*c, 1, 0, UINT64_MAX, 7), want);
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
    for (const auto& e : fs::directory_iterator(dir_.path() + "/index"))
      out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  static void flip(const std::string& path, std::uint64_t offset) { test::flip_bits(path, offset); }
};

TEST_F(IndexCoreDamageTest, AnyFlippedByteOfAnyFileOrTheManifestIsDetected) {
  int at_open = 0, by_scrub = 0;
  for (const auto& path : files()) {
    const std::uint64_t size = fs::file_size(path);
    // About 10 probes a file, spread over header, entries, digests, summary,
    // footer.
    for (std::uint64_t off = 0; off < size; off += std::max<std::uint64_t>(1, size / 10) + 1) {
      flip(path, off);
      // Open into a copy so a rebuild does not destroy the fixture.
      TempDir copy;
      fs::copy(dir_.path() + "/index", copy.path() + "/index");
      auto c = IndexCore::open(options(copy.path() + "/index"), next_);
      ASSERT_TRUE(c.is_ok());
      // Decide by what happened, not by timing: the scrub may already have
      // repaired the file when open returns.
      (*c)->wait_idle();
      EXPECT_NE((*c)->rebuild_reason(), "") << path << " offset " << off;
      ASSERT_TRUE((*c)->background_status().is_ok());
      if ((*c)->stats().repairs == 0) {
        // Header, footer, summary or manifest: found at open, whole index reset.
        ++at_open;
        EXPECT_EQ((*c)->indexed_through(), 0u) << path << " offset " << off;
      } else {
        // A block of entries or id digests: found by the scrub, that file
        // rebuilt from the log, every answer as before.
        ++by_scrub;
        EXPECT_EQ((*c)->stats().repairs, 1u) << path << " offset " << off;
        EXPECT_EQ((*c)->indexed_through(), next_);
        expect_matches_model(**c, next_);
      }
      flip(path, off);
    }
  }
  EXPECT_GT(at_open, 0);
  EXPECT_GT(by_scrub, 0);
}

TEST_F(IndexCoreDamageTest, QueryOfADamagedBlockFailsUntilTheFileIsRebuilt) {
  scrub_ = false;  // only the query finds the damage
  std::string victim;
  for (const auto& p : files())
    if (p.ends_with(".ix")) victim = p;
  ASSERT_FALSE(victim.empty());
  // The first entry's hash, read from the file: entries start at byte 64,
  // the first one with its varint head, then its 8-byte hash.
  std::uint64_t hash = 0;
  std::size_t hash_at = kIndexHeaderSize;
  {
    std::ifstream in(victim, std::ios::binary);
    in.seekg(kIndexHeaderSize);
    for (char b = '\x80'; (static_cast<unsigned char>(b) & 0x80) != 0; ++hash_at) in.get(b);
    in.read(reinterpret_cast<char*>(&hash), 8);
  }
  flip(victim, hash_at + 7);  // the first entry's hash: its block no longer checks
  // Block the background thread's repair until the failing query was seen.
  std::mutex gate;
  std::unique_lock hold(gate);
  auto o = options(dir_.path() + "/index");
  auto model_load = o.load_range;
  o.load_range = [&](std::uint64_t a, std::uint64_t b, std::vector<IndexEntry>& e,
                     std::vector<std::uint64_t>& d) {
    std::lock_guard wait(gate);
    return model_load(a, b, e, d);
  };
  auto opened = IndexCore::open(o, next_);
  ASSERT_TRUE(opened.is_ok());
  auto& c = **opened;
  EXPECT_EQ(c.rebuild_reason(), "");  // open does not read the entries
  auto r = c.collect(hash, 0, UINT64_MAX, UINT64_MAX);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  EXPECT_NE(r.status().message().find(fs::path(victim).filename().string()), std::string::npos)
      << r.status().to_string();
  Status v = c.visit_desc(hash, UINT64_MAX, [](const IndexEntry&) { return true; });
  EXPECT_EQ(v.code(), Errc::kCorruption);
  hold.unlock();
  c.wait_idle();
  EXPECT_EQ(c.stats().repairs, 1u);
  EXPECT_NE(c.rebuild_reason().find(fs::path(victim).filename().string()), std::string::npos)
      << c.rebuild_reason();
  EXPECT_FALSE(fs::exists(victim));  // replaced by a new file
  expect_matches_model(c, next_);
  ASSERT_TRUE(c.background_status().is_ok());
}

TEST_F(IndexCoreDamageTest, ARebuildLargerThanTheMemtableIsMergedFromParts) {
  // One file covering many memtables' worth of positions: after a merge of
  // level-0 files, the biggest file spans more than memtable_entries.
  memtable_ = 5;
  auto c0 = open(next_);
  add(*c0, 200, 7, 5);
  ASSERT_TRUE(c0->flush(next_).is_ok());
  c0->wait_idle();
  std::string victim;
  std::uint64_t span = 0;
  for (const auto& m : c0->stats().files)
    if (m.end_position - m.first_position > span) {
      span = m.end_position - m.first_position;
      victim = dir_.path() + "/index/" + index_file_name(m.number);
    }
  c0.reset();
  ASSERT_GT(span, 3 * memtable_);
  flip(victim, kIndexHeaderSize + 5);
  auto c = open(next_);
  c->wait_idle();
  EXPECT_EQ(c->stats().repairs, 1u);
  EXPECT_GE(loads_.load(), static_cast<int>(span / memtable_));  // loaded in memtable-sized parts
  expect_matches_model(*c, next_);
  // Only the manifest's files remain (parts were removed).
  EXPECT_EQ(files().size(), c->stats().files.size() + 1);
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

// docs/storage-format.md, "Index file (.ix), version 4", worked example:
// the writer must produce exactly the bytes the document shows.
TEST(IndexFileFormat, WorkedExampleIsByteExact) {
  TempDir dir;
  IndexFileMeta meta;
  meta.number = 1;
  meta.first_position = 0;
  meta.end_position = 3;
  const std::vector<IndexEntry> entries = {{0x1111, 0, 0}, {0x1111, 1, 2}, {0x2222, 0, 1}};
  std::size_t i = 0;
  ASSERT_TRUE(write_index_file(
                  engine::FileSystem::posix(), dir.path(), meta,
                  [&](IndexEntry& e) {
                    if (i == entries.size()) return false;
                    e = entries[i++];
                    return true;
                  },
                  [](std::uint64_t p) { return 0xA0 + p; }, /*summary_interval=*/2)
                  .is_ok());
  std::ifstream in(dir.path() + "/" + index_file_name(1), std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The hex of the document's dump, line by line.
  const char* doc[] = {
      "414e4e414c4958460400000002000000", "01000000000000000000000000000000",
      "03000000000000000300000000000000", "0000000001000000ee13af08c491cabc",
      "01111100000000000006020000032222", "000000000000020000a0000000000000",
      "00a100000000000000a2000000000000", "00111100000000000000000000000000",
      "00000000000000000040000000000000", "00d162ed8f96324edb22220000000000",
      "00000000000000000001000000000000", "004d00000000000000068ee5100186d0",
      "dd15f8219457d56e6761c8f124f98b27", "9c414e4e414c49584519000000000000",
      "0028d43128014b4012deb034386f93eb", "14e47c97f4eca092d1",
  };
  std::string want_hex;
  for (const char* line : doc) want_hex += line;
  std::string got_hex;
  for (unsigned char c : got) got_hex += fmt::format("{:02x}", c);
  EXPECT_EQ(got_hex, want_hex);
  // And it reads back: every block checks, queries find the entries.
  auto f = IndexFile::open(engine::FileSystem::posix(), dir.path(), meta, /*verify_entries=*/true);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  std::vector<IndexEntry> out;
  ASSERT_TRUE((*f)->collect(0x1111, 0, UINT64_MAX, UINT64_MAX, out).is_ok());
  EXPECT_EQ(out, (std::vector<IndexEntry>{{0x1111, 0, 0}, {0x1111, 1, 2}}));
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
  for (int i = 0; i < 1000; ++i)
    c.put(HeadCache::key_of("s-" + std::to_string(i)), {static_cast<std::uint64_t>(i), 7});
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
