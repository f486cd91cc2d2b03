// Not a test but a generator for measuring verify's throughput: with
// ANNAL_TOOLS_BIG_DIR=/path and ANNAL_TOOLS_BIG_GIB=N set, writes N GiB of
// events (1 KiB each, 256 MiB segments) into /path. Skipped otherwise.
//   ANNAL_TOOLS_BIG_DIR=/tmp/annal-big ANNAL_TOOLS_BIG_GIB=4 annal_tools_tests
//   --gtest_filter='BigDir.*' annal verify /tmp/annal-big

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/format.h"
#include "engine/log.h"

namespace annal::tools::testing {
namespace {

TEST(BigDir, GenerateForThroughputMeasurement) {
  const char* dir = std::getenv("ANNAL_TOOLS_BIG_DIR");
  if (dir == nullptr)
    GTEST_SKIP() << "set ANNAL_TOOLS_BIG_DIR (and ANNAL_TOOLS_BIG_GIB) to generate";
  const char* gib_env = std::getenv("ANNAL_TOOLS_BIG_GIB");
  const std::uint64_t gib = gib_env ? std::strtoull(gib_env, nullptr, 10) : 4;
  engine::LogOptions lo;
  lo.dir = dir;
  lo.min_free_bytes = 0;
  auto log = engine::Log::open(lo);
  ASSERT_TRUE(log.is_ok()) << log.status().to_string();
  const std::uint64_t target = gib << 30;
  std::uint64_t written = 0, n = 0;
  while (written < target) {
    std::vector<engine::EventRecord> batch;
    for (int k = 0; k < 1000; ++k, ++n) {
      engine::EventRecord r;
      r.stream = fmt::format("account-{}", n % 10007);
      r.type = "Deposited";
      r.revision = StreamRevision(n / 10007);
      r.flags = engine::format::kFlagDataJson;
      r.data = fmt::format(R"({{"n":{},"pad":"{}"}})", n, std::string(900, 'x'));
      written += engine::encoded_size(r);
      batch.push_back(std::move(r));
    }
    auto out = (*log)->append_sync(std::move(batch));
    ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
  }
  fmt::print("wrote {} events, {} bytes of records into {}\n", n, written, dir);
}

}  // namespace
}  // namespace annal::tools::testing
