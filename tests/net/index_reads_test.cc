// Reads and subscriptions by category, event type, tag and correlation id
// against the real node: paging both ways with durable_end, read-your-writes
// (an acknowledged event is in every index at once), and subscriptions that
// catch up through the index and go live while four writers append, in log
// order with no gap and no duplicate, with checkpoints.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;
using index::IndexKind;

class IndexReadsTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override { EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text(); }

  static index::NewEvent event(const std::string& type, int i, std::vector<std::string> tags = {},
                               std::string correlation = "") {
    index::NewEvent e = json_event(type, "{\"i\":" + std::to_string(i) + "}");
    e.tags = std::move(tags);
    e.correlation_id = std::move(correlation);
    return e;
  }
  // Every event of the log, read page by page.
  static std::vector<engine::EventRecord> everything(Client& c) {
    std::vector<engine::EventRecord> out;
    std::uint64_t from = 0;
    for (;;) {
      auto r = c.read_all(proto::ReadAllReq{from, 0, index::Direction::kForward});
      EXPECT_TRUE(r.ok()) << r.error_string();
      if (!r.ok()) return out;
      for (auto& e : r->events) out.push_back(std::move(e));
      if (r->end) return out;
      from = r->next;
    }
  }
  // Positions of one key's events, read with read_index in pages of `count`.
  static std::vector<std::uint64_t> by_index(Client& c, IndexKind kind, const std::string& value,
                                             index::Direction d, std::uint32_t count) {
    std::vector<std::uint64_t> out;
    std::uint64_t from = d == index::Direction::kForward ? 0 : proto::kNone;
    for (int pages = 0; pages < 100000; ++pages) {
      auto r = c.read_index(proto::ReadIndexReq{kind, value, from, count, d});
      EXPECT_TRUE(r.ok()) << r.error_string();
      if (!r.ok()) return out;
      EXPECT_LE(r->events.size(), count);
      for (const auto& e : r->events) out.push_back(e.position.value);
      if (r->end) return out;
      from = r->next;
    }
    ADD_FAILURE() << "paging did not end";
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(IndexReadsTest, ReadsPageBothWaysAndEqualAFilteredScanOfTheLog) {
  auto c = node_->client();
  ASSERT_TRUE(c);
  for (int i = 0; i < 120; ++i) {
    const std::string stream = (i % 3 == 0   ? "order-"
                                : i % 3 == 1 ? "user-"
                                             : "plain") +
                               std::to_string(i % 7);
    ASSERT_TRUE(
        c->append(proto::AppendReq{stream,
                                   ExpectedRevision::any(),
                                   {event(i % 2 ? "Paid" : "Placed", i,
                                          {"region:" + std::string(i % 4 ? "eu" : "us")},
                                          i % 5 == 0 ? "cmd-" + std::to_string(i % 10) : "")}})
            .ok());
  }
  const auto log = everything(*c);
  ASSERT_EQ(log.size(), 120u);
  struct Key {
    IndexKind kind;
    std::string value;
    std::function<bool(const engine::EventRecord&)> want;
  };
  const std::vector<Key> keys{
      {IndexKind::kCategory, "order", [](auto& e) { return e.stream.starts_with("order-"); }},
      {IndexKind::kCategory, "plain0", [](auto&) { return false; }},  // no separator: no category
      {IndexKind::kType, "Paid", [](auto& e) { return e.type == "Paid"; }},
      {IndexKind::kTag, "region:us",
       [](auto& e) { return !e.tags.empty() && e.tags[0] == "region:us"; }},
      {IndexKind::kCorrelation, "cmd-0", [](auto& e) { return e.correlation_id == "cmd-0"; }},
      {IndexKind::kCausation, "cmd-0", [](auto&) { return false; }},
  };
  for (const auto& k : keys) {
    std::vector<std::uint64_t> want;
    for (const auto& e : log)
      if (k.want(e)) want.push_back(e.position.value);
    for (std::uint32_t count : {1u, 7u, 0u}) {
      EXPECT_EQ(by_index(*c, k.kind, k.value, index::Direction::kForward, count ? count : 1000),
                want)
          << index::index_kind_name(k.kind) << " " << k.value << " forward by " << count;
      std::vector<std::uint64_t> back(want.rbegin(), want.rend());
      EXPECT_EQ(by_index(*c, k.kind, k.value, index::Direction::kBackward, count ? count : 1000),
                back)
          << index::index_kind_name(k.kind) << " " << k.value << " backward by " << count;
    }
  }
  // A page that reaches the end says where the durable end was, and `next`
  // continues from there.
  auto last = c->read_index(proto::ReadIndexReq{IndexKind::kType, "Paid", 0, 0, {}});
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->end);
  EXPECT_EQ(last->durable_end, 120u);
  EXPECT_EQ(last->next, 120u);
  // Bad requests name what is wrong.
  RawConn raw(node_->port());
  ASSERT_TRUE(raw.handshake());
  ASSERT_TRUE(raw.send(proto::make_frame(proto::Op::kReadIndex, 5,
                                         std::string("\x09\0\0\0\0", 5) + std::string(13, '\0'))));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kBadRequest);
  EXPECT_NE(error_of(*f).message.find("kind"), std::string::npos) << error_of(*f).message;
}

TEST_F(IndexReadsTest, AnAcknowledgedEventIsInEveryIndexAtOnce) {
  auto writer = node_->client();
  auto reader = node_->client();
  ASSERT_TRUE(writer && reader);
  std::atomic<bool> stop{false};
  // Another writer keeps the log moving, so acks and reads race commits.
  std::thread noise([&] {
    auto n = node_->client();
    for (int i = 0; n && !stop.load(); ++i)
      (void)n->append(proto::AppendReq{"noise-1", ExpectedRevision::any(), {event("N", i)}});
  });
  for (int i = 0; i < 200; ++i) {
    const std::string tag = "seq:" + std::to_string(i);
    auto a = writer->append(proto::AppendReq{
        "race-" + std::to_string(i % 3), ExpectedRevision::any(), {event("R", i, {tag}, tag)}});
    ASSERT_TRUE(a.ok()) << a.error_string();
    const std::uint64_t pos = a->first_position;
    for (const auto& [kind, value] :
         std::vector<std::pair<IndexKind, std::string>>{{IndexKind::kTag, tag},
                                                        {IndexKind::kCorrelation, tag},
                                                        {IndexKind::kType, "R"},
                                                        {IndexKind::kCategory, "race"}}) {
      auto r = reader->read_index(
          proto::ReadIndexReq{kind, value, proto::kNone, 1, index::Direction::kBackward});
      ASSERT_TRUE(r.ok()) << r.error_string();
      ASSERT_EQ(r->events.size(), 1u) << index::index_kind_name(kind) << " " << value;
      EXPECT_EQ(r->events[0].position.value, pos) << index::index_kind_name(kind) << " " << value;
      EXPECT_GT(r->durable_end, pos);
    }
  }
  stop.store(true);
  noise.join();
}

TEST_F(IndexReadsTest, SubscriptionsCatchUpThroughTheIndexThenGoLiveWithFourWriters) {
  auto c = node_->client();
  ASSERT_TRUE(c);
  const int history = 200 * scale(), writers = 4, per_writer = 300 * scale();
  for (int i = 0; i < history; ++i)
    ASSERT_TRUE(c->append(proto::AppendReq{(i % 2 ? "cart-" : "user-") + std::to_string(i % 5),
                                           ExpectedRevision::any(),
                                           {event("H", i, {"k:" + std::to_string(i % 3)})}})
                    .ok());
  auto sc = node_->client();
  proto::SubscribeReq by_category{proto::Target::kIndex, "",    false, 0, "", "", 50,
                                  IndexKind::kCategory,  "cart"};
  proto::SubscribeReq by_tag{proto::Target::kIndex, "",   false, 0, "", "", 50,
                             IndexKind::kTag,       "k:1"};
  proto::SubscribeReq by_type{proto::Target::kIndex, "", false, 0, "", "", 50,
                              IndexKind::kType,      "W"};
  auto cat = sc->subscribe(by_category);
  auto tag = sc->subscribe(by_tag);
  auto type = sc->subscribe(by_type);
  proto::SubscribeReq by_correlation = by_type;
  by_correlation.index_kind = IndexKind::kCorrelation;
  by_correlation.index_value = "corr-1";
  auto corr = sc->subscribe(by_correlation);
  ASSERT_TRUE(corr.ok()) << corr.error_string();
  // A key no event has: only checkpoints arrive, every 50 positions.
  proto::SubscribeReq by_absent = by_type;
  by_absent.index_value = "Absent";
  auto absent = sc->subscribe(by_absent);
  ASSERT_TRUE(cat.ok() && tag.ok() && type.ok() && absent.ok())
      << cat.error_string() << tag.error_string() << type.error_string() << absent.error_string();

  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int w = 0; w < writers; ++w)
    ts.emplace_back([&, w] {
      auto wc = node_->client();
      if (!wc) return;
      for (int i = 0; i < per_writer; ++i)
        wc->append_async(proto::AppendReq{(w % 2 ? "cart-w" : "user-w") + std::to_string(w),
                                          ExpectedRevision::any(),
                                          {event("W", i, {"k:" + std::to_string((i + w) % 3)},
                                                 "corr-" + std::to_string(i % 4))}},
                         [&](Reply<proto::AppendOk> r) {
                           if (!r.ok()) ++failures;
                         });
      wc->drain();
    });
  for (auto& t : ts) t.join();
  ASSERT_EQ(failures.load(), 0);
  const auto log = everything(*c);
  std::vector<std::uint64_t> want_cat, want_tag, want_type, want_corr;
  for (const auto& e : log) {
    if (e.stream.starts_with("cart-")) want_cat.push_back(e.position.value);
    if (!e.tags.empty() && e.tags[0] == "k:1") want_tag.push_back(e.position.value);
    if (e.type == "W") want_type.push_back(e.position.value);
    if (e.correlation_id == "corr-1") want_corr.push_back(e.position.value);
  }
  auto drain = [](Subscription& s, std::size_t n, std::vector<std::uint64_t>& checkpoints) {
    std::vector<std::uint64_t> got;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (got.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto m = s.next(200ms);
      if (!m) continue;
      if (m->kind == Kind::kEnded) {
        ADD_FAILURE() << error_string(m->error);
        break;
      }
      if (m->kind == Kind::kCheckpoint) {
        checkpoints.push_back(m->checkpoint);
        continue;
      }
      for (const auto& e : m->events) got.push_back(e.position.value);
    }
    return got;
  };
  std::vector<std::uint64_t> cat_cps, tag_cps, type_cps, corr_cps;
  EXPECT_EQ(drain(*cat.value(), want_cat.size(), cat_cps), want_cat) << "gap, duplicate or order";
  EXPECT_EQ(drain(*tag.value(), want_tag.size(), tag_cps), want_tag) << "gap, duplicate or order";
  EXPECT_EQ(drain(*type.value(), want_type.size(), type_cps), want_type)
      << "gap, duplicate or order";
  ASSERT_EQ(want_corr.size(), static_cast<std::size_t>(writers * per_writer / 4));
  EXPECT_EQ(drain(*corr.value(), want_corr.size(), corr_cps), want_corr)
      << "gap, duplicate or order";
  // The absent key: checkpoints only, increasing, up to the log's end.
  {
    std::uint64_t last = 0;
    int count = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (last < log.size() && std::chrono::steady_clock::now() < deadline) {
      auto m = absent.value()->next(200ms);
      if (!m) continue;
      ASSERT_EQ(m->kind, Kind::kCheckpoint) << "an event of a key no event has";
      EXPECT_GT(m->checkpoint, last);
      EXPECT_LE(m->checkpoint, log.size());
      last = m->checkpoint;
      ++count;
    }
    EXPECT_EQ(last, log.size());
    EXPECT_GE(count, 2);
  }
  // Nothing more arrives but checkpoints (no duplicate after the switch to live).
  auto extra = cat.value()->next(300ms);
  EXPECT_TRUE(!extra || extra->kind != Kind::kEvents);
  // A checkpoint never runs ahead of an event still to be delivered.
  for (auto cp : cat_cps) EXPECT_LE(cp, log.size());
  // From the end: only what is appended after.
  proto::SubscribeReq live = by_category;
  live.from_end = true;
  auto from_end = sc->subscribe(live);
  ASSERT_TRUE(from_end.ok());
  auto a = c->append(proto::AppendReq{"cart-new", ExpectedRevision::any(), {event("L", 0)}});
  ASSERT_TRUE(a.ok());
  std::vector<std::uint64_t> cps;
  EXPECT_EQ(drain(*from_end.value(), 1, cps), std::vector<std::uint64_t>{a->first_position});
}

// seek_time answers the first position written at or after a time; the CLI's
// --from-time reads from there.
TEST_F(IndexReadsTest, SeekTimeFindsTheFirstEventWrittenAtOrAfterATime) {
  auto c = node_->client();
  ASSERT_TRUE(c);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(
        c->append(proto::AppendReq{
                      "clock-" + std::to_string(i % 3), ExpectedRevision::any(), {event("C", i)}})
            .ok());
    if (i % 10 == 9) std::this_thread::sleep_for(20ms);  // a few distinct write times
  }
  const auto log = everything(*c);
  ASSERT_EQ(log.size(), 40u);
  for (std::size_t i = 1; i < log.size(); ++i)
    ASSERT_GE(log[i].timestamp_us, log[i - 1].timestamp_us) << "write time stepped back";
  for (const auto& e : log) {
    for (std::int64_t t : {e.timestamp_us, e.timestamp_us + 1, e.timestamp_us - 1}) {
      auto r = c->seek_time(t);
      ASSERT_TRUE(r.ok()) << r.error_string();
      const std::uint64_t p = r->position;
      EXPECT_EQ(r->durable_end, 40u);
      if (p < log.size()) {
        EXPECT_GE(log[p].timestamp_us, t);
      }
      if (p > 0) {
        EXPECT_LT(log[p - 1].timestamp_us, t);
      }
    }
  }
  auto none = c->seek_time(log.back().timestamp_us + 1);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->position, 40u);
  std::string out;
  const std::uint64_t mid = 25;
  EXPECT_EQ(run_annal(node_->port(),
                      "read-all --from-time " + std::to_string(log[mid].timestamp_us), &out),
            0)
      << out;
  std::uint64_t first = 0;
  while (first < mid && log[first].timestamp_us < log[mid].timestamp_us) ++first;
  EXPECT_EQ(static_cast<std::uint64_t>(std::count(out.begin(), out.end(), '\n')), 40 - first)
      << out;
  EXPECT_EQ(run_annal(node_->port(), "read-category clock --from-time 2999-01-01T00:00:00Z", &out),
            0);
  EXPECT_EQ(out, "");
  EXPECT_EQ(
      run_annal(node_->port(), "read-type C --from-time 1970-01-01T00:00:00.5Z --count 2", &out),
      0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(run_annal(node_->port(), "read-all --from-time yesterday", &out), 2);
  EXPECT_NE(out.find("--from-time"), std::string::npos) << out;
}

TEST_F(IndexReadsTest, VersionOneConnectionsDoNotKnowIndexReads) {
  RawConn raw(node_->port());
  proto::Hello h;
  h.version = 1;
  ASSERT_TRUE(raw.send(proto::encode_hello(1, h)));
  ASSERT_TRUE(raw.read_frame());
  ASSERT_TRUE(raw.send(proto::encode_read_index(
      2, proto::ReadIndexReq{IndexKind::kType, "T", 0, 0, index::Direction::kForward})));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
  auto v1 = node_->client(64, 1);
  ASSERT_TRUE(v1);
  auto r = v1->read_index(proto::ReadIndexReq{IndexKind::kType, "T", 0, 0, {}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("version 2"), std::string::npos);
}

}  // namespace
}  // namespace annal::net::testing
