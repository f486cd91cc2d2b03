#pragma once
// A fixture for tests that open a Log in a temporary directory.

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/log.h"
#include "engine/segment.h"
#include "tests/engine/test_util.h"

namespace annal::engine {

using testing::make_event;

class LogFixture : public ::testing::Test {
 protected:
  LogOptions options(std::uint64_t segment_size = 256 << 10) {
    LogOptions o;
    o.dir = dir_.path() + "/log";
    o.segment_size = segment_size;
    o.min_free_bytes = 0;
    o.fs = fs_;
    return o;
  }
  std::unique_ptr<Log> open(LogOptions o) {
    auto r = Log::open(std::move(o));
    EXPECT_TRUE(r) << r.status().to_string();
    return r ? std::move(*r) : nullptr;
  }
  std::unique_ptr<Log> open() { return open(options()); }

  // Appends `n` single events (positions are assigned by the log).
  static void append_n(Log& log, std::uint64_t n, std::size_t size = 40) {
    for (std::uint64_t i = 0; i < n; ++i) {
      auto o = log.append_sync({make_event(0, size)});
      ASSERT_TRUE(o.status) << o.status.to_string();
    }
  }
  static std::vector<EventRecord> all(const Log& log) {
    std::vector<EventRecord> out;
    Status s = log.scan_forward(GlobalPosition(0), UINT64_MAX, [&](const RecordView& v) {
      out.push_back(v.to_record());
      return true;
    });
    EXPECT_TRUE(s) << s.to_string();
    return out;
  }
  std::string seg_path(std::uint64_t first) const {
    return dir_.path() + "/log/" + segment_file_name(GlobalPosition(first));
  }
  std::string idx_path(std::uint64_t first) const {
    return dir_.path() + "/log/" + index_file_name(GlobalPosition(first));
  }
  static void patch(const std::string& path, std::uint64_t offset, const std::string& bytes) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  static std::string slurp(const std::string& path, std::uint64_t offset, std::size_t n) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    std::string s(n, '\0');
    f.read(s.data(), static_cast<std::streamsize>(n));
    return s;
  }

  testing::TempDir dir_;
  FileSystem* fs_ = nullptr;  // nullptr: posix
};

}  // namespace annal::engine
