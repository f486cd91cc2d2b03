// Backup under kill -9 (docs/operations.md, "Backup and restore"): the node
// is killed at random moments of a throttled backup while appends go on. A
// kill never leaves DEST (only DEST.partial, which is no backup: restore
// refuses it), the node restarts with every acknowledged event, and the next
// backup to the same DEST replaces the leftover and restores to exactly the
// events below its position. (A backup that finished before its kill must
// verify clean.)
// ANNAL_BACKUP_KILL_CYCLES sets the cycles (default 4).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "net/client.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"

namespace annal::reliability {
namespace {

using namespace std::chrono_literals;
namespace fsys = std::filesystem;

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

TEST(BackupKillTest, AKillDuringABackupLeavesNoBackupAndTheNextOneIsWhole) {
  const int cycles = static_cast<int>(test::env_u64("ANNAL_BACKUP_KILL_CYCLES", 4));
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string dest = dir.path() + "/bk";
  const std::vector<std::string> flags{"--segment-size",        "256K", "--backup-mb-per-s", "1",
                                       "--scavenge-interval-s", "0"};
  std::mt19937_64 rng(17);
  std::map<std::uint64_t, std::string> acked;  // position -> what was appended
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE(::testing::Message() << "cycle " << cycle);
    NodeProcess node(ANNAL_ANNALD_PATH, data, dir.path(), flags);
    ASSERT_TRUE(node.started()) << node.log_tail();
    auto c = connect(node.port());
    ASSERT_TRUE(c);
    auto have = read_everything(*c);
    for (const auto& [pos, text] : acked) EXPECT_EQ(have[pos], text) << "position " << pos;
    for (int i = 0; i < 400; ++i) {
      const std::string s = "s-" + std::to_string(i % 7);
      const std::string body = random_json(rng, 600);
      index::NewEvent e{random_id(rng), "E", engine::format::kFlagDataJson, "", body};
      auto r = c->append(net::proto::AppendReq{s, ExpectedRevision::any(), {e}});
      ASSERT_TRUE(r.ok()) << r.error_string();
      acked[r->first_position] = s + "@" + std::to_string(r->first_revision) + ":" + body;
    }
    // Appends go on while a backup at 1 MiB/s runs; the kill lands in it.
    std::atomic<bool> stop{false};
    std::thread appending([&stop, port = node.port(), cycle] {
      auto a = connect(port);
      std::mt19937_64 ids(static_cast<std::uint64_t>(cycle));
      for (int i = 0; a && !stop; ++i) {
        index::NewEvent e{random_id(ids), "E", 0, "", "late"};
        if (!a->append(net::proto::AppendReq{"late", ExpectedRevision::any(), {e}}).ok()) return;
      }
    });
    std::atomic<bool> completed{false};
    std::thread backing_up([port = node.port(), &dest, &completed] {
      auto b = connect(port);
      // 256 KiB/s: the kill nearly always lands in it
      if (b && b->backup(dest, false, 256u << 10).ok()) completed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 500));
    node.kill9();
    stop = true;
    backing_up.join();
    appending.join();
    std::string out;
    if (completed) {  // it finished before the kill: a whole backup
      std::printf("cycle %d: the backup finished before the kill\n", cycle);
      EXPECT_EQ(run_program({ANNAL_CLI_PATH, "verify", dest}, &out), 0) << out;
      fsys::remove_all(dest);
      continue;
    }
    EXPECT_FALSE(fsys::exists(dest)) << "a killed backup must not look complete";
    std::printf("cycle %d: killed during the backup (DEST.partial %s)\n", cycle,
                fsys::exists(dest + ".partial") ? "left behind" : "not made yet");
    if (fsys::exists(dest + ".partial")) {
      EXPECT_FALSE(fsys::exists(dest + ".partial/MANIFEST"));
      EXPECT_NE(
          run_program({ANNAL_CLI_PATH, "restore", dest + ".partial", dir.path() + "/r"}, &out), 0)
          << out;
      EXPECT_FALSE(fsys::exists(dir.path() + "/r"));
    }
  }
  // A last backup, not killed, into the same DEST: it replaces the leftover.
  NodeProcess node(ANNAL_ANNALD_PATH, data, dir.path(), flags);
  ASSERT_TRUE(node.started()) << node.log_tail();
  auto c = connect(node.port());
  ASSERT_TRUE(c);
  auto b = c->backup(dest, false, net::proto::kNone);
  ASSERT_TRUE(b.ok()) << b.error_string();
  EXPECT_FALSE(fsys::exists(dest + ".partial"));
  const auto all = read_everything(*c);
  c.reset();
  EXPECT_EQ(node.terminate(), 0);
  std::string out;
  ASSERT_EQ(run_program({ANNAL_CLI_PATH, "verify", dest}, &out), 0) << out;
  const std::string restored = dir.path() + "/restored";
  ASSERT_EQ(run_program({ANNAL_CLI_PATH, "restore", dest, restored}, &out), 0) << out;
  NodeProcess copy(ANNAL_ANNALD_PATH, restored, dir.path(), flags);
  ASSERT_TRUE(copy.started()) << copy.log_tail();
  auto cc = connect(copy.port());
  ASSERT_TRUE(cc);
  std::map<std::uint64_t, std::string> below;
  for (const auto& [pos, text] : all)
    if (pos < b->position) below[pos] = text;
  EXPECT_EQ(read_everything(*cc), below);
  for (const auto& [pos, text] : acked) EXPECT_EQ(below[pos], text) << "position " << pos;
  cc.reset();
  EXPECT_EQ(copy.terminate(), 0);
}

}  // namespace
}  // namespace annal::reliability
