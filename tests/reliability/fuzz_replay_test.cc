// Replays every fuzz seed (fuzz/corpus/<target>/) and every fuzzer finding
// (tests/reliability/fuzz-regressions/<target>/) through the fuzz targets'
// own entry points, compiled here without libFuzzer, so the normal, ASan and
// TSan suites re-check them on every run. A finding's input goes into
// fuzz-regressions/<target>/ named after what broke.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int fuzz_record_entry(const std::uint8_t* data, std::size_t size);
extern "C" int fuzz_segment_entry(const std::uint8_t* data, std::size_t size);
extern "C" int fuzz_protocol_entry(const std::uint8_t* data, std::size_t size);
extern "C" int fuzz_index_file_entry(const std::uint8_t* data, std::size_t size);
extern "C" int fuzz_json_entry(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;
using Entry = int (*)(const std::uint8_t*, std::size_t);

std::size_t replay(const std::string& target, Entry entry) {
  std::size_t n = 0;
  for (const fs::path& root :
       {fs::path(ANNAL_SOURCE_DIR) / "fuzz/corpus" / target,
        fs::path(ANNAL_SOURCE_DIR) / "tests/reliability/fuzz-regressions" / target}) {
    if (!fs::is_directory(root)) continue;
    for (const auto& f : fs::directory_iterator(root)) {
      if (!f.is_regular_file()) continue;
      std::ifstream in(f.path(), std::ios::binary);
      std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      SCOPED_TRACE(f.path().string());
      // Copy to an exact-size buffer so an over-read is an ASan report.
      std::vector<std::uint8_t> exact(bytes.begin(), bytes.end());
      EXPECT_EQ(entry(exact.data(), exact.size()), 0);
      ++n;
    }
  }
  return n;
}

TEST(FuzzReplayTest, RecordDecoderSeedsAndFindings) {
  EXPECT_GT(replay("fuzz_record", fuzz_record_entry), 0u);
}
TEST(FuzzReplayTest, SegmentScannerSeedsAndFindings) {
  EXPECT_GT(replay("fuzz_segment", fuzz_segment_entry), 0u);
}
TEST(FuzzReplayTest, ProtocolSeedsAndFindings) {
  EXPECT_GT(replay("fuzz_protocol", fuzz_protocol_entry), 0u);
}
TEST(FuzzReplayTest, IndexFileSeedsAndFindings) {
  EXPECT_GT(replay("fuzz_index_file", fuzz_index_file_entry), 0u);
}
TEST(FuzzReplayTest, JsonValidationSeedsAndFindings) {
  EXPECT_GT(replay("fuzz_json", fuzz_json_entry), 0u);
}

}  // namespace
