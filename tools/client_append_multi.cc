// `annal append-multi JSON`: a multi-stream and/or conditional append
// (protocol 3, docs/semantics.md) described as one JSON document, because
// streams, their events and the condition nest:
//
//   {"streams": [{"stream": "account-1", "expected": "no_stream",
//                 "events": [{"type": "Debited", "data": {"amount": 5},
//                             "tags": ["transfer:9"], "id": "<uuid>"}]},
//                {"stream": "limits", "expected": 3}],
//    "fail_if": ["type=Debited tag=transfer:9"], "after": 120}
//
// `expected`: any (default) | no_stream | stream_exists | N; a stream without
// events is only checked. Event fields: type (required), data (JSON, default
// {}), metadata (JSON), tags, correlation_id, causation_id, id (default:
// random). `fail_if`: query items in the CLI's form (read-query). "-" reads
// the document from stdin.
#include <fmt/format.h>
#include <simdjson.h>

#include <iostream>
#include <iterator>

#include "engine/format.h"
#include "tools/cli.h"
#include "tools/client_common.h"
#include "tools/offline_json.h"

namespace po = boost::program_options;

namespace annal::tools {
namespace {

namespace proto = annal::net::proto;

// What is wrong with the document, or nothing; fills `req`.
std::optional<std::string> parse_document(simdjson::dom::element doc, proto::AppendMultiReq& req) {
  simdjson::dom::array streams;
  if (doc["streams"].get(streams)) return "\"streams\" must be an array";
  for (simdjson::dom::element s : streams) {
    index::StreamAppend a;
    std::string_view name;
    if (s["stream"].get(name)) return "every stream needs \"stream\" (a string)";
    a.stream = name;
    simdjson::dom::element exp;
    if (!s["expected"].get(exp)) {
      std::uint64_t n = 0;
      std::string_view text;
      std::optional<ExpectedRevision> e;
      if (!exp.get(n))
        e = ExpectedRevision::exact(n);
      else if (!exp.get(text))
        e = parse_expected(std::string(text));
      if (!e) return fmt::format("stream '{}': invalid \"expected\"", a.stream);
      a.expected = *e;
    }
    simdjson::dom::array events;
    if (!s["events"].get(events)) {
      for (simdjson::dom::element ev : events) {
        index::NewEvent e;
        std::string_view text;
        if (ev["type"].get(text))
          return fmt::format("stream '{}': an event needs \"type\"", a.stream);
        e.type = text;
        e.flags = engine::format::kFlagDataJson;
        simdjson::dom::element v;
        e.data = ev["data"].get(v) ? std::string("{}") : simdjson::minify(v);
        if (!ev["metadata"].get(v)) {
          e.metadata = simdjson::minify(v);
          e.flags |= engine::format::kFlagMetadataJson;
        }
        simdjson::dom::array tags;
        if (!ev["tags"].get(tags))
          for (simdjson::dom::element t : tags) {
            if (t.get(text)) return fmt::format("stream '{}': tags must be strings", a.stream);
            e.tags.emplace_back(text);
          }
        if (!ev["correlation_id"].get(text)) e.correlation_id = text;
        if (!ev["causation_id"].get(text)) e.causation_id = text;
        if (!ev["id"].get(text)) {
          auto id = EventId::parse(text);
          if (!id) return fmt::format("stream '{}': invalid event id '{}'", a.stream, text);
          e.id = *id;
        } else {
          e.id = EventId::random();
        }
        a.events.push_back(std::move(e));
      }
    }
    req.streams.push_back(std::move(a));
  }
  simdjson::dom::array fail_if;
  if (!doc["fail_if"].get(fail_if)) {
    std::vector<std::string> items;
    for (simdjson::dom::element i : fail_if) {
      std::string_view text;
      if (i.get(text)) return "\"fail_if\" must be an array of query items (strings)";
      items.emplace_back(text);
    }
    std::string error;
    auto q = parse_query(items, error);
    if (!q) return error;
    req.condition = std::move(*q);
  }
  std::uint64_t after = 0;
  if (!doc["after"].get(after)) {
    if (req.condition.items.empty()) return "\"after\" needs \"fail_if\"";
    req.after = after;
  }
  return std::nullopt;
}

}  // namespace

int cmd_append_multi(const std::vector<std::string>& args) {
  std::string server = kDefaultServer;
  std::vector<std::string> docs;
  po::options_description desc(
      "usage: annal append-multi JSON | -\n"
      "Appends to several streams at once, all or nothing, optionally on a condition; JSON:\n"
      "  {\"streams\": [{\"stream\": S, \"expected\": any|no_stream|stream_exists|N,\n"
      "                \"events\": [{\"type\": T, \"data\": {...}, \"tags\": [...]}]}, ...],\n"
      "   \"fail_if\": [\"type=A,B tag=K:V\", ...], \"after\": POS}\n"
      "(a stream without events is only checked; - reads the JSON from stdin)");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  po::variables_map vm;
  if (auto done = parse_command("append-multi", args, desc, nullptr, vm, &docs)) return *done;
  if (docs.size() != 1) return usage("append-multi", "give one JSON document (or -)", desc);
  std::string text = docs[0];
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), {});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(text).get(doc))
    return usage("append-multi", std::string("not JSON: ") + simdjson::error_message(err), desc);
  proto::AppendMultiReq req;
  if (auto bad = parse_document(doc, req)) return usage("append-multi", *bad, desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->append_multi(req);
  if (!r.ok()) return fail(r.error());
  if (r->refused) {
    const auto& f = *r->refused;
    std::string detail;
    for (std::size_t i = 0; i < f.streams.size() && i < req.streams.size(); ++i)
      if (f.streams[i].failed)
        detail += fmt::format(" [{}: actual {}]", req.streams[i].stream,
                              f.streams[i].actual_revision == proto::kNone
                                  ? std::string("no stream")
                                  : std::to_string(f.streams[i].actual_revision));
    return fail(proto::Error{f.code, f.conflict_position, f.message + detail});
  }
  std::string o =
      fmt::format("{{\"position\":{},\"count\":{},\"deduplicated\":{},\"streams\":[",
                  r->ok->first_position, r->ok->count, r->ok->deduplicated ? "true" : "false");
  for (std::size_t i = 0; i < r->ok->streams.size(); ++i) {
    const auto& s = r->ok->streams[i];
    o += i > 0 ? ",{\"stream\":" : "{\"stream\":";
    append_json_string(o, req.streams[i].stream);
    o += s.first_revision == proto::kNone
             ? fmt::format(",\"count\":0}}")
             : fmt::format(",\"revision\":{},\"count\":{}}}", s.first_revision, s.count);
  }
  print_line(o + "]}");
  return 0;
}

}  // namespace annal::tools
