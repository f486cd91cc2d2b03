// The admin endpoint against an in-process node: metrics counted for a known
// workload, health following the writer and the free-space floor, the JSON
// API's pages, errors and tails.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "admin/beast.h"
#include "engine/format.h"
#include "tests/admin/admin_fixture.h"

namespace annal::admin::testing {
namespace {

using namespace std::chrono_literals;

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& body) {
  auto r = p.parse(body);
  EXPECT_EQ(r.error(), simdjson::SUCCESS) << body;
  return r.value_unsafe();
}

class AdminServerTest : public AdminFixture {};

TEST_F(AdminServerTest, MetricsCountAKnownWorkload) {
  start();
  for (int i = 0; i < 10; ++i) append("order-" + std::to_string(i % 3), 3);
  proto::ReadStreamReq rs;
  rs.stream = "order-1";
  rs.from = 0;
  rs.count = 100;
  ASSERT_TRUE(client().read_stream(rs).ok());
  const auto r = get("/metrics");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto m = parse_samples(r.body);
  EXPECT_EQ(m["annal_appends_total"], 10);
  EXPECT_EQ(m["annal_events_appended_total"], 30);
  EXPECT_EQ(m["annal_requests_total{op=\"append\"}"], 10);
  EXPECT_EQ(m["annal_requests_total{op=\"read_stream\"}"], 1);
  EXPECT_EQ(m["annal_requests_total{op=\"read_all\"}"], 0);
  EXPECT_EQ(m["annal_append_duration_seconds_count"], 10);
  EXPECT_EQ(m["annal_append_duration_seconds_bucket{le=\"+Inf\"}"], 10);
  EXPECT_GT(m["annal_append_duration_seconds_sum"], 0);
  // One client appending one request at a time: one group commit each.
  EXPECT_EQ(m["annal_group_commits_total"], 10);
  EXPECT_EQ(m["annal_group_commit_events_sum"], 30);
  EXPECT_EQ(m["annal_group_commit_events_bucket{le=\"2\"}"], 0);
  EXPECT_EQ(m["annal_group_commit_events_bucket{le=\"4\"}"], 10);
  EXPECT_GE(m["annal_fdatasync_duration_seconds_count"], 10);
  EXPECT_GT(m["annal_written_bytes_total"], 30 * 20);
  EXPECT_EQ(m["annal_durable_end_position"], 30);
  EXPECT_EQ(m["annal_writer_failed"], 0);
  EXPECT_EQ(m["annal_connections_open"], 1);
  EXPECT_EQ(m["annal_connections_accepted_total"], 1);
  EXPECT_EQ(m["annal_subscriptions_active"], 0);
  EXPECT_EQ(m["annal_consumer_groups"], 0);
  EXPECT_GT(m["annal_disk_free_bytes"], 0);
  EXPECT_GT(m["process_resident_memory_bytes"], 0);
}

TEST_F(AdminServerTest, AnErrorAnswerIsCountedByItsCode) {
  start();
  append("s", 1);
  auto r = append_one("s", ExpectedRevision::no_stream());
  ASSERT_FALSE(r.ok());
  auto m = parse_samples(get("/metrics").body);
  EXPECT_EQ(m["annal_errors_total{code=\"wrong_expected_revision\"}"], 1);
  EXPECT_EQ(m["annal_appends_total"], 2);
}

TEST_F(AdminServerTest, SubscriptionsAreCountedWhileOpen) {
  start();
  proto::SubscribeReq sr;
  sr.target = proto::Target::kAll;
  sr.from = 0;
  auto sub = client().subscribe(sr);
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  auto m = parse_samples(get("/metrics").body);
  EXPECT_EQ(m["annal_subscriptions_active"], 1);
  EXPECT_EQ(m["annal_subscriptions_total"], 1);
  EXPECT_EQ(m["annal_subscription_max_lag_events"], 0);
  ASSERT_TRUE((*sub)->unsubscribe().ok());
  for (int i = 0; i < 100; ++i) {
    if (parse_samples(get("/metrics").body)["annal_subscriptions_active"] == 0) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(parse_samples(get("/metrics").body)["annal_subscriptions_active"], 0);
}

TEST(ProgressBoardTest, LagIsTheSubscriptionFurthestBehind) {
  net::ProgressBoard board;
  net::SubProgress live, behind, catching_up;
  live.next = 10;
  behind.next = 4;
  {
    net::BoardHold a(&board, &live), b(&board, &behind), c(&board, &catching_up);
    const auto lag = board.lag(10);
    EXPECT_EQ(lag.behind, 2u);  // `behind` and the one catching up by revision
    EXPECT_EQ(lag.oldest_next, 4u);
  }
  EXPECT_EQ(board.lag(10).behind, 0u);  // the holds left the board
  EXPECT_EQ(board.lag(10).oldest_next, net::SubProgress::kUnknown);
}

TEST_F(AdminServerTest, ACaughtUpSubscriptionShowsNoLag) {
  start();
  append("s", 3);
  proto::SubscribeReq sr;
  sr.target = proto::Target::kAll;
  sr.from = 0;
  auto sub = client().subscribe(sr);
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  auto m = parse_samples(get("/metrics").body);
  for (int i = 0; i < 200 && m["annal_subscription_max_lag_events"] > 0; ++i) {
    std::this_thread::sleep_for(10ms);
    m = parse_samples(get("/metrics").body);
  }
  EXPECT_EQ(m["annal_subscription_max_lag_events"], 0);  // caught up
  EXPECT_EQ(m["annal_subscriptions_behind"], 0);
}

TEST_F(AdminServerTest, MetricsOffAnswersNotFoundAndCountsNothing) {
  start(0, /*metrics=*/false);
  append("s", 2);
  const auto r = get("/metrics");
  EXPECT_EQ(r.status, 404u);
  EXPECT_NE(r.body.find("metrics are off"), std::string::npos) << r.body;
  EXPECT_EQ(store_->log().metrics().events_written.load(), 0u);
  EXPECT_EQ(server_->metrics().append_ns.snapshot().count, 0u);
}

TEST_F(AdminServerTest, LiveAndReadyOnAHealthyNode) {
  start();
  auto live = get("/health/live");
  EXPECT_EQ(live.status, 200u);
  EXPECT_EQ(live.body, "{\"status\":\"live\"}");
  auto ready = get("/health/ready");
  EXPECT_EQ(ready.status, 200u) << ready.body;
  simdjson::dom::parser p;
  auto j = parse(p, ready.body);
  EXPECT_EQ(std::string_view(j["status"].get_string().value()), "ready");
  EXPECT_EQ(std::string_view(j["checks"]["writer"].get_string().value()), "ok");
  EXPECT_EQ(std::string_view(j["checks"]["disk"].get_string().value()), "ok");
}

TEST_F(AdminServerTest, NotReadyOnceTheWriterFailed) {
  use_fault_fs_ = true;
  start();
  append("s", 1);
  fault_fs_.fail_nth_datasync(1);
  auto r = append_one("s", ExpectedRevision::any());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kWriterFailed) << r.error_string();
  auto ready = get("/health/ready");
  EXPECT_EQ(ready.status, 503u);
  simdjson::dom::parser p;
  auto j = parse(p, ready.body);
  EXPECT_EQ(std::string_view(j["status"].get_string().value()), "not_ready");
  EXPECT_EQ(std::string_view(j["checks"]["writer"].get_string().value()), "failed");
  std::string_view reason = j["reasons"].at(0).get_string().value();
  EXPECT_NE(reason.find("log writer failed"), std::string_view::npos) << reason;
  EXPECT_EQ(get("/health/live").status, 200u);  // alive, only not ready
  auto m = parse_samples(get("/metrics").body);
  EXPECT_EQ(m["annal_writer_failed"], 1);
  EXPECT_EQ(m["annal_fdatasync_errors_total"], 1);
}

TEST_F(AdminServerTest, NotReadyBelowTheFreeSpaceFloor) {
  // A floor far above what any disk here has free.
  start(/*min_free=*/std::uint64_t{1} << 60);
  auto ready = get("/health/ready");
  EXPECT_EQ(ready.status, 503u) << ready.body;
  simdjson::dom::parser p;
  auto j = parse(p, ready.body);
  EXPECT_EQ(std::string_view(j["checks"]["disk"].get_string().value()), "below_floor");
  std::string_view reason = j["reasons"].at(0).get_string().value();
  EXPECT_NE(reason.find("below the free-space floor"), std::string_view::npos) << reason;
  // And appends are refused for it, counted as such.
  auto r = append_one("s", ExpectedRevision::any());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kNoSpace);
  EXPECT_EQ(parse_samples(get("/metrics").body)["annal_appends_refused_no_space_total"], 1);
}

TEST_F(AdminServerTest, LogPagesForwardAndBackward) {
  start();
  append("a-1", 3);
  append("b-1", 2);
  simdjson::dom::parser p;
  auto page = parse(p, get("/api/log?from=1&limit=2").body);
  ASSERT_EQ(page["events"].get_array().size(), 2u);
  EXPECT_EQ(page["events"].at(0)["position"].get_uint64().value(), 1u);
  EXPECT_EQ(page["next"].get_uint64().value(), 3u);
  EXPECT_EQ(page["end"].get_uint64().value(), 5u);
  auto last = parse(p, get("/api/log?from=3&limit=10").body);
  EXPECT_EQ(last["events"].get_array().size(), 2u);
  EXPECT_TRUE(last["next"].is_null());
  auto back = parse(p, get("/api/log?direction=backward&limit=2").body);
  ASSERT_EQ(back["events"].get_array().size(), 2u);
  EXPECT_EQ(back["events"].at(0)["position"].get_uint64().value(), 4u);
  EXPECT_EQ(back["events"].at(1)["position"].get_uint64().value(), 3u);
  EXPECT_EQ(back["next"].get_uint64().value(), 2u);
  auto start_page = parse(p, get("/api/log?direction=backward&from=1&limit=5").body);
  EXPECT_EQ(start_page["events"].get_array().size(), 2u);
  EXPECT_TRUE(start_page["next"].is_null());
}

TEST_F(AdminServerTest, AnEventShowsItsJsonData) {
  start();
  append("order-7", 2, "OrderPlaced");
  simdjson::dom::parser p;
  auto r = get("/api/events/1");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto e = parse(p, r.body);
  EXPECT_EQ(std::string_view(e["stream"].get_string().value()), "order-7");
  EXPECT_EQ(e["revision"].get_uint64().value(), 1u);
  EXPECT_EQ(std::string_view(e["type"].get_string().value()), "OrderPlaced");
  EXPECT_EQ(e["data"]["n"].get_uint64().value(), 2u);
  EXPECT_EQ(std::string_view(e["timestamp"].get_string().value()).size(), 27u);  // ...ffffffZ
}

TEST_F(AdminServerTest, StreamPagesAndItsErrors) {
  start();
  append("order-1", 5);
  simdjson::dom::parser p;
  auto page = parse(p, get("/api/streams/order-1?from=1&limit=2").body);
  ASSERT_EQ(page["events"].get_array().size(), 2u);
  EXPECT_EQ(page["events"].at(0)["revision"].get_uint64().value(), 1u);
  EXPECT_EQ(page["next"].get_uint64().value(), 3u);
  EXPECT_EQ(page["last_revision"].get_uint64().value(), 4u);
  auto back = parse(p, get("/api/streams/order-1?direction=backward&limit=10").body);
  EXPECT_EQ(back["events"].get_array().size(), 5u);
  EXPECT_EQ(back["events"].at(0)["revision"].get_uint64().value(), 4u);
  EXPECT_TRUE(back["next"].is_null());

  auto missing = get("/api/streams/nope");
  EXPECT_EQ(missing.status, 404u);
  auto err = parse(p, missing.body);
  EXPECT_EQ(std::string_view(err["error"]["code"].get_string().value()), "stream_not_found");
  EXPECT_EQ(get("/api/events/99").status, 404u);
  auto bad = get("/api/log?limit=0");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("'limit'"), std::string::npos) << bad.body;
  EXPECT_EQ(get("/api/log?from=x").status, 400u);
  EXPECT_EQ(get("/api/events/abc").status, 400u);
  EXPECT_EQ(get("/nothing/here").status, 404u);
  EXPECT_EQ(http_get(admin_->port(), "/api/info", "POST").status, 405u);
}

TEST_F(AdminServerTest, ADamagedRecordIsAnErrorNotAbsence) {
  start();
  append("s", 3);
  // Flip a byte inside the second record's data, through the file (the
  // node's map sees it).
  std::string seg;
  for (const auto& f : std::filesystem::directory_iterator(dir_.path()))
    if (f.path().extension() == ".seg") seg = f.path();
  ASSERT_FALSE(seg.empty());
  std::string bytes;
  {
    std::ifstream in(seg, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto at = bytes.find("{\"n\":2}");
  ASSERT_NE(at, std::string::npos);
  {
    std::fstream out(seg, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(at + 5));
    out.put('9');
  }
  auto r = get("/api/events/1");
  EXPECT_EQ(r.status, 500u) << r.body;
  EXPECT_NE(r.body.find("\"corruption\""), std::string::npos) << r.body;
  auto page = get("/api/log?from=0&limit=10");
  EXPECT_EQ(page.status, 200u);  // the page ends before the damage...
  EXPECT_NE(page.body.find("\"next\":1"), std::string::npos) << page.body;
  EXPECT_EQ(get("/api/log?from=1&limit=10").status, 500u);  // ...and the next one meets it
}

TEST_F(AdminServerTest, InfoDescribesTheNode) {
  start();
  append("s", 4);
  simdjson::dom::parser p;
  auto j = parse(p, get("/api/info").body);
  EXPECT_EQ(j["durable_end"].get_uint64().value(), 4u);
  EXPECT_EQ(std::string_view(j["writer"].get_string().value()), "ok");
  EXPECT_TRUE(j["ready"].get_bool().value());
  EXPECT_EQ(j["appends_total"].get_uint64().value(), 1u);
  EXPECT_EQ(j["events_appended_total"].get_uint64().value(), 4u);
  EXPECT_EQ(std::string_view(j["data_dir"].get_string().value()), dir_.path());
}

// Reads the tail's response until `needle` shows up (or 5 s pass).
std::string read_tail_until(tcp::socket& s, const std::string& needle) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  s.non_blocking(true);
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    boost::system::error_code ec;
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block) {
      std::this_thread::sleep_for(5ms);
      continue;
    }
    if (ec) break;
    got.append(buf, n);
  }
  return got;
}

TEST_F(AdminServerTest, TailSendsEventsAppendedAfterItStarted) {
  start();
  append("old-1", 2);
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), admin_->port()));
  const std::string req =
      "GET /api/tail HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
  asio::write(s, asio::buffer(req));
  auto head = read_tail_until(s, ": annal tail");
  ASSERT_NE(head.find("Content-Type: text/event-stream"), std::string::npos) << head;
  append("new-1", 1, "Arrived");
  auto got = read_tail_until(s, "\"Arrived\"");
  EXPECT_NE(got.find("id: 2\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("old-1"), std::string::npos) << got;  // only what came after
}

TEST_F(AdminServerTest, AStreamTailFromARevisionSendsThatStreamOnly) {
  start();
  append("a-1", 3);
  append("b-1", 1);
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), admin_->port()));
  const std::string req = "GET /api/tail?stream=a-1&from=1 HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(s, asio::buffer(req));
  auto got = read_tail_until(s, "\"revision\":2");
  EXPECT_NE(got.find("\"revision\":1"), std::string::npos) << got;
  EXPECT_EQ(got.find("\"revision\":0"), std::string::npos) << got;
  EXPECT_EQ(got.find("b-1"), std::string::npos) << got;
}

TEST_F(AdminServerTest, StopEndsAnOpenTail) {
  start();
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), admin_->port()));
  asio::write(s, asio::buffer(std::string("GET /api/tail HTTP/1.1\r\nHost: x\r\n\r\n")));
  read_tail_until(s, ": annal tail");
  const auto t0 = std::chrono::steady_clock::now();
  admin_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace annal::admin::testing
