#include "admin/api.h"

#include <fmt/format.h>

#include <charconv>
#include <vector>

#include "admin/event_json.h"
#include "engine/file.h"
#include "engine/format.h"
#include "groups/settings.h"
#include "index/secondary.h"
#include "proto/protocol.h"
#include "read/paging.h"
#include "tools/offline_json.h"

namespace annal::admin {
namespace proto = net::proto;
namespace {

// Collects a page's events as JSON objects.
class JsonSink final : public read::EventSink {
 public:
  std::size_t size_of(const engine::RecordView& v) const override { return v.size + 128; }
  void add(const engine::RecordView& v) override {
    std::string e = event_json(v);
    bytes_ += e.size();
    events_.push_back(std::move(e));
  }
  std::size_t bytes() const override { return bytes_; }
  std::uint32_t count() const override { return static_cast<std::uint32_t>(events_.size()); }

  std::string array() const {
    std::string o = "[";
    for (std::size_t i = 0; i < events_.size(); ++i) {
      if (i > 0) o += ',';
      o += events_[i];
    }
    return o + "]";
  }

 private:
  std::vector<std::string> events_;
  std::size_t bytes_ = 0;
};

struct PageRequest {
  index::Direction direction = index::Direction::kForward;
  std::uint64_t from = 0;
  bool from_given = false;
  read::PageLimits limits;
  std::string error;  // non-empty: a bad request
};

PageRequest page_request(const Target& t) {
  PageRequest p;
  const std::string dir = t.get("direction", "forward");
  if (dir == "backward") {
    p.direction = index::Direction::kBackward;
  } else if (dir != "forward") {
    p.error = "query parameter 'direction' must be forward or backward, got '" + dir + "'";
    return p;
  }
  const auto from = t.number("from", 0);
  const auto limit = t.number("limit", kDefaultPage);
  if (!from.error.empty() || !limit.error.empty()) {
    p.error = from.error.empty() ? limit.error : from.error;
    return p;
  }
  if (limit.value < 1 || limit.value > kMaxPage) {
    p.error = fmt::format("query parameter 'limit' must be between 1 and {}, got {}", kMaxPage,
                          limit.value);
    return p;
  }
  p.from = from.value;
  p.from_given = t.has("from");
  p.limits.max_count = limit.value;
  p.limits.max_bytes = 4u << 20;
  return p;
}

std::string next_json(const read::Page& page) {
  if (page.end || page.next == read::kNone) return "null";
  return std::to_string(page.next);
}

std::string group_source(const groups::Settings& s) {
  switch (s.target) {
    case groups::Target::kStream:
      return s.stream;
    case groups::Target::kAll:
      if (s.stream_prefix.empty() && s.type_prefix.empty()) return "$all";
      return fmt::format("$all (streams {}*, types {}*)", s.stream_prefix, s.type_prefix);
    case groups::Target::kIndex:
      return fmt::format("${}:{}", index::index_kind_name(s.index_kind), s.index_value);
  }
  return "?";
}

}  // namespace

Reply store_error(const Status& st) {
  const proto::Code code = proto::code_from_errc(st.code());
  const unsigned http = st.code() == Errc::kNotFound || st.code() == Errc::kStreamNotFound ? 404
                        : st.code() == Errc::kBadRequest || st.code() == Errc::kInvalidArgument
                            ? 400
                            : 500;
  return error_reply(http, proto::code_name(code), st.to_string());
}

Reply api_info(const Node& node) {
  const auto& log = node.store.log();
  const auto stats = node.server.stats();
  const auto& nm = node.server.metrics();
  const auto& lm = log.metrics();
  const Status writer = log.writer_status();
  const auto now = std::chrono::system_clock::now();
  const auto started_us =
      std::chrono::duration_cast<std::chrono::microseconds>(node.started.time_since_epoch())
          .count();
  tools::JsonObject o;
  o.str("server_version", node.options.server_version);
  o.num("protocol_version", static_cast<std::uint64_t>(proto::kProtocolVersion));
  o.str("data_dir", node.options.data_dir);
  o.str("started_at", iso_time_us(started_us));
  o.num("uptime_seconds", std::chrono::duration<double>(now - node.started).count());
  o.num("durable_end", log.durable_end().value);
  // One node: what readers see is what is durable. Replication will make
  // "visible" a quorum-durable point of its own (docs/architecture.md).
  o.num("visible_end", log.durable_end().value);
  o.str("writer", writer.is_ok() ? "ok" : "failed");
  if (writer.is_ok())
    o.null("writer_error");
  else
    o.str("writer_error", writer.to_string());
  o.boolean("metrics", nm.enabled);
  o.boolean("ready", stats.accepting && writer.is_ok());
  o.num("connections_open", static_cast<std::uint64_t>(stats.connections_open));
  o.num("requests_in_flight", static_cast<std::int64_t>(stats.requests_in_flight));
  o.num("subscriptions_active",
        static_cast<std::int64_t>(nm.subscriptions_active.load(std::memory_order_relaxed)));
  o.num("appends_total", nm.append_ns.snapshot().count);
  o.num("events_appended_total", lm.events_written.load(std::memory_order_relaxed));
  auto free = engine::FileSystem::posix().free_bytes(node.options.data_dir);
  if (free.is_ok())
    o.num("disk_free_bytes", *free);
  else
    o.null("disk_free_bytes");
  o.num("min_free_bytes", node.options.min_free_bytes);
  o.num("segment_size", node.options.segment_size);
  o.num("segments", static_cast<std::uint64_t>(log.segments().size()));
  o.num("groups", static_cast<std::uint64_t>(node.server.groups().size()));
  return json_reply(o.done());
}

Reply api_log(const Node& node, const Target& t) {
  PageRequest p = page_request(t);
  if (!p.error.empty()) return error_reply(400, "bad_request", p.error);
  const std::uint64_t end = node.store.log().durable_end().value;
  if (p.direction == index::Direction::kBackward && !p.from_given) p.from = end == 0 ? 0 : end - 1;
  JsonSink sink;
  read::Page page;
  if (p.direction == index::Direction::kBackward && end == 0) {
    page.end = true;
  } else {
    page = read::read_all_page(node.store, p.from, p.direction, p.limits, sink);
    if (!page.status.is_ok()) return store_error(page.status);
  }
  return json_reply(
      fmt::format("{{\"events\":{},\"next\":{},\"end\":{}}}", sink.array(), next_json(page), end));
}

Reply api_stream(const Node& node, const std::string& stream, const Target& t) {
  if (stream.empty()) return error_reply(400, "bad_request", "the stream name is empty");
  PageRequest p = page_request(t);
  if (!p.error.empty()) return error_reply(400, "bad_request", p.error);
  auto last = node.store.last_revision(stream);
  if (!last.is_ok()) {
    if (last.status().code() == Errc::kStreamNotFound || last.status().code() == Errc::kNotFound)
      return error_reply(404, "stream_not_found", fmt::format("stream '{}' has no events", stream));
    return store_error(last.status());
  }
  if (p.direction == index::Direction::kBackward && !p.from_given) p.from = last->value;
  JsonSink sink;
  read::Page page = read::read_stream_page(node.store, stream, p.from, p.direction, p.limits, sink);
  if (!page.status.is_ok() && page.status.code() != Errc::kNotFound &&
      page.status.code() != Errc::kStreamNotFound)
    return store_error(page.status);
  if (!page.status.is_ok()) page.end = true;
  std::string body = "{\"stream\":";
  tools::append_json_string(body, stream);
  body += fmt::format(",\"events\":{},\"next\":{},\"last_revision\":{}}}", sink.array(),
                      next_json(page), last->value);
  return json_reply(std::move(body));
}

Reply api_event(const Node& node, std::string_view position) {
  std::uint64_t pos = 0;
  auto [end, ec] = std::from_chars(position.data(), position.data() + position.size(), pos);
  if (position.empty() || ec != std::errc() || end != position.data() + position.size())
    return error_reply(400, "bad_request",
                       fmt::format("'{}' is not a position (an unsigned number)", position));
  const auto& log = node.store.log();
  if (pos >= log.durable_end().value)
    return error_reply(
        404, "event_not_found",
        fmt::format("no event at position {}: the log ends at {}", pos, log.durable_end().value));
  const index::Removal removal = node.store.removal();
  std::string body;
  bool removed = false;
  Status st = log.visit(GlobalPosition(pos), [&](const engine::RecordView& v) {
    if (removal.removed(v) || (v.flags & engine::format::kFlagRemoved))
      removed = true;
    else
      body = event_json(v);
  });
  if (!st.is_ok()) return store_error(st);
  if (removed)
    return error_reply(404, "event_not_found",
                       fmt::format("the event at position {} was removed by its stream's "
                                   "deletion or metadata rules",
                                   pos));
  return json_reply(std::move(body));
}

Reply api_groups(const Node& node) {
  std::string body = "{\"groups\":[";
  bool first = true;
  for (const auto& g : node.server.groups()) {
    if (!first) body += ',';
    first = false;
    tools::JsonObject o;
    o.str("name", g.name);
    o.str("kind", g.kind == groups::Kind::kGroup ? "group" : "named_consumer");
    if (g.kind == groups::Kind::kGroup) {
      o.str("source", group_source(g.settings));
      o.str("strategy", groups::strategy_name(g.settings.strategy));
    }
    o.num("checkpoint", g.checkpoint);
    o.num("members", static_cast<std::uint64_t>(g.consumers));
    o.num("lag_events", g.lag_events);
    o.num("lag_seconds", static_cast<double>(g.lag_us) / 1e6);
    o.num("in_flight", g.in_flight);
    o.num("parked", g.parked);
    o.num("acked_total", g.acked_total);
    o.num("delivered_total", g.delivered_total);
    body += o.done();
  }
  body += "]}";
  return json_reply(std::move(body));
}

}  // namespace annal::admin
