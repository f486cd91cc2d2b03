// Scavenge under kill -9 (docs/operations.md, "Scavenge"): the node is
// killed at random moments while a throttled scavenge rewrites segments,
// cycle after cycle. After each kill `annal verify` passes on the directory,
// and after each restart every surviving event is read at its position with
// its data and no removed event is; a final unthrottled scavenge frees the
// space. (The fault-injecting file system's crash at every step of a
// scavenge is tests/index/store_scavenge_test.cc.)
// ANNAL_SCAVENGE_KILL_CYCLES sets the cycles (default 5).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "net/client.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"

namespace annal::reliability {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<net::Client> connect(std::uint16_t port) {
  net::ClientOptions o;
  o.port = port;
  auto c = net::Client::connect(o);
  return c.ok() ? std::move(c.value()) : nullptr;
}

// Every event read_all returns: position -> "stream@revision:data".
std::map<std::uint64_t, std::string> read_everything(net::Client& c) {
  std::map<std::uint64_t, std::string> out;
  std::uint64_t from = 0;
  for (;;) {
    auto r = c.read_all(net::proto::ReadAllReq{from, 500, index::Direction::kForward});
    EXPECT_TRUE(r.ok()) << r.error_string();
    if (!r.ok()) return out;
    for (const auto& e : r->events)
      out[e.position.value] = e.stream + "@" + std::to_string(e.revision.value) + ":" + e.data;
    from = r->next;
    if (r->end) return out;
  }
}

TEST(ScavengeKillTest, AKillAtAnyMomentOfAScavengeLosesNoSurvivingEvent) {
  const int cycles = static_cast<int>(test::env_u64("ANNAL_SCAVENGE_KILL_CYCLES", 5));
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::vector<std::string> slow{
      "--segment-size",        "256K", "--scavenge-mb-per-s",      "1",
      "--scavenge-interval-s", "0",    "--scavenge-free-below-mb", "0"};
  std::map<std::uint64_t, std::string> want;
  std::mt19937_64 rng(11);
  // Each cycle appends to kept-1 and to a stream it then deletes (so every
  // scavenge has fresh work in newly sealed segments), starts a throttled
  // scavenge (1 MiB/s: a 256 KiB segment takes a quarter of a second) and
  // kills the node somewhere in it.
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE(::testing::Message() << "cycle " << cycle);
    NodeProcess node(ANNAL_ANNALD_PATH, data, dir.path(), slow);
    ASSERT_TRUE(node.started()) << node.log_tail();
    auto c = connect(node.port());
    ASSERT_TRUE(c);
    EXPECT_EQ(read_everything(*c), want) << "after the restart";
    const std::string doomed = "gone-" + std::to_string(cycle);
    for (int i = 0; i < 300; ++i)
      for (const std::string& s : {doomed, std::string("kept-1")}) {
        index::NewEvent e{random_id(rng), "E", engine::format::kFlagDataJson, "",
                          random_json(rng, 800)};
        auto r = c->append(net::proto::AppendReq{s, ExpectedRevision::any(), {e}});
        ASSERT_TRUE(r.ok()) << r.error_string();
      }
    ASSERT_TRUE(c->delete_stream(doomed, ExpectedRevision::any()).ok());
    want = read_everything(*c);
    std::thread scavenging([port = node.port()] {
      auto sc = connect(port);
      if (sc) (void)sc->scavenge();  // the kill ends it
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
    node.kill9();
    scavenging.join();
    // How far it got (informational: a kill lands before, in or after it).
    const std::string log = node.log_tail(1u << 20);
    std::size_t rewritten = 0;
    for (std::size_t at = 0; (at = log.find("scavenged segment", at)) != std::string::npos; ++at)
      ++rewritten;
    std::printf("cycle %d: killed after %zu segment rewrites%s\n", cycle, rewritten,
                log.find("scavenge: ") != std::string::npos ? " (the scavenge had finished)" : "");
    std::string out;
    EXPECT_EQ(run_program({ANNAL_CLI_PATH, "verify", data}, &out), 0) << out;
  }
  ASSERT_EQ(want.size(), static_cast<std::size_t>(cycles) * 301u);  // kept-1 and the deletions
  // Finished unthrottled, the space comes back.
  std::vector<std::string> fast = slow;
  fast[3] = "0";
  NodeProcess node(ANNAL_ANNALD_PATH, data, dir.path(), fast);
  ASSERT_TRUE(node.started()) << node.log_tail();
  auto c = connect(node.port());
  ASSERT_TRUE(c);
  EXPECT_EQ(read_everything(*c), want) << "after the last restart";
  auto r = c->scavenge();
  ASSERT_TRUE(r.ok()) << r.error_string();
  EXPECT_EQ(read_everything(*c), want) << "after the final scavenge";
  c.reset();
  EXPECT_EQ(node.terminate(), 0);
  std::string out;
  EXPECT_EQ(run_program({ANNAL_CLI_PATH, "verify", data}, &out), 0) << out;
  // Half the events were deleted, most of them in sealed segments: the
  // segment files hold much less than the segments would unscavenged.
  std::uint64_t bytes = 0, segments = 0;
  for (const auto& e : std::filesystem::directory_iterator(data))
    if (e.path().extension() == ".seg") {
      bytes += e.file_size();
      ++segments;
    }
  EXPECT_LT(bytes, segments * (256u << 10) * 3 / 4)
      << segments << " segment files hold " << bytes << " bytes";
}

}  // namespace
}  // namespace annal::reliability
