#include "tools_fixture.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/format.h"
#include "engine/log.h"
#include "index/store.h"
#include "tests/common/file_edit.h"

// Options are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools::testing {

namespace stdfs = std::filesystem;
namespace f = engine::format;

void DataDirTest::SetUp() {
  std::string tmpl = (stdfs::temp_directory_path() / "annal-tools-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl + "/data";
}

void DataDirTest::TearDown() {
  std::error_code ec;
  stdfs::remove_all(stdfs::path(dir_).parent_path(), ec);
}

index::StoreOptions store_options(const std::string& dir) {
  index::StoreOptions o;
  o.log.dir = dir;
  o.log.segment_size = 64 << 10;
  o.log.min_free_bytes = 0;
  o.memtable_entries = 100;
  return o;
}

namespace {

EventId id_for(std::uint64_t n) {
  EventId id;
  for (int i = 0; i < 8; ++i) id.bytes[i] = static_cast<std::uint8_t>(n >> (8 * i));
  id.bytes[15] = 0x42;
  return id;
}

}  // namespace

void DataDirTest::populate(int events) {
  {
    auto store = index::Store::open(store_options(dir_));
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    int n = 0;
    while (n < events) {
      index::StreamAppend a;
      a.stream = fmt::format("order-{}", n % 5);
      a.expected = ExpectedRevision::any();
      const int batch = std::min(1 + n % 19, events - n);
      for (int k = 0; k < batch; ++k, ++n) {
        index::NewEvent e;
        e.id = id_for(static_cast<std::uint64_t>(n));
        e.type = n % 3 == 0 ? "OrderPlaced" : "OrderShipped";
        if (n % 4 == 0) e.tags = {"customer:" + std::to_string(n % 7), "region:eu"};
        if (n % 5 == 0) e.correlation_id = "cmd-" + std::to_string(n / 5);
        if (n % 10 == 9) {
          e.data = std::string("\x00\x01\x02binary\xff", 10) +
                   std::string(static_cast<std::size_t>(n % 50), 'b');
        } else {
          e.flags = f::kFlagDataJson;
          e.data = fmt::format(R"({{"n":{},"pad":"{}"}})", n,
                               std::string(static_cast<std::size_t>(100 + n % 90), 'x'));
        }
        a.events.push_back(std::move(e));
      }
      auto out = (*store)->append_sync(std::move(a));
      ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
    }
  }
  auto log = engine::Log::open(
      engine::LogOptions{.dir = dir_, .segment_size = 64 << 10, .min_free_bytes = 0});
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  original_.clear();
  Status st = (*log)->scan_forward(GlobalPosition(0), UINT64_MAX, [&](const engine::RecordView& v) {
    original_[v.position.value] = v.to_record();
    return true;
  });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(original_.size(), static_cast<std::size_t>(events));
}

std::vector<std::string> DataDirTest::segments() const {
  std::vector<std::string> out;
  for (const auto& e : stdfs::directory_iterator(dir_))
    if (engine::parse_segment_file_name(e.path().filename().string()))
      out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> DataDirTest::index_files() const {
  std::vector<std::string> out;
  for (const auto& e : stdfs::directory_iterator(dir_ + "/index"))
    if (e.path().extension() == ".ix") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

GlobalPosition DataDirTest::first_of(const std::string& segment) const {
  return *engine::parse_segment_file_name(segment);
}

std::string DataDirTest::read_file(const std::string& name) const {
  std::ifstream in(path(name), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::uint32_t> DataDirTest::offsets(const std::string& segment) const {
  const std::string bytes = read_file(segment);
  auto scan = engine::scan_segment(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()),
      first_of(segment));
  return scan.offsets;
}

std::uint64_t DataDirTest::file_size(const std::string& name) const {
  return stdfs::file_size(path(name));
}

void DataDirTest::flip_bit(const std::string& name, std::uint64_t offset, int bit) {
  test::flip_bits(path(name), offset, static_cast<std::uint8_t>(1u << bit));
}

void DataDirTest::truncate_file(const std::string& name, std::uint64_t size) {
  stdfs::resize_file(path(name), size);
}

void DataDirTest::zero_range(const std::string& name, std::uint64_t offset, std::uint64_t length) {
  std::fstream io(path(name), std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(static_cast<std::streamoff>(offset));
  const std::string zeros(length, '\0');
  io.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

void DataDirTest::remove_file(const std::string& name) {
  ASSERT_TRUE(stdfs::remove(path(name))) << name;
}

void DataDirTest::write_file(const std::string& name, const std::string& content) {
  std::ofstream(path(name), std::ios::binary) << content;
}

VerifyReport DataDirTest::verify() {
  auto r = verify_directory(dir_);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(*r) : VerifyReport{};
}

RepairResult DataDirTest::repair(bool apply) {
  auto r = repair_directory(dir_, RepairOptions{.apply = apply});
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(*r) : RepairResult{};
}

std::vector<Finding> DataDirTest::findings(const VerifyReport& r, FindingKind kind) {
  std::vector<Finding> out;
  for (const auto& fd : r.survey.findings)
    if (fd.kind == kind) out.push_back(fd);
  return out;
}

std::uint64_t DataDirTest::expect_store_opens_with(
    const std::vector<std::pair<std::uint64_t, std::uint64_t>>& lost,
    std::optional<std::uint64_t> end) {
  auto store = index::Store::open(store_options(dir_));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store.is_ok()) return 0;
  const engine::Log& log = (*store)->log();
  const std::uint64_t log_end = log.durable_end().value;
  EXPECT_EQ(log_end, end.value_or(original_.size()));
  auto is_lost = [&](std::uint64_t p) {
    for (auto [a, b] : lost)
      if (p >= a && p < b) return true;
    return false;
  };
  std::uint64_t checked = 0;
  for (std::uint64_t p = 0; p < log_end; ++p) {
    auto rec = log.read(GlobalPosition(p));
    EXPECT_TRUE(rec.is_ok()) << "position " << p << ": " << rec.status().to_string();
    if (!rec.is_ok()) continue;
    if (is_lost(p)) {
      EXPECT_TRUE(rec->is_lost()) << "position " << p << " should be a lost marker";
    } else {
      EXPECT_FALSE(rec->is_lost()) << "position " << p;
      EXPECT_EQ(*rec, original_.at(p)) << "position " << p << " changed";
      ++checked;
    }
  }
  // Every stream reads back through the stream index, intact events only.
  for (int s = 0; s < 5; ++s) {
    const std::string stream = fmt::format("order-{}", s);
    std::uint64_t want = 0;
    for (const auto& [p, r] : original_)
      if (r.stream == stream && p < log_end && !is_lost(p)) ++want;
    std::uint64_t got = 0;
    std::uint64_t max_rev = 0;
    for (const auto& [p, r] : original_)
      if (r.stream == stream && p < log_end) max_rev = std::max(max_rev, r.revision.value);
    for (std::uint64_t rev = 0; rev <= max_rev; ++rev) {
      auto events =
          (*store)->read_stream(stream, StreamRevision(rev), 1, index::Direction::kForward);
      if (!events.is_ok()) {
        // A revision lost at repair is a clear error, never data.
        EXPECT_EQ(events.status().code(), Errc::kLostAtRepair) << events.status().to_string();
        continue;
      }
      for (const auto& e : *events) {
        EXPECT_EQ(e.revision.value, rev);
        EXPECT_EQ(e, original_.at(e.position.value));
        ++got;
      }
    }
    EXPECT_EQ(got, want) << stream;
  }
  return checked;
}

int DataDirTest::run_annal(const std::string& args, std::string* out) {
  const std::string cmd = std::string(ANNAL_BINARY) + " " + args + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace annal::tools::testing
