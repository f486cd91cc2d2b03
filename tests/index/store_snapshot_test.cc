// Snapshots in the store (docs/semantics.md, "Snapshots"): the newest at or
// below a revision, the kept limit, what a save may name, snapshots going
// with their stream's deletion (invisible at once, files removed by the
// next scavenge), a damaged file answered as damage, and a reopen.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

class StoreSnapshotTest : public StoreFixture {
 protected:
  void SetUp() override { open(); }
  Result<std::size_t> save(const std::string& s, std::uint64_t rev) {
    return store_->save_snapshot(s, rev, "State", "{\"at\":" + std::to_string(rev) + "}");
  }
  std::optional<std::uint64_t> latest(const std::string& s, std::uint64_t max = UINT64_MAX) {
    auto r = store_->read_snapshot(s, max);
    EXPECT_TRUE(r) << r.status().to_string();
    if (!r || !*r) return std::nullopt;
    EXPECT_EQ((*r)->data, "{\"at\":" + std::to_string((*r)->revision) + "}");
    EXPECT_EQ((*r)->type, "State");
    return (*r)->revision;
  }
  std::size_t files(const std::string& s) {
    const std::string d = dir_.path() + "/snapshots";
    std::size_t n = 0;
    if (!std::filesystem::exists(d)) return 0;
    for (const auto& sub : std::filesystem::directory_iterator(d))
      for (const auto& f : std::filesystem::directory_iterator(sub)) {
        std::ifstream in(f.path(), std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        if (bytes.find(s) != std::string::npos) ++n;
      }
    return n;
  }
};

TEST_F(StoreSnapshotTest, TheNewestAtOrBelowARevisionAndTheKeptLimit) {
  std::vector<std::uint64_t> ids;
  for (std::uint64_t i = 1; i <= 20; ++i) ids.push_back(i);
  ASSERT_TRUE(append("s-1", Rev::any(), ids).status);
  EXPECT_EQ(latest("s-1"), std::nullopt);
  for (std::uint64_t r : {3, 7, 11}) ASSERT_TRUE(save("s-1", r));
  EXPECT_EQ(latest("s-1"), 11u);
  EXPECT_EQ(latest("s-1", 10), 7u);
  EXPECT_EQ(latest("s-1", 2), std::nullopt);
  // At most 8 kept: the oldest go.
  for (std::uint64_t r = 12; r <= 19; ++r) ASSERT_TRUE(save("s-1", r));
  EXPECT_EQ(latest("s-1", 11), std::nullopt);  // 3, 7 and 11 were dropped
  EXPECT_EQ(latest("s-1", 12), 12u);
  EXPECT_EQ(files("s-1"), 8u);
  close();
  open();
  EXPECT_EQ(latest("s-1"), 19u);
}

TEST_F(StoreSnapshotTest, ASaveMustNameARevisionOfTheStream) {
  EXPECT_EQ(save("none", 0).status().code(), Errc::kStreamNotFound);
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2}).status);
  EXPECT_EQ(save("s-1", 2).status().code(), Errc::kBadRequest);  // beyond the last revision
  EXPECT_EQ(store_->save_snapshot("s-1", 1, "", "{}").status().code(), Errc::kBadRequest);
  EXPECT_EQ(store_->save_snapshot("s-1", 1, "T", std::string(5u << 20, 'x')).status().code(),
            Errc::kTooLarge);
  EXPECT_EQ(save("$$s-1", 0).status().code(), Errc::kBadRequest);
  EXPECT_TRUE(save("s-1", 1));
  // A stray file shaped like a snapshot's name is not one (and no crash).
  for (const auto& sub : std::filesystem::directory_iterator(dir_.path() + "/snapshots"))
    std::ofstream(sub.path() / "xxxxxxxxxxxxxxxxxxxx.snap") << "junk";
  EXPECT_EQ(latest("s-1"), 1u);
  EXPECT_TRUE(save("s-1", 1));
}

TEST_F(StoreSnapshotTest, SnapshotsGoWithTheirStream) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2, 3}).status);
  ASSERT_TRUE(save("s-1", 1));
  ASSERT_TRUE(save("s-1", 2));
  ASSERT_TRUE(store_->delete_stream_sync("s-1", Rev::any(), false).status);
  EXPECT_EQ(store_->read_snapshot("s-1", UINT64_MAX).status().code(), Errc::kStreamNotFound);
  // Recreated: the old snapshots are not its state.
  ASSERT_TRUE(append("s-1", Rev::no_stream(), {4}).status);
  EXPECT_EQ(latest("s-1"), std::nullopt);
  EXPECT_EQ(save("s-1", 2).status().code(), Errc::kBadRequest);  // below the deletion
  ASSERT_TRUE(save("s-1", 3));
  EXPECT_EQ(latest("s-1"), 3u);
  EXPECT_EQ(files("s-1"), 3u);
  ASSERT_TRUE(store_->scavenge({}));
  EXPECT_EQ(files("s-1"), 1u);  // the deleted ones' files are gone
  ASSERT_TRUE(store_->delete_stream_sync("s-1", Rev::any(), true).status);
  EXPECT_EQ(store_->read_snapshot("s-1", UINT64_MAX).status().code(), Errc::kStreamDeleted);
  ASSERT_TRUE(store_->scavenge({}));
  EXPECT_EQ(files("s-1"), 0u);
}

TEST_F(StoreSnapshotTest, ADamagedSnapshotIsDamageNotAbsence) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2}).status);
  ASSERT_TRUE(save("s-1", 1));
  for (const auto& sub : std::filesystem::directory_iterator(dir_.path() + "/snapshots"))
    for (const auto& f : std::filesystem::directory_iterator(sub)) {
      std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(50);
      io.put('#');
    }
  auto r = store_->read_snapshot("s-1", UINT64_MAX);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  EXPECT_NE(r.status().message().find(".snap"), std::string::npos) << r.status().to_string();
}

}  // namespace
}  // namespace annal::index::testing
