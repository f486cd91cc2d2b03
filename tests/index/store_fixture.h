#pragma once
// A fixture for Store tests: a temporary data directory, small helpers to
// append and read, and a whole-store snapshot to compare query results.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/format.h"
#include "index/store.h"
#include "tests/index/test_util.h"

namespace annal::index::testing {

using engine::AppendOutcome;
using Rev = ExpectedRevision;

inline EventId make_id(std::uint64_t n) {
  EventId id;
  for (int i = 0; i < 8; ++i)
    id.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  id.bytes[15] = 0xA5;  // never nil
  return id;
}

class StoreFixture : public ::testing::Test {
 protected:
  StoreOptions options() {
    StoreOptions o;
    o.log.dir = dir_.path();
    o.log.segment_size = segment_size_;
    o.log.min_free_bytes = 0;
    o.log.fs = fs_;
    o.log.prepare_segments = prepare_segments_;
    o.memtable_entries = memtable_;
    o.idempotency_window = window_;
    o.head_cache_entries = head_cache_;
    o.index_merge_fanout = 3;
    o.test_stream_hash = hash_;
    o.test_secondary_hash = secondary_hash_;
    o.test_skip_index_flush_on_close = skip_flush_;
    o.test_before_prepare = before_prepare_;
    return o;
  }
  void open() {
    store_.reset();
    auto s = Store::open(options());
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    store_ = std::move(s).value();
  }
  void close() { store_.reset(); }

  AppendOutcome append(const std::string& stream, Rev expected,
                       const std::vector<std::uint64_t>& ids, const std::string& data = "{}") {
    StreamAppend a;
    a.stream = stream;
    a.expected = expected;
    for (auto n : ids)
      a.events.push_back(NewEvent{make_id(n), "type-" + std::to_string(n), 0, "", data});
    return store_->append_sync(std::move(a));
  }
  // Ids (as numbers) of the stream's events, read forward in pages of 3.
  std::vector<std::uint64_t> ids_of(const std::string& stream) {
    std::vector<std::uint64_t> out;
    std::uint64_t from = 0;
    for (;;) {
      auto r = store_->read_stream(stream, StreamRevision(from), 3, Direction::kForward);
      if (!r) return out;
      if (r->empty()) return out;
      for (const auto& e : *r) {
        EXPECT_EQ(e.revision.value, from) << stream;
        EXPECT_EQ(e.stream, stream);
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | e.id.bytes[static_cast<std::size_t>(i)];
        out.push_back(n);
        ++from;
      }
    }
  }
  // Every stream's events (id, revision, position) plus last revision.
  using Snapshot =
      std::map<std::string, std::vector<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>>>;
  Snapshot snapshot(const std::vector<std::string>& streams) {
    Snapshot s;
    for (const auto& name : streams) {
      auto& v = s[name];
      auto fwd = store_->read_stream(name, StreamRevision(0), 1u << 30, Direction::kForward);
      if (!fwd) {
        v.emplace_back(UINT64_MAX, static_cast<std::uint64_t>(fwd.status().code()), 0);
        continue;
      }
      for (const auto& e : *fwd)
        v.emplace_back(e.id.bytes[0] | (e.id.bytes[1] << 8) | (e.id.bytes[2] << 16),
                       e.revision.value, e.position.value);
      auto last = store_->last_revision(name);
      v.emplace_back(UINT64_MAX - 1, last ? last->value : UINT64_MAX, 0);
      auto back = store_->read_stream(name, StreamRevision(UINT64_MAX), 2, Direction::kBackward);
      if (!back) {
        v.emplace_back(UINT64_MAX - 3, static_cast<std::uint64_t>(back.status().code()), 0);
        continue;
      }
      for (const auto& e : *back)
        v.emplace_back(UINT64_MAX - 2, e.revision.value, e.position.value);
    }
    return s;
  }

  TempDir dir_;
  std::uint64_t segment_size_ = 1u << 20;
  engine::FileSystem* fs_ = nullptr;
  std::size_t memtable_ = 1u << 10;
  std::uint64_t window_ = 1u << 10;
  std::size_t head_cache_ = 1u << 10;
  bool skip_flush_ = false;
  bool prepare_segments_ = true;
  std::function<std::uint64_t(std::string_view)> hash_;
  std::function<std::uint64_t(IndexKind, std::string_view)> secondary_hash_;
  std::function<void()> before_prepare_;
  std::unique_ptr<Store> store_;
};

}  // namespace annal::index::testing
