// The hand-offs from the log writer to the network threads: net/inbox.h and
// net/live_cache.h.

#include "net/inbox.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "net/live_cache.h"

namespace annal::net::detail {
namespace {

TEST(InboxTest, ItemsPushedFromAnotherThreadRunOnTheContextsThreadInOrder) {
  asio::io_context io(1);
  auto guard = asio::make_work_guard(io);
  std::thread::id runner;
  std::thread t([&] {
    runner = std::this_thread::get_id();
    io.run();
  });
  std::vector<int> seen;  // io thread only
  std::atomic<bool> wrong_thread{false};
  std::atomic<int> done{0};
  Inbox<int> inbox(io, [&](int& v) {
    if (std::this_thread::get_id() != runner) wrong_thread = true;
    seen.push_back(v);
    done.fetch_add(1);
  });
  for (int i = 0; i < 10000; ++i) inbox.push(int{i});
  while (done.load() < 10000) std::this_thread::yield();
  guard.reset();
  t.join();
  EXPECT_FALSE(wrong_thread.load());
  ASSERT_EQ(seen.size(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(seen[i], i);
}

TEST(InboxTest, OneBurstIsOnePost) {
  asio::io_context io(1);
  int runs = 0;
  Inbox<int> inbox(io, [&](int&) { ++runs; });
  for (int i = 0; i < 100; ++i) inbox.push(int{i});
  // Nothing ran yet: the burst is queued behind exactly one handler.
  EXPECT_EQ(io.poll_one(), 1u);
  EXPECT_EQ(runs, 100);
  EXPECT_EQ(io.poll(), 0u);
}

TEST(InboxTest, ClosedInboxDropsQueuedAndLaterItems) {
  asio::io_context io(1);
  int runs = 0;
  auto held = std::make_shared<int>(7);
  Inbox<std::shared_ptr<int>> inbox(io, [&](std::shared_ptr<int>&) { ++runs; });
  inbox.push(held);
  inbox.close();
  inbox.push(held);
  EXPECT_EQ(held.use_count(), 1) << "a closed inbox must not keep what was pushed alive";
  io.poll();
  EXPECT_EQ(runs, 0);
}

struct FakeBatch {
  int tag = 0;
};

TEST(LiveCacheTest, FindsABatchByVersionFilterAndPositionOnly) {
  LiveCache<FakeBatch> cache;
  cache.insert({2, "order-", "", 0, 10}, std::make_shared<FakeBatch>(FakeBatch{1}), 100);
  auto hit = cache.find({2, "order-", "", 0, 10});
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tag, 1);
  EXPECT_FALSE(cache.find({2, "order-", "", 0, 11}));
  EXPECT_FALSE(cache.find({2, "user-", "", 0, 10}));
  EXPECT_FALSE(cache.find({2, "order-", "Paid", 0, 10}));
  EXPECT_FALSE(cache.find({2, "order-", "", 500, 10}));
  // A batch encoded for protocol v2 is never sent to a v1 connection.
  EXPECT_FALSE(cache.find({1, "order-", "", 0, 10}));
}

TEST(LiveCacheTest, KeepsAtMostSixtyFourBatchesOldestOutFirst) {
  LiveCache<FakeBatch> cache;
  for (int i = 0; i < 100; ++i)
    cache.insert({2, "", "", 0, static_cast<std::uint64_t>(i)}, std::make_shared<FakeBatch>(), 10);
  EXPECT_FALSE(cache.find({2, "", "", 0, 35}));
  EXPECT_TRUE(cache.find({2, "", "", 0, 36}));
  EXPECT_TRUE(cache.find({2, "", "", 0, 99}));
}

TEST(LiveCacheTest, BoundsTheBytesItHolds) {
  LiveCache<FakeBatch> cache;
  for (int i = 0; i < 10; ++i)
    cache.insert({2, "", "", 0, static_cast<std::uint64_t>(i)}, std::make_shared<FakeBatch>(),
                 1u << 20);
  // 8 MiB in all: the first two 1 MiB batches are gone.
  EXPECT_FALSE(cache.find({2, "", "", 0, 1}));
  EXPECT_TRUE(cache.find({2, "", "", 0, 2}));
  // A batch of a quarter of the bound or more is never kept.
  cache.insert({2, "", "", 0, 50}, std::make_shared<FakeBatch>(), 2u << 20);
  EXPECT_FALSE(cache.find({2, "", "", 0, 50}));
}

}  // namespace
}  // namespace annal::net::detail
