// `annal append | read | read-all | read-query | tail | info` (append-multi:
// tools/client_append_multi.cc): client commands
// against a running annald, printing JSON lines (one event per line) for jq.
#include "tools/cli.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "engine/format.h"
#include "net/client.h"
#include "tools/client_common.h"
#include "tools/client_json.h"
#include "tools/offline_json.h"

namespace po = boost::program_options;

namespace annal::tools {
namespace {

namespace proto = annal::net::proto;

int cmd_append(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, stream, type, data, metadata, id_text, expected = "any";
  std::vector<std::string> tags;
  std::string correlation_id, causation_id;
  std::vector<std::string> fail_if;
  std::uint64_t after = 0;
  po::options_description desc("usage: annal append STREAM --type TYPE --data JSON [options]");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")("type", po::value(&type),
                                                                      "event type (required)")(
      "data", po::value(&data), "event data, JSON (required)")("metadata", po::value(&metadata),
                                                               "event metadata, JSON")(
      "id", po::value(&id_text), "event id (UUID); random if omitted")(
      "expected", po::value(&expected)->default_value(expected),
      "expected revision: any | no_stream | stream_exists | N")(
      "tag", po::value(&tags)->composing(),
      "a tag, typically key:value (repeat for more; stored sorted, once)")(
      "correlation-id", po::value(&correlation_id), "the correlation id")(
      "causation-id", po::value(&causation_id), "the causation id")(
      "fail-if", po::value(&fail_if)->composing(),
      "a condition item 'type=A,B tag=K:V ...': refuse the append if an event matching any "
      "--fail-if item exists (after --after); repeat for more items")(
      "after", po::value(&after), "with --fail-if: only events after this position count");
  po::variables_map vm;
  if (auto done = parse_command("append", args, desc, &stream, vm)) return *done;
  if (vm.count("after") && fail_if.empty()) return usage("append", "--after needs --fail-if", desc);
  if (stream.empty() || !vm.count("type") || !vm.count("data"))
    return usage("append", "STREAM, --type and --data are required", desc);
  auto exp = parse_expected(expected);
  if (!exp) return usage("append", "invalid --expected '" + expected + "'", desc);
  index::NewEvent ev;
  if (vm.count("id")) {
    auto id = EventId::parse(id_text);
    if (!id) return usage("append", "invalid --id '" + id_text + "' (want a UUID)", desc);
    ev.id = *id;
  } else {
    ev.id = EventId::random();
  }
  ev.type = type;
  ev.data = data;
  ev.flags = engine::format::kFlagDataJson;
  ev.tags = tags;
  ev.correlation_id = correlation_id;
  ev.causation_id = causation_id;
  if (vm.count("metadata")) {
    ev.metadata = metadata;
    ev.flags |= engine::format::kFlagMetadataJson;
  }
  std::string error;
  auto condition = parse_query(fail_if, error);
  if (!condition) return usage("append", error, desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (!fail_if.empty()) {
    proto::AppendMultiReq req{
        {{stream, *exp, {ev}}}, std::move(*condition), vm.count("after") ? after : proto::kNone};
    auto r = c.value()->append_multi(req);
    if (!r.ok()) return fail(r.error());
    if (r->refused) {
      return fail(
          proto::Error{r->refused->code, r->refused->conflict_position, r->refused->message});
    }
    std::string o = "{\"stream\":";
    append_json_string(o, stream);
    o += fmt::format(",\"id\":\"{}\",\"position\":{},\"revision\":{},\"deduplicated\":{}}}",
                     ev.id.to_string(), r->ok->first_position, r->ok->streams[0].first_revision,
                     r->ok->deduplicated ? "true" : "false");
    print_line(o);
    return 0;
  }
  proto::AppendReq req{stream, *exp, {ev}};
  auto r = c.value()->append(req);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"stream\":";
  append_json_string(o, stream);
  o += fmt::format(",\"id\":\"{}\",\"position\":{},\"revision\":{},\"deduplicated\":{}}}",
                   ev.id.to_string(), r->first_position, r->first_revision,
                   r->deduplicated ? "true" : "false");
  print_line(o);
  return 0;
}

// The first position written at or after --from-time, from the node.
std::optional<std::uint64_t> seek(net::Client& c, const std::string& text, int& exit_code) {
  auto t = parse_time(text);
  if (!t) {
    std::fprintf(stderr,
                 "annal: --from-time must be microseconds since the epoch or UTC like "
                 "2026-12-07T09:00:00Z, got '%s'\n",
                 text.c_str());
    exit_code = 2;
    return std::nullopt;
  }
  auto r = c.seek_time(*t);
  if (!r.ok()) {
    exit_code = fail(r.error());
    return std::nullopt;
  }
  return r->position;
}

struct ReadFlags {
  std::string server = kDefaultServer;
  std::string stream;
  std::uint64_t from = 0;
  std::uint64_t count = 0;  // 0 = everything
  bool backward = false;
  std::string from_time;
};

// The secondary index a `read-*` command reads, by its name.
struct IndexCommand {
  const char* cmd;
  index::IndexKind kind;
  const char* what;
};
constexpr IndexCommand kIndexCommands[] = {
    {"read-category", index::IndexKind::kCategory, "CATEGORY"},
    {"read-type", index::IndexKind::kType, "TYPE"},
    {"read-tag", index::IndexKind::kTag, "TAG"},
    {"read-correlation", index::IndexKind::kCorrelation, "ID"},
    {"read-causation", index::IndexKind::kCausation, "ID"},
};
const IndexCommand* index_command(const std::string& cmd) {
  for (const auto& c : kIndexCommands)
    if (cmd == c.cmd) return &c;
  return nullptr;
}

// Prints events page by page from f.from until f.count of them (0: all) or
// the end: fetch(cursor, n) reads one page, on_page sees each. The exit code.
template <class Fetch, class OnPage = void (*)(const proto::ReadOk&)>
int print_pages(
    const ReadFlags& f, Fetch fetch, OnPage on_page = [](const proto::ReadOk&) {}) {
  std::uint64_t printed = 0, cursor = f.from;
  while (f.count == 0 || printed < f.count) {
    const auto n = static_cast<std::uint32_t>(
        f.count == 0 ? 1000 : std::min<std::uint64_t>(f.count - printed, 1000));
    auto r = fetch(cursor, n);
    if (!r.ok()) return fail(r.error());
    on_page(r.value());
    for (const auto& e : r->events) {
      if (f.count != 0 && printed >= f.count) break;
      print_line(event_json(e));
      ++printed;
    }
    if (r->end || r->events.empty() || r->next == proto::kNone) return 0;
    cursor = r->next;
  }
  return 0;
}

// read STREAM, read-all, and read-category / -type / -tag / -correlation /
// -causation VALUE (`key`: the index read, or null).
int cmd_read(const std::vector<std::string>& args, bool all, const IndexCommand* key = nullptr) {
  ReadFlags f;
  const std::string cmd = key ? key->cmd : all ? "read-all" : "read";
  const std::string usage_text =
      key ? fmt::format(
                "usage: annal {} {} [--from POS] [--count N] [--backward]\n"
                "Events of one {} in log order (positions)",
                key->cmd, key->what, index::index_kind_name(key->kind))
      : all ? "usage: annal read-all [--from POS] [--count N] [--backward]"
            : "usage: annal read STREAM [--from REV] [--count N] [--backward]";
  po::options_description desc(usage_text);
  desc.add_options()("help,h", "this help")("server", po::value(&f.server)->default_value(f.server),
                                            "node address HOST:PORT")(
      "from", po::value(&f.from),
      all || key ? "first position (default: start, or end with --backward)"
                 : "first revision (default: start, or end with --backward)")(
      "count", po::value(&f.count), "at most N events (default: all)")(
      "backward", po::bool_switch(&f.backward), "newest first");
  if (all || key)
    desc.add_options()("from-time", po::value(&f.from_time),
                       "start at the first event written at or after this time (backward: the "
                       "last one before it); microseconds since the epoch or UTC like "
                       "2026-12-07T09:00:00Z");
  po::variables_map vm;
  if (auto done = parse_command(cmd, args, desc, all ? nullptr : &f.stream, vm)) return *done;
  if (!all && f.stream.empty())
    return usage(cmd, std::string(key ? key->what : "STREAM") + " is required", desc);
  if (!vm.count("from") && f.backward) f.from = proto::kNone;
  if (vm.count("from") && vm.count("from-time"))
    return usage(cmd, "give --from or --from-time, not both", desc);
  auto c = connect(f.server);
  if (!c.ok()) return fail(c.error());
  if (vm.count("from-time")) {
    int code = 0;
    auto pos = seek(*c.value(), f.from_time, code);
    if (!pos) return code;
    if (f.backward && *pos == 0) return 0;  // nothing was written before it
    f.from = f.backward ? *pos - 1 : *pos;
  }
  const auto dir = f.backward ? index::Direction::kBackward : index::Direction::kForward;
  net::Client& client = *c.value();
  return print_pages(f, [&](std::uint64_t cursor, std::uint32_t n) {
    return key   ? client.read_index(proto::ReadIndexReq{key->kind, f.stream, cursor, n, dir})
           : all ? client.read_all(proto::ReadAllReq{cursor, n, dir})
                 : client.read_stream(proto::ReadStreamReq{f.stream, cursor, n, dir});
  });
}

// read-query ITEM [ITEM...]: the events matching a query (items combined with
// OR), paged; --head prints {"head":POS} last (the position a condition's
// --after takes; null on an empty log).
int cmd_read_query(const std::vector<std::string>& args) {
  ReadFlags f;
  std::vector<std::string> items;
  bool print_head = false;
  po::options_description desc(
      "usage: annal read-query 'type=A,B tag=K:V' ['tag=X' ...] [--from POS] [--count N] "
      "[--backward] [--head]\n"
      "Events matching any of the items (an item: one of its types, all of its tags), in log "
      "order");
  desc.add_options()("help,h", "this help")("server", po::value(&f.server)->default_value(f.server),
                                            "node address HOST:PORT")(
      "from", po::value(&f.from), "first position (default: start, or end with --backward)")(
      "count", po::value(&f.count), "at most N events (default: all)")(
      "backward", po::bool_switch(&f.backward), "newest first")(
      "head", po::bool_switch(&print_head),
      "print {\"head\":POS} after the events: the last durable position when read (for "
      "append --after)");
  po::variables_map vm;
  if (auto done = parse_command("read-query", args, desc, nullptr, vm, &items)) return *done;
  if (items.empty()) return usage("read-query", "at least one query item is required", desc);
  std::string error;
  auto q = parse_query(items, error);
  if (!q) return usage("read-query", error, desc);
  if (!vm.count("from") && f.backward) f.from = proto::kNone;
  auto c = connect(f.server);
  if (!c.ok()) return fail(c.error());
  const auto dir = f.backward ? index::Direction::kBackward : index::Direction::kForward;
  std::uint64_t durable_end = 0;
  bool first_page = true;
  const int code = print_pages(
      f,
      [&](std::uint64_t cursor, std::uint32_t n) {
        return c.value()->read_query(proto::ReadQueryReq{*q, cursor, n, dir});
      },
      [&](const proto::ReadOk& page) {
        // Forward, the last page's durable end covers every page; backward,
        // the first page's (later events were not looked at).
        if (!f.backward || first_page) durable_end = page.durable_end;
        first_page = false;
      });
  if (code != 0) return code;
  if (print_head)
    print_line(durable_end == 0 ? std::string("{\"head\":null}")
                                : fmt::format("{{\"head\":{}}}", durable_end - 1));
  return 0;
}

int cmd_tail(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, stream, stream_prefix, type_prefix, from_time;
  std::string keys[std::size(kIndexCommands)];
  std::uint64_t from = 0, count = 0;
  bool all = false, checkpoints = false;
  std::vector<std::string> query_items;
  po::options_description desc(
      "usage: annal tail STREAM | --all | --category C | --type T | --tag K:V | --correlation ID "
      "| --causation ID\n"
      "       [--from POS|REV] [--stream-prefix P] [--type-prefix P] [--count N]\n"
      "Follows a stream, the global log or one index key: history from --from (default: only "
      "new events), then live");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")(
      "all", po::bool_switch(&all), "follow the global log instead of one stream")(
      "from", po::value(&from),
      "start at this revision (stream) or position (--all); default: the end")(
      "stream-prefix", po::value(&stream_prefix), "--all only: events of streams starting with P")(
      "type-prefix", po::value(&type_prefix), "--all only: events whose type starts with P")(
      "from-time", po::value(&from_time),
      "start at the first event written at or after this time (--all or an index key)")(
      "count", po::value(&count), "exit after N events")(
      "checkpoints", po::bool_switch(&checkpoints), "also print {\"checkpoint\":POS} lines")(
      "query", po::value(&query_items)->composing(),
      "follow the events matching a query item 'type=A,B tag=K:V' (repeat: any of them)");
  for (std::size_t i = 0; i < std::size(kIndexCommands); ++i)
    desc.add_options()(kIndexCommands[i].cmd + 5, po::value(&keys[i]),
                       "follow the events of this index key (positions)");
  po::variables_map vm;
  if (auto done = parse_command("tail", args, desc, &stream, vm)) return *done;
  const IndexCommand* key = nullptr;
  std::string key_value;
  for (std::size_t i = 0; i < std::size(kIndexCommands); ++i)
    if (vm.count(kIndexCommands[i].cmd + 5)) {
      if (key) return usage("tail", "give one index key", desc);
      key = &kIndexCommands[i];
      key_value = keys[i];
    }
  if (int(all) + int(!stream.empty()) + int(key != nullptr) + int(!query_items.empty()) != 1)
    return usage("tail", "give one of STREAM, --all, an index key or --query", desc);
  std::string query_error;
  auto query = parse_query(query_items, query_error);
  if (!query) return usage("tail", query_error, desc);
  if (!all && (!stream_prefix.empty() || !type_prefix.empty()))
    return usage("tail", "--stream-prefix and --type-prefix need --all", desc);
  proto::SubscribeReq req;
  req.target = key                     ? proto::Target::kIndex
               : !query->items.empty() ? proto::Target::kQuery
               : all                   ? proto::Target::kAll
                                       : proto::Target::kStream;
  req.query = std::move(*query);
  if (key) {
    req.index_kind = key->kind;
    req.index_value = key_value;
  }
  req.stream = stream;
  req.from_end = !vm.count("from");
  req.from = from;
  req.stream_prefix = stream_prefix;
  req.type_prefix = type_prefix;
  if (vm.count("from-time") && (vm.count("from") || !stream.empty()))
    return usage("tail", "--from-time needs --all, an index key or --query, and no --from", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (vm.count("from-time")) {
    int code = 0;
    auto pos = seek(*c.value(), from_time, code);
    if (!pos) return code;
    req.from_end = false;
    req.from = *pos;
  }
  auto sub = c.value()->subscribe(req);
  if (!sub.ok()) return fail(sub.error());
  std::uint64_t printed = 0;
  while (count == 0 || printed < count) {
    auto m = sub.value()->next(std::chrono::milliseconds(1000));
    if (!m) continue;
    using Kind = net::Subscription::Message::Kind;
    if (m->kind == Kind::kEnded) return fail(m->error);
    if (m->kind == Kind::kCheckpoint) {
      if (checkpoints) print_line(fmt::format("{{\"checkpoint\":{}}}", m->checkpoint));
      continue;
    }
    for (const auto& e : m->events) {
      if (count != 0 && printed >= count) break;
      print_line(event_json(e));
      ++printed;
    }
  }
  return 0;
}

int cmd_info(const std::vector<std::string>& args) {
  std::string server = kDefaultServer;
  po::options_description desc("usage: annal info [--server HOST:PORT]");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  po::variables_map vm;
  if (auto done = parse_command("info", args, desc, nullptr, vm)) return *done;
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->info();
  if (!r.ok()) return fail(r.error());
  const auto& i = r.value();
  std::string o = "{\"version\":";
  append_json_string(o, i.server_version);
  o += fmt::format(
      ",\"protocol_version\":{},\"durable_end\":{},\"segments\":{},\"limits\":{{\"max_stream_"
      "name\":{},"
      "\"max_event_type\":{},\"max_event_size\":{},\"max_append_size\":{},\"max_append_events\":{},"
      "\"max_tags\":{},\"max_tag_size\":{},\"max_correlation_id\":{},"
      "\"max_frame\":{},\"max_in_flight\":{},\"max_connections\":{}}},\"connections\":{},"
      "\"index\":{{\"memtable_entries\":{},\"files\":{},\"indexed_through\":{}}},"
      "\"groups\":{}}}",
      i.protocol_version, i.durable_end, i.segments, i.max_stream_name, i.max_event_type,
      i.max_event_size, i.max_append_size, i.max_append_events, i.max_tags, i.max_tag_size,
      i.max_correlation_id, i.max_frame, i.max_in_flight, i.max_connections, i.connections,
      i.index_memtable_entries, i.index_files, i.indexed_through, groups_json(*c.value()));
  print_line(o);
  return 0;
}

}  // namespace

int run_client_command(const std::vector<std::string>& args) {
  const std::string& cmd = args[0];
  if (cmd == "append") return cmd_append(args);
  if (cmd == "append-multi") return cmd_append_multi(args);
  if (cmd == "read") return cmd_read(args, false);
  if (cmd == "read-all") return cmd_read(args, true);
  if (const IndexCommand* key = index_command(cmd)) return cmd_read(args, false, key);
  if (cmd == "read-query") return cmd_read_query(args);
  if (cmd == "tail") return cmd_tail(args);
  if (cmd == "info") return cmd_info(args);
  if (cmd == "group") return cmd_group(args);
  if (cmd == "checkpoint") return cmd_checkpoint(args);
  if (cmd == "metadata") return cmd_metadata(args);
  if (cmd == "delete") return cmd_delete(args);
  if (cmd == "scavenge") return cmd_scavenge(args);
  if (cmd == "backup") return cmd_backup(args);
  if (cmd == "snapshot") return cmd_snapshot(args);
  std::fprintf(stderr, "annal: unknown client command '%s'\n", cmd.c_str());
  return 2;
}

}  // namespace annal::tools
