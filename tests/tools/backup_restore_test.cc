// `annal restore` and `annal verify` on a backup (tools/offline_restore.cc;
// docs/operations.md, "Backup and restore"): a backup verifies clean and
// restores to a directory that opens with every event; a damaged, missing
// or unlisted file is named, and nothing is restored; DATA must be new or
// empty; a node refuses a directory whose restore did not finish.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "index/store.h"
#include "tests/tools/tools_fixture.h"

namespace annal::tools::testing {
namespace {

namespace fsys = std::filesystem;

class BackupRestore : public DataDirTest {
 protected:
  void SetUp() override {
    DataDirTest::SetUp();
    root_ = fsys::path(dir_).parent_path().string();
    backup_ = root_ + "/backup";
    target_ = root_ + "/restored";
    populate(900);
    auto s = index::Store::open(store_options(dir_));
    ASSERT_TRUE(s) << s.status().to_string();
    index::BackupOptions o;
    o.dest = backup_;
    o.node_version = "annal test";
    auto r = (*s)->backup(o);
    ASSERT_TRUE(r) << r.status().to_string();
    position_ = r->position.value;
    ASSERT_EQ(position_, original_.size());
  }
  // The real binary, stdout and stderr together.
  int annal(const std::string& args, std::string* out) {
    const std::string cmd = std::string(ANNAL_BINARY) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    out->clear();
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out->append(buf, n);
    const int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  // The backup's first (sealed) segment.
  std::string sealed_segment() const {
    std::string first;
    for (const auto& e : fsys::directory_iterator(backup_)) {
      const std::string n = e.path().filename().string();
      if (n.ends_with(".seg") && (first.empty() || n < first)) first = n;
    }
    return first;
  }
  void flip_byte(const std::string& path, std::uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }

  std::string root_, backup_, target_;
  std::uint64_t position_ = 0;
};

TEST_F(BackupRestore, ABackupVerifiesCleanAndRestoresToADirectoryWithEveryEvent) {
  std::string out;
  ASSERT_EQ(annal("verify " + backup_, &out), 0) << out;
  ASSERT_EQ(annal("restore " + backup_ + " " + target_, &out), 0) << out;
  EXPECT_NE(out.find("position " + std::to_string(position_)), std::string::npos) << out;
  EXPECT_FALSE(fsys::exists(target_ + "/MANIFEST")) << "a restored directory is a data directory";
  EXPECT_FALSE(fsys::exists(target_ + "/.restore.partial"));
  ASSERT_EQ(annal("verify " + target_, &out), 0) << out;
  auto s = index::Store::open(store_options(target_));
  ASSERT_TRUE(s) << s.status().to_string();
  ASSERT_EQ((*s)->log().durable_end().value, position_);
  for (const auto& [pos, want] : original_) {
    auto got = (*s)->log().read(GlobalPosition(pos));
    ASSERT_TRUE(got) << pos;
    EXPECT_EQ(got->stream, want.stream);
    EXPECT_EQ(got->revision, want.revision);
    EXPECT_EQ(got->data, want.data);
    EXPECT_EQ(got->id, want.id);
  }
  // The newest segment is allocated whole again (not a hole).
  std::string newest;
  for (const auto& e : fsys::directory_iterator(target_))
    if (e.path().extension() == ".seg" && e.path().filename().string() > newest)
      newest = e.path().filename().string();
  struct stat st {};
  ASSERT_EQ(::stat((target_ + "/" + newest).c_str(), &st), 0);
  EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, static_cast<std::uint64_t>(st.st_size));
}

TEST_F(BackupRestore, RestoreRefusesACorruptedBackupNamingTheFile) {
  const std::string seg = sealed_segment();
  flip_byte(backup_ + "/" + seg, 4096 + 100);
  std::string out;
  EXPECT_EQ(annal("restore " + backup_ + " " + target_, &out), 1) << out;
  EXPECT_NE(out.find("corruption"), std::string::npos) << out;
  EXPECT_NE(out.find(seg), std::string::npos) << out;
  EXPECT_NE(out.find("nothing was restored"), std::string::npos) << out;
  EXPECT_FALSE(fsys::exists(target_)) << "restore created DATA and removes it on failure";
  // verify names it too, against the MANIFEST (and as a damaged record).
  EXPECT_EQ(annal("verify " + backup_, &out), 1) << out;
  EXPECT_NE(out.find("backup-mismatch " + seg), std::string::npos) << out;
}

TEST_F(BackupRestore, RestoreRefusesAMissingFileAndVerifyNamesAnUnlistedOne) {
  fsys::remove(backup_ + "/index/MANIFEST");
  std::string out;
  EXPECT_EQ(annal("restore " + backup_ + " " + target_, &out), 1) << out;
  EXPECT_NE(out.find("index/MANIFEST is missing"), std::string::npos) << out;
  std::ofstream(backup_ + "/stray.txt") << "x";
  EXPECT_EQ(annal("verify " + backup_, &out), 1) << out;
  EXPECT_NE(out.find("backup-mismatch stray.txt"), std::string::npos) << out;
  EXPECT_NE(out.find("backup-mismatch index/MANIFEST"), std::string::npos) << out;
}

TEST_F(BackupRestore, RestoreIntoANonEmptyDirectoryOrWithoutAManifestIsRefused) {
  fsys::create_directories(target_);
  std::ofstream(target_ + "/keep") << "x";
  std::string out;
  EXPECT_EQ(annal("restore " + backup_ + " " + target_, &out), 1) << out;
  EXPECT_NE(out.find("not empty"), std::string::npos) << out;
  EXPECT_TRUE(fsys::exists(target_ + "/keep"));
  // A data directory is not a backup.
  EXPECT_EQ(annal("restore " + dir_ + " " + root_ + "/other", &out), 1) << out;
  EXPECT_NE(out.find("no MANIFEST"), std::string::npos) << out;
  EXPECT_EQ(annal("restore " + backup_, &out), 2) << out;
}

TEST_F(BackupRestore, RestoreWithLinkSharesTheSealedSegmentsAndCopiesTheNewest) {
  std::string out;
  ASSERT_EQ(annal("restore --link " + backup_ + " " + target_, &out), 0) << out;
  struct stat st {};
  ASSERT_EQ(::stat((target_ + "/" + sealed_segment()).c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  std::string newest;
  for (const auto& e : fsys::directory_iterator(target_))
    if (e.path().extension() == ".seg" && e.path().filename().string() > newest)
      newest = e.path().filename().string();
  ASSERT_EQ(::stat((target_ + "/" + newest).c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u) << "the node writes into the newest segment: never shared";
  ASSERT_EQ(annal("verify " + target_, &out), 0) << out;
}

TEST_F(BackupRestore, ANodeRefusesADirectoryWhoseRestoreDidNotFinish) {
  std::string out;
  ASSERT_EQ(annal("restore " + backup_ + " " + target_, &out), 0) << out;
  fsys::create_directories(target_ + "/.restore.partial");
  auto s = index::Store::open(store_options(target_));
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find(".restore.partial"), std::string::npos)
      << s.status().to_string();
}

}  // namespace
}  // namespace annal::tools::testing
