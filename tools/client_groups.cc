// `annal group create|update|list|info|parked|delete|replay-parked|consume` and
// `annal checkpoint NAME [POSITION]`: consumer groups and named consumers
// (docs/consumer-groups.md) from the command line, printing JSON lines.
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <cstdio>

#include "tools/client_common.h"
#include "tools/client_json.h"
#include "tools/offline_json.h"

namespace po = boost::program_options;

namespace annal::tools {
namespace {

namespace proto = annal::net::proto;

std::string settings_json(const groups::Settings& s) {
  std::string o = fmt::format("{{\"target\":\"{}\"", groups::target_name(s.target));
  auto field = [&o](const char* name, const std::string& v) {
    if (v.empty()) return;
    o += fmt::format(",\"{}\":", name);
    append_json_string(o, v);
  };
  field("stream", s.stream);
  field("stream_prefix", s.stream_prefix);
  field("type_prefix", s.type_prefix);
  if (s.target == groups::Target::kIndex) {
    o += fmt::format(",\"index\":\"{}\"", index::index_kind_name(s.index_kind));
    field("index_value", s.index_value);
  }
  o += fmt::format(
      ",\"strategy\":\"{}\",\"start\":\"{}\",\"start_value\":{},\"max_in_flight\":{},"
      "\"ack_timeout_ms\":{},\"max_retries\":{},\"retry_delay_ms\":{}}}",
      groups::strategy_name(s.strategy), groups::start_name(s.start), s.start_value,
      s.max_in_flight, s.ack_timeout_ms, s.max_retries, s.retry_delay_ms);
  return o;
}

std::string info_json(const proto::GroupInfo& i) {
  std::string o = "{\"name\":";
  append_json_string(o, i.name);
  o += fmt::format(
      ",\"kind\":\"{}\",\"checkpoint\":{},\"durable_end\":{},\"lag_events\":{},"
      "\"lag_seconds\":{:.6f}",
      i.kind == groups::Kind::kNamed ? "named" : "group", i.checkpoint, i.durable_end, i.lag_events,
      static_cast<double>(i.lag_us) / 1e6);
  if (i.kind == groups::Kind::kGroup)
    o += fmt::format(
        ",\"consumers\":{},\"in_flight\":{},\"buffered\":{},\"parked\":{},\"acked_total\":{},"
        "\"parked_total\":{},\"delivered_total\":{},\"settings\":{}",
        i.consumers, i.in_flight, i.buffered, i.parked, i.acked_total, i.parked_total,
        i.delivered_total, settings_json(i.settings));
  return o + "}";
}

// The settings flags of create and update.
struct SettingsFlags {
  bool all = false;
  std::string stream, stream_prefix, type_prefix, category, type, tag, strategy = "round-robin";
  std::string start = "beginning";
  groups::Settings s;

  void add_to(po::options_description& desc) {
    desc.add_options()("stream", po::value(&stream), "the group reads one stream")(
        "all", po::bool_switch(&all), "the group reads the global log")(
        "stream-prefix", po::value(&stream_prefix), "--all: streams starting with P")(
        "type-prefix", po::value(&type_prefix), "--all: event types starting with P")(
        "category", po::value(&category), "the group reads one category")(
        "type", po::value(&type), "the group reads one event type")("tag", po::value(&tag),
                                                                    "the group reads one tag")(
        "strategy", po::value(&strategy)->default_value(strategy),
        "round-robin | ordered (one event of a stream at a time, in order)")(
        "start", po::value(&start)->default_value(start),
        "beginning | end | POSITION | a time (UTC ISO 8601 or microseconds, as time:T)")(
        "max-in-flight", po::value(&s.max_in_flight)->default_value(s.max_in_flight),
        "events delivered and not yet acked, per consumer")(
        "ack-timeout-ms", po::value(&s.ack_timeout_ms)->default_value(s.ack_timeout_ms),
        "an event not acked for this long is delivered again")(
        "max-retries", po::value(&s.max_retries)->default_value(s.max_retries),
        "failed attempts (timeouts, nacks) before an event is parked")(
        "retry-delay-ms", po::value(&s.retry_delay_ms)->default_value(s.retry_delay_ms),
        "how long a nack 'retry later' waits");
  }
  // The settings, or a usage message in *error.
  std::optional<groups::Settings> parse(std::string* error) {
    const int targets = int(all) + int(!stream.empty()) + int(!category.empty()) +
                        int(!type.empty()) + int(!tag.empty());
    if (targets != 1) {
      *error = "give one of --stream, --all, --category, --type or --tag";
      return std::nullopt;
    }
    if (!all && (!stream_prefix.empty() || !type_prefix.empty())) {
      *error = "--stream-prefix and --type-prefix need --all";
      return std::nullopt;
    }
    groups::Settings out = s;
    if (all) {
      out.target = groups::Target::kAll;
      out.stream_prefix = stream_prefix;
      out.type_prefix = type_prefix;
    } else if (!stream.empty()) {
      out.target = groups::Target::kStream;
      out.stream = stream;
    } else {
      out.target = groups::Target::kIndex;
      out.index_kind = !category.empty() ? index::IndexKind::kCategory
                       : !type.empty()   ? index::IndexKind::kType
                                         : index::IndexKind::kTag;
      out.index_value = !category.empty() ? category : !type.empty() ? type : tag;
    }
    if (strategy == "ordered") {
      out.strategy = groups::Strategy::kOrdered;
    } else if (strategy != "round-robin") {
      *error = "--strategy must be round-robin or ordered";
      return std::nullopt;
    }
    if (start == "beginning") {
      out.start = groups::Start::kBeginning;
    } else if (start == "end") {
      out.start = groups::Start::kEnd;
    } else if (start.starts_with("time:")) {
      auto t = parse_time(start.substr(5));
      if (!t || *t < 0) {
        *error = "--start time:T needs UTC like 2026-12-07T09:00:00Z or microseconds";
        return std::nullopt;
      }
      out.start = groups::Start::kTime;
      out.start_value = static_cast<std::uint64_t>(*t);
    } else if (!start.empty() && start.find_first_not_of("0123456789") == std::string::npos &&
               start.size() < 20) {
      out.start = groups::Start::kPosition;
      out.start_value = std::stoull(start);
    } else {
      *error = "--start must be beginning, end, a position or time:T";
      return std::nullopt;
    }
    return out;
  }
};

int group_create(const std::vector<std::string>& args, bool update) {
  const std::string cmd = update ? "group update" : "group create";
  std::string server = kDefaultServer, name;
  SettingsFlags flags;
  po::options_description desc("usage: annal " + cmd +
                               " NAME --stream S | --all [--stream-prefix P] [--type-prefix P] | "
                               "--category C | --type T | --tag T [settings]");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  flags.add_to(desc);
  po::variables_map vm;
  std::vector<std::string> items;  // NAME (positional, beside --stream)
  if (auto done = parse_command(cmd, args, desc, nullptr, vm, &items)) return *done;
  if (items.size() != 1) return usage(cmd, "give one NAME", desc);
  name = items[0];
  std::string error;
  auto settings = flags.parse(&error);
  if (!settings) return usage(cmd, error, desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->group_create(name, *settings, update);
  if (!r.ok()) return fail(r.error());
  auto info = c.value()->group_info(name);
  if (!info.ok()) return fail(info.error());
  print_line(info_json(*info));
  return 0;
}

// list, info, delete, replay-parked: a name (or none) and the server.
int group_simple(const std::vector<std::string>& args, const std::string& sub) {
  const std::string cmd = "group " + sub;
  std::string server = kDefaultServer, name;
  po::options_description desc("usage: annal " + cmd + (sub == "list" ? "" : " NAME"));
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  po::variables_map vm;
  if (auto done = parse_command(cmd, args, desc, sub == "list" ? nullptr : &name, vm)) return *done;
  if (sub != "list" && name.empty()) return usage(cmd, "NAME is required", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  net::Client& client = *c.value();
  if (sub == "list") {
    auto r = client.group_list();
    if (!r.ok()) return fail(r.error());
    for (const auto& i : *r) print_line(info_json(i));
  } else if (sub == "info") {
    auto r = client.group_info(name);
    if (!r.ok()) return fail(r.error());
    print_line(info_json(*r));
  } else if (sub == "parked") {
    std::uint64_t from = 0;
    for (;;) {
      auto r = client.group_parked(name, from);
      if (!r.ok()) return fail(r.error());
      for (const auto& e : r->parked) {
        std::string o = fmt::format(
            "{{\"position\":{},\"failures\":{},\"replaying\":{},\"reason\":", e.position,
            e.failures, e.replaying ? "true" : "false");
        append_json_string(o, e.reason);
        print_line(o + "}");
      }
      if (r->next == proto::kNone) break;
      from = r->next;
    }
  } else if (sub == "delete") {
    auto r = client.group_delete(name);
    if (!r.ok()) return fail(r.error());
    print_line("{\"deleted\":true}");
  } else {
    auto r = client.group_replay_parked(name);
    if (!r.ok()) return fail(r.error());
    print_line(fmt::format("{{\"replayed\":{}}}", *r));
  }
  return 0;
}

int group_consume(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, name;
  std::uint64_t count = 0;
  std::uint32_t max_in_flight = 0;
  po::options_description desc(
      "usage: annal group consume NAME [--count N] [--max-in-flight N]\n"
      "Joins the group, prints each delivered event as a JSON line (with its \"attempt\") and "
      "acks it once printed");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")("count", po::value(&count),
                                                                      "leave after N events")(
      "max-in-flight", po::value(&max_in_flight), "events held at once (default: the group's)");
  po::variables_map vm;
  if (auto done = parse_command("group consume", args, desc, &name, vm)) return *done;
  if (name.empty()) return usage("group consume", "NAME is required", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (count != 0 && (max_in_flight == 0 || max_in_flight > count))
    max_in_flight = static_cast<std::uint32_t>(std::min<std::uint64_t>(count, 10'000));
  auto m = c.value()->group_join(name, max_in_flight);
  if (!m.ok()) return fail(m.error());
  std::uint64_t printed = 0;
  while (count == 0 || printed < count) {
    auto msg = (*m)->next(std::chrono::milliseconds(1000));
    if (!msg) continue;
    if (msg->kind == net::Subscription::Message::Kind::kEnded) return fail(msg->error);
    std::vector<std::uint64_t> done;
    for (std::size_t i = 0; i < msg->events.size(); ++i) {
      if (count != 0 && printed >= count) break;  // not acked: goes to another consumer
      std::string line = event_json(msg->events[i]);
      line.insert(1, fmt::format("\"attempt\":{},", msg->attempts[i]));
      print_line(line);
      done.push_back(msg->events[i].position.value);
      ++printed;
    }
    (*m)->ack(done);
  }
  // The acks are one-way: a round trip makes sure they arrived before leaving.
  (void)c.value()->ping();
  (void)(*m)->leave();
  return 0;
}

}  // namespace

int cmd_group(const std::vector<std::string>& args) {
  const std::string sub = args.size() > 1 ? args[1] : "";
  const std::vector<std::string> rest(args.begin() + (args.size() > 1 ? 1 : 0), args.end());
  if (sub == "create") return group_create(rest, false);
  if (sub == "update") return group_create(rest, true);
  if (sub == "list" || sub == "info" || sub == "delete" || sub == "replay-parked" ||
      sub == "parked")
    return group_simple(rest, sub);
  if (sub == "consume") return group_consume(rest);
  std::fprintf(stderr,
               "annal: group needs a command: create, update, list, info, parked, delete, "
               "replay-parked or consume (got '%s')\n",
               sub.c_str());
  return 2;
}

int cmd_checkpoint(const std::vector<std::string>& args) {
  std::string server = kDefaultServer;
  std::vector<std::string> items;
  po::options_description desc(
      "usage: annal checkpoint NAME [POSITION]\n"
      "Prints a named consumer's stored checkpoint, or stores POSITION as it (durably)");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  po::variables_map vm;
  if (auto done = parse_command("checkpoint", args, desc, nullptr, vm, &items)) return *done;
  if (items.empty() || items.size() > 2) return usage("checkpoint", "NAME [POSITION]", desc);
  std::optional<std::uint64_t> position;
  if (items.size() == 2) {
    const std::string& p = items[1];
    if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos || p.size() >= 20)
      return usage("checkpoint", "POSITION must be a number, got '" + p + "'", desc);
    position = std::stoull(p);
  }
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (position) {
    auto r = c.value()->checkpoint_save(items[0], *position);
    if (!r.ok()) return fail(r.error());
  }
  auto r = c.value()->checkpoint_load(items[0]);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"name\":";
  append_json_string(o, items[0]);
  o += r->has_value() ? fmt::format(",\"position\":{}}}", **r) : std::string(",\"position\":null}");
  print_line(o);
  return 0;
}

std::string groups_json(net::Client& c) {
  if (c.hello().version < 4) return "null";  // a node without groups
  auto r = c.group_list();
  if (!r.ok()) {
    // Said, not answered as "no groups".
    std::string o = "{\"error\":";
    append_json_string(o, r.error_string());
    return o + "}";
  }
  std::string o = "[";
  for (const auto& i : *r) {
    if (o.size() > 1) o += ',';
    o += "{\"name\":";
    append_json_string(o, i.name);
    o += fmt::format(",\"checkpoint\":{},\"lag_events\":{},\"lag_seconds\":{:.6f}}}", i.checkpoint,
                     i.lag_events, static_cast<double>(i.lag_us) / 1e6);
  }
  return o + "]";
}

}  // namespace annal::tools
