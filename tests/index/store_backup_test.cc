// Store::backup (index/store_backup.cc): a consistent copy taken while
// writers append, opened as a data directory of its own; the refusals of a
// bad destination; one backup at a time, and none beside a scavenge.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "index/backup_manifest.h"
#include "index/store.h"
#include "tests/common/temp_dir.h"
#include "tests/index/store_fixture.h"

// Options are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::index::testing {
namespace {

namespace fsys = std::filesystem;

struct Acked {
  std::string stream;
  std::uint64_t revision = 0;
  std::uint64_t position = 0;
  EventId id;
  std::string data;
};

class StoreBackupTest : public StoreFixture {
 protected:
  StoreBackupTest() {
    segment_size_ = 256u << 10;  // several sealed segments
    memtable_ = 512;             // index files written (and merged) meanwhile
  }
  std::string dest(const std::string& name = "backup") { return out_.path() + "/" + name; }

  // Writers append to their own streams until `stop`, recording every
  // acknowledged event.
  void start_writers(int n) {
    for (int w = 0; w < n; ++w)
      writers_.emplace_back([this, w] {
        for (std::uint64_t k = 0; !stop_.load(); ++k) {
          const std::string stream = "w" + std::to_string(w) + "-" + std::to_string(k % 7);
          StreamAppend a{stream, ExpectedRevision::any(), {}};
          for (int e = 0; e < 3; ++e)
            a.events.push_back(NewEvent{
                EventId::random(), "T", engine::format::kFlagDataJson, "",
                "{\"w\":" + std::to_string(w) + ",\"k\":" + std::to_string(k) +
                    ",\"e\":" + std::to_string(e) + ",\"pad\":\"" + std::string(200, 'p') + "\"}"});
          auto events = a.events;
          auto out = store_->append_sync(std::move(a));
          ASSERT_TRUE(out.status) << out.status.to_string();
          std::lock_guard l(mu_);
          for (std::uint32_t i = 0; i < out.count; ++i)
            acked_.push_back(Acked{stream, out.first_revision.value + i,
                                   out.first_position.value + i, events[i].id, events[i].data});
        }
      });
  }
  void stop_writers() {
    stop_ = true;
    for (auto& t : writers_) t.join();
    writers_.clear();
  }
  std::size_t acked_count() {
    std::lock_guard l(mu_);
    return acked_.size();
  }

  Result<BackupReport> backup(BackupOptions o) {
    if (o.dest.empty()) o.dest = dest();
    o.node_version = "annal test";
    return store_->backup(o);
  }

  // Opens the backup as a data directory.
  std::unique_ptr<Store> open_copy(const std::string& dir) {
    StoreOptions o = options();
    o.log.dir = dir;
    auto s = Store::open(o);
    EXPECT_TRUE(s) << s.status().to_string();
    return s ? std::move(s).value() : nullptr;
  }

  test::TempDir out_{"annal-backup-out"};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
  std::mutex mu_;
  std::vector<Acked> acked_;
};

TEST_F(StoreBackupTest, ABackupTakenDuringAppendsHoldsExactlyTheEventsBelowItsPosition) {
  open();
  ASSERT_TRUE(
      store_->set_metadata_sync("w0-1", ExpectedRevision::any(), "{\"max_count\":1000}").status);
  start_writers(4);
  while (acked_count() < 3000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(store_->save_snapshot("w0-1", 0, "S", "{\"at\":0}"));
  auto r = backup({});
  while (acked_count() < 6000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop_writers();
  ASSERT_TRUE(r) << r.status().to_string();
  const std::uint64_t p = r->position.value;
  EXPECT_GT(p, 0u);
  EXPECT_FALSE(fsys::exists(dest() + ".partial"));
  EXPECT_GT(r->files, 3u);

  auto copy = open_copy(dest());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->log().durable_end().value, p) << "the copy's log ends exactly at the position";
  std::size_t below = 0, above = 0;
  std::map<std::string, std::uint64_t> heads;  // per stream: revisions below p
  for (const Acked& a : acked_) {
    if (a.position < p) {
      ++below;
      auto ev = copy->read_stream(a.stream, StreamRevision(a.revision), 1, Direction::kForward);
      ASSERT_TRUE(ev) << ev.status().to_string();
      ASSERT_EQ(ev->size(), 1u) << a.stream << "@" << a.revision;
      EXPECT_EQ((*ev)[0].position.value, a.position);
      EXPECT_EQ((*ev)[0].id, a.id);
      EXPECT_EQ((*ev)[0].data, a.data);
      heads[a.stream] = std::max(heads[a.stream], a.revision + 1);
    } else {
      ++above;
    }
  }
  EXPECT_GT(below, 0u);
  EXPECT_GT(above, 0u) << "appends went on during and after the backup";
  // Nothing at or past the position is half-present: each stream ends where
  // its acknowledged events below the position end.
  for (const auto& [stream, n] : heads) {
    auto last = copy->last_revision(stream);
    ASSERT_TRUE(last) << stream;
    EXPECT_EQ(last->value + 1, n) << stream;
  }
  // The stream rules and the snapshot came along.
  auto md = copy->read_metadata("w0-1");
  ASSERT_TRUE(md);
  EXPECT_EQ(md->rules.metadata.max_count, 1000u);
  auto snap = copy->read_snapshot("w0-1", UINT64_MAX);
  ASSERT_TRUE(snap);
  EXPECT_TRUE(snap->has_value());
  // Appends continue the copy's log from its position.
  auto out = copy->append_sync(StreamAppend{
      "after", ExpectedRevision::any(), {NewEvent{EventId::random(), "T", 0, "", "x"}}});
  ASSERT_TRUE(out.status) << out.status.to_string();
  EXPECT_EQ(out.first_position.value, p);
}

TEST_F(StoreBackupTest, TheManifestListsEveryFileWithItsSizeAndChecksum) {
  open();
  for (std::uint64_t i = 0; i < 2000; ++i) append("s-" + std::to_string(i % 5), Rev::any(), {i});
  auto r = backup({});
  ASSERT_TRUE(r) << r.status().to_string();
  std::ifstream in(dest() + "/MANIFEST");
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto m = decode_backup_manifest(json, dest() + "/MANIFEST");
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->position, r->position.value);
  EXPECT_EQ(m->node_version, "annal test");
  EXPECT_EQ(m->files.size(), r->files);
  std::size_t on_disk = 0;
  for (const auto& e : fsys::recursive_directory_iterator(dest()))
    if (e.is_regular_file()) ++on_disk;
  EXPECT_EQ(on_disk, m->files.size() + 1) << "every file but MANIFEST is listed";
  bool has_index = false, has_seg = false;
  for (const auto& f : m->files) {
    EXPECT_EQ(fsys::file_size(dest() + "/" + f.path), f.size) << f.path;
    has_index |= f.path == "index/MANIFEST";
    has_seg |= f.path == "00000000000000000000.seg";
  }
  EXPECT_TRUE(has_index);
  EXPECT_TRUE(has_seg);
}

TEST_F(StoreBackupTest, TheBackupOfAnEmptyStoreOpensAsAnEmptyLog) {
  open();
  auto r = backup({});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->position.value, 0u);
  auto copy = open_copy(dest());
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->log().durable_end().value, 0u);
}

TEST_F(StoreBackupTest, ABadDestinationIsRefusedWithACodeAndAMessageNamingIt) {
  open();
  append("s", Rev::any(), {1});
  auto rel = backup({.dest = "relative/dir"});
  ASSERT_FALSE(rel);
  EXPECT_EQ(rel.status().code(), Errc::kInvalidArgument);
  EXPECT_NE(rel.status().message().find("not an absolute path"), std::string::npos);

  auto inside = backup({.dest = dir_.path() + "/bk"});
  ASSERT_FALSE(inside);
  EXPECT_EQ(inside.status().code(), Errc::kInvalidArgument);
  EXPECT_NE(inside.status().message().find("inside the data directory"), std::string::npos);

  fsys::create_directories(dest("full"));
  std::ofstream(dest("full") + "/x") << "x";
  auto full = backup({.dest = dest("full")});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.status().code(), Errc::kAlreadyExists);
  EXPECT_NE(full.status().message().find("not empty"), std::string::npos);

  auto orphan = backup({.dest = out_.path() + "/no/such/parent"});
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.status().code(), Errc::kInvalidArgument);
  EXPECT_NE(orphan.status().message().find("parent directory"), std::string::npos);

  // An empty directory is fine.
  fsys::create_directories(dest("empty"));
  auto ok = backup({.dest = dest("empty")});
  EXPECT_TRUE(ok) << ok.status().to_string();
}

TEST_F(StoreBackupTest, OneBackupAtATimeAndNoScavengeBesideIt) {
  open();
  for (std::uint64_t i = 0; i < 1000; ++i) append("s", Rev::any(), {i}, std::string(4000, 'x'));
  std::atomic<bool> release{false};
  std::optional<Result<BackupReport>> first;
  std::thread t([&] {
    // Slow enough to overlap: a budget of 1 MiB/s until released.
    first.emplace(backup({.dest = dest("slow"), .bytes_per_second = 1u << 20, .cancelled = [&] {
                            return release.load();
                          }}));
  });
  while (!fsys::exists(dest("slow") + ".partial"))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto second = backup({.dest = dest("second")});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.status().code(), Errc::kBusy);
  EXPECT_NE(second.status().message().find("already running"), std::string::npos);
  auto sc = store_->scavenge({});
  ASSERT_FALSE(sc);
  EXPECT_EQ(sc.status().code(), Errc::kBusy);
  EXPECT_NE(sc.status().message().find("backup is running"), std::string::npos);
  release = true;  // cancels the slow one
  t.join();
  ASSERT_TRUE(first.has_value());
  ASSERT_FALSE(*first);
  EXPECT_EQ(first->status().code(), Errc::kShuttingDown);
  EXPECT_FALSE(fsys::exists(dest("slow") + ".partial")) << "a cancelled backup leaves nothing";
  EXPECT_FALSE(fsys::exists(dest("slow")));
  EXPECT_TRUE(store_->scavenge({})) << "the scavenge runs once the backup is over";
}

TEST_F(StoreBackupTest, LinkModeHardLinksTheSealedSegmentsAndCopiesTheNewest) {
  open();
  for (std::uint64_t i = 0; i < 1000; ++i) append("s", Rev::any(), {i}, std::string(1000, 'x'));
  const auto segs = store_->log().segments();
  ASSERT_GT(segs.size(), 2u);
  auto r = backup({.link = true});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GT(r->linked, 0u);
  EXPECT_TRUE(r->note.empty()) << r->note;
  struct stat st {};
  ASSERT_EQ(::stat((dest() + "/" + segs.front().file).c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u) << "a sealed segment shares its inode with the node's";
  ASSERT_EQ(::stat((dest() + "/" + segs.back().file).c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "the newest segment is a copy";
  auto copy = open_copy(dest());
  ASSERT_TRUE(copy);
  auto all = copy->read_stream("s", StreamRevision(0), 5000, Direction::kForward);
  ASSERT_TRUE(all) << all.status().to_string();
  EXPECT_EQ(all->size(), 1000u);
}

TEST_F(StoreBackupTest, ALeftoverPartialDirectoryOfAnInterruptedBackupIsReplaced) {
  open();
  append("s", Rev::any(), {1});
  fsys::create_directories(dest() + ".partial");
  std::ofstream(dest() + ".partial/.annal-backup-partial") << "x";
  std::ofstream(dest() + ".partial/00000000000000000000.seg") << "half";
  auto r = backup({});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_FALSE(fsys::exists(dest() + ".partial"));
  // A DEST.partial that a backup did not leave is not touched.
  fsys::create_directories(dest("mine") + ".partial");
  std::ofstream(dest("mine") + ".partial/notes.txt") << "mine";
  auto refused = backup({.dest = dest("mine")});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.status().code(), Errc::kAlreadyExists);
  EXPECT_TRUE(fsys::exists(dest("mine") + ".partial/notes.txt"));
}

}  // namespace
}  // namespace annal::index::testing
