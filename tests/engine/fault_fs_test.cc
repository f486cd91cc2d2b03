#include "engine/fault_fs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "tests/engine/test_util.h"

namespace annal::engine {
namespace {

class FaultFsTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::unique_ptr<File> open(const std::string& name) {
    auto f = fs_.open(path(name), OpenOptions{.create = true});
    EXPECT_TRUE(f) << f.status().to_string();
    return std::move(*f);
  }
  static void write(File& f, std::uint64_t off, const std::string& s) {
    ASSERT_TRUE(f.pwrite(off, testing::bytes_of(s)));
  }
  std::string contents(const std::string& name) {
    std::ifstream in(path(name), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  testing::TempDir dir_;
  FaultInjectionFileSystem fs_;
};

TEST_F(FaultFsTest, CrashDropsUnsyncedWritesAndKeepsSyncedOnes) {
  {
    auto f = open("a");
    write(*f, 0, "hello world");
    ASSERT_TRUE(f->datasync());
    ASSERT_TRUE(fs_.sync_dir(dir_.path()));
    write(*f, 0, "HELLO");
  }
  ASSERT_TRUE(fs_.crash(1, {.tear_last_write = false}));
  EXPECT_EQ(contents("a"), "hello world");
}

TEST_F(FaultFsTest, ASectorCrashKeepsWholeSectorsOfEveryUnsyncedWriteInAnyOrder) {
  constexpr std::size_t kSector = FaultInjectionFileSystem::kSectorSize;
  const std::string old(6 * kSector, '.');
  std::set<std::string> patterns;
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    {
      auto f = open("a");
      write(*f, 0, old);
      ASSERT_TRUE(f->datasync());
      ASSERT_TRUE(fs_.sync_dir(dir_.path()));
      // Two unsynced writes, the second starting mid-sector.
      write(*f, 0, std::string(3 * kSector, 'x'));
      write(*f, 3 * kSector + 100, std::string(2 * kSector, 'y'));
    }
    ASSERT_TRUE(fs_.crash(seed, {.mode = FaultInjectionFileSystem::TearMode::kSectors}));
    const std::string c = contents("a");
    ASSERT_EQ(c.size(), old.size());
    std::string pattern;
    for (std::size_t s = 0; s < 6; ++s) {
      const std::string sector = c.substr(s * kSector, kSector);
      // Each sector is either as before or as one write left it, never mixed
      // within one write's part of the sector.
      if (s < 3) {
        EXPECT_TRUE(sector == std::string(kSector, '.') || sector == std::string(kSector, 'x'))
            << "seed " << seed << " sector " << s;
        pattern += sector[0];
      } else if (s == 3) {
        EXPECT_EQ(sector.substr(0, 100), std::string(100, '.'));
        const std::string rest = sector.substr(100);
        EXPECT_TRUE(rest == std::string(rest.size(), '.') || rest == std::string(rest.size(), 'y'))
            << "seed " << seed;
        pattern += rest[0];
      } else {
        pattern += sector[0];
      }
    }
    patterns.insert(pattern);
  }
  // Sectors survive independently: some patterns keep a later sector of the
  // first write and lose an earlier one.
  EXPECT_GT(patterns.size(), 16u);
  EXPECT_TRUE(std::any_of(patterns.begin(), patterns.end(),
                          [](const std::string& p) { return p[0] == '.' && p[1] == 'x'; }));
  EXPECT_GT(fs_.out_of_order_tears(), 0u);
}

TEST_F(FaultFsTest, CrashCanKeepAPrefixOfTheLastWrite) {
  {
    auto f = open("a");
    write(*f, 0, std::string(64, '.'));
    ASSERT_TRUE(f->datasync());
    ASSERT_TRUE(fs_.sync_dir(dir_.path()));
    write(*f, 0, std::string(64, 'x'));
  }
  std::set<std::size_t> kept;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    {
      auto f = open("a");
      write(*f, 0, std::string(64, '.'));
      ASSERT_TRUE(f->datasync());
      write(*f, 0, std::string(64, 'x'));
    }
    ASSERT_TRUE(fs_.crash(seed));
    const std::string c = contents("a");
    const std::size_t n =
        c.find_first_not_of('x') == std::string::npos ? 64 : c.find_first_not_of('x');
    EXPECT_EQ(c.substr(n), std::string(64 - n, '.'));
    kept.insert(n);
  }
  EXPECT_GT(kept.size(), 5u);  // torn at many different bytes
}

TEST_F(FaultFsTest, CrashRemovesFilesCreatedSinceTheDirectorySyncAndUndoesRenames) {
  {
    auto f = open("old");
    write(*f, 0, "old manifest");
    ASSERT_TRUE(f->sync());
    ASSERT_TRUE(fs_.sync_dir(dir_.path()));
    auto g = open("new.tmp");
    write(*g, 0, "new manifest");
    ASSERT_TRUE(g->sync());
  }
  ASSERT_TRUE(fs_.rename(path("new.tmp"), path("old")));
  EXPECT_EQ(contents("old"), "new manifest");
  ASSERT_TRUE(fs_.crash(1));
  EXPECT_EQ(contents("old"), "old manifest");
  EXPECT_FALSE(fs_.exists(path("new.tmp")));
}

TEST_F(FaultFsTest, InjectedFaultsFailTheRightCalls) {
  auto f = open("a");
  fs_.fail_nth_datasync(2);
  EXPECT_TRUE(f->datasync());
  EXPECT_EQ(f->datasync().code(), Errc::kIoError);
  EXPECT_TRUE(f->datasync());
  fs_.set_allocate_enospc(true);
  EXPECT_EQ(f->allocate(1 << 16).code(), Errc::kNoSpace);
  fs_.set_allocate_enospc(false);
  EXPECT_TRUE(f->allocate(1 << 16));
  fs_.fail_pwrites_enospc(1);
  EXPECT_EQ(f->pwrite(0, testing::bytes_of("abcd")).code(), Errc::kNoSpace);
  EXPECT_TRUE(f->pwrite(0, testing::bytes_of("abcd")));
  fs_.set_free_bytes(123);
  EXPECT_EQ(*fs_.free_bytes(dir_.path()), 123u);
  fs_.freeze_after(2, 7);
  EXPECT_TRUE(f->pwrite(0, testing::bytes_of("x")));
  EXPECT_EQ(f->datasync().code(), Errc::kIoError);  // the process "dies" here
  EXPECT_TRUE(fs_.frozen());
  EXPECT_EQ(f->pwrite(0, testing::bytes_of("y")).code(), Errc::kIoError);
  EXPECT_EQ(fs_.sync_dir(dir_.path()).code(), Errc::kIoError);
  f.reset();
  ASSERT_TRUE(fs_.crash(3));
  EXPECT_FALSE(fs_.frozen());
}

}  // namespace
}  // namespace annal::engine
