#pragma once
// A data directory built by a real Store (log + stream index), and helpers
// that damage it the way disks and crashes do.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/record.h"
#include "engine/segment.h"
#include "index/store.h"
#include "tools/offline.h"

namespace annal::tools::testing {

// The store options the fixture writes and reopens its directory with.
index::StoreOptions store_options(const std::string& dir);

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Appends `events` events (JSON payloads, ~200 bytes each) in appends of
  // up to 19 across 5 streams "order-0".."order-4", into 64 KiB segments, with
  // small index memtables so stream index files get written. Remembers every
  // event by position in original_.
  void populate(int events = 900);

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::vector<std::string> segments() const;     // sorted file names
  std::vector<std::string> index_files() const;  // DIR/index/*.ix names
  // Offsets of the records of a (clean) segment.
  std::vector<std::uint32_t> offsets(const std::string& segment) const;
  GlobalPosition first_of(const std::string& segment) const;
  std::uint64_t file_size(const std::string& name) const;
  std::string read_file(const std::string& name) const;

  void flip_bit(const std::string& name, std::uint64_t offset, int bit = 0);
  void truncate_file(const std::string& name, std::uint64_t size);
  void zero_range(const std::string& name, std::uint64_t offset, std::uint64_t length);
  void remove_file(const std::string& name);
  void write_file(const std::string& name, const std::string& content);

  VerifyReport verify();
  RepairResult repair(bool apply);
  // Findings of one kind.
  std::vector<Finding> findings(const VerifyReport& r, FindingKind kind);

  // Reopens the directory with a Store (the node's open path) and checks
  // every position: lost ones (`lost`, as [first, end) ranges) must be lost
  // markers, every other position below `end` must equal the original event.
  // Returns the log's end.
  std::uint64_t expect_store_opens_with(
      const std::vector<std::pair<std::uint64_t, std::uint64_t>>& lost,
      std::optional<std::uint64_t> end = std::nullopt);

  // Runs the real `annal` binary; returns its exit status.
  int run_annal(const std::string& args, std::string* out = nullptr);

  std::string dir_;
  std::map<std::uint64_t, engine::EventRecord> original_;
};

}  // namespace annal::tools::testing
