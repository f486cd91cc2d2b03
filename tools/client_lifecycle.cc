// `annal metadata STREAM [--set JSON]` and `annal delete STREAM [--hard]`:
// stream metadata and deletion (docs/semantics.md, "Metadata and deletion")
// from the command line, printing JSON lines.
#include <fmt/format.h>

#include <boost/program_options.hpp>

#include "tools/client_common.h"
#include "tools/client_json.h"
#include "tools/offline_json.h"

namespace po = boost::program_options;

namespace annal::tools {
namespace {

std::string optional_u64(std::uint64_t v) {
  return v == net::proto::kNone ? std::string("null") : std::to_string(v);
}

}  // namespace

int cmd_metadata(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, set, expected = "any";
  po::options_description desc(
      "usage: annal metadata STREAM [--set JSON [--expected E]]\n"
      "Prints a stream's metadata and deletion state; --set replaces its metadata (a JSON "
      "object: max_count, max_age in seconds, truncate_before, and your own keys)");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")(
      "set", po::value(&set), "the new metadata, a JSON object")(
      "expected", po::value(&expected)->default_value(expected),
      "expected revision of the metadata: any | no_stream | N (the revision printed)");
  po::variables_map vm;
  std::vector<std::string> items;
  if (auto done = parse_command("metadata", args, desc, nullptr, vm, &items)) return *done;
  if (items.size() != 1) return usage("metadata", "one STREAM", desc);
  auto exp = parse_expected(expected);
  if (!exp) return usage("metadata", "invalid --expected '" + expected + "'", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (vm.count("set")) {
    auto r = c.value()->set_stream_metadata(items[0], *exp, set);
    if (!r.ok()) return fail(r.error());
  }
  auto r = c.value()->stream_metadata(items[0]);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"stream\":";
  append_json_string(o, items[0]);
  o += fmt::format(
      ",\"revision\":{},\"metadata\":{},\"max_count\":{},\"max_age\":{},\"truncate_before\":{},"
      "\"deleted_before\":{},\"deleted\":{},\"tombstoned\":{}}}",
      optional_u64(r->revision), r->json, optional_u64(r->max_count), optional_u64(r->max_age),
      r->truncate_before, r->deleted_before, r->deleted, r->tombstoned);
  print_line(o);
  return 0;
}

int cmd_delete(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, expected = "any";
  bool hard = false;
  po::options_description desc(
      "usage: annal delete STREAM [--hard] [--expected E]\n"
      "Deletes a stream: it reads as not found at once, and appends continue its revisions; "
      "--hard leaves a tombstone instead: it can never be written again");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")(
      "hard", po::bool_switch(&hard), "tombstone the stream (irreversible)")(
      "expected", po::value(&expected)->default_value(expected),
      "expected revision of the stream: any | stream_exists | N");
  po::variables_map vm;
  std::vector<std::string> items;
  if (auto done = parse_command("delete", args, desc, nullptr, vm, &items)) return *done;
  if (items.size() != 1) return usage("delete", "one STREAM", desc);
  auto exp = parse_expected(expected);
  if (!exp) return usage("delete", "invalid --expected '" + expected + "'", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->delete_stream(items[0], *exp, hard);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"stream\":";
  append_json_string(o, items[0]);
  o += fmt::format(",\"deleted\":\"{}\",\"position\":{},\"truncate_before\":{}}}",
                   hard ? "hard" : "soft", r->position, r->truncate_before);
  print_line(o);
  return 0;
}

int cmd_snapshot(const std::vector<std::string>& args) {
  std::string server = kDefaultServer, type, data;
  std::uint64_t revision = 0, at = net::proto::kNone;
  std::uint32_t events = 0;
  po::options_description desc(
      "usage: annal snapshot save STREAM --revision N --type T --data JSON\n"
      "       annal snapshot read STREAM [--at N] [--events N]\n"
      "Saves a snapshot of a stream's state after revision N, or prints the newest one (at or "
      "below --at) and up to --events events after it");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")(
      "revision", po::value(&revision), "save: the revision the snapshot is of")(
      "type", po::value(&type), "save: the snapshot's type")("data", po::value(&data),
                                                             "save: the snapshot itself")(
      "at", po::value(&at), "read: the newest snapshot at or below this revision")(
      "events", po::value(&events)->default_value(events), "read: events after it to print");
  po::variables_map vm;
  std::vector<std::string> items;
  if (auto done = parse_command("snapshot", args, desc, nullptr, vm, &items)) return *done;
  if (items.size() != 2 || (items[0] != "save" && items[0] != "read"))
    return usage("snapshot", "save|read STREAM", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  if (items[0] == "save") {
    if (!vm.count("revision") || type.empty())
      return usage("snapshot", "save needs --revision and --type", desc);
    auto r = c.value()->snapshot_save(items[1], revision, type, data);
    if (!r.ok()) return fail(r.error());
    std::string o = "{\"stream\":";
    append_json_string(o, items[1]);
    print_line(o + fmt::format(",\"revision\":{},\"kept\":{}}}", r->revision, r->kept));
    return 0;
  }
  auto r = c.value()->snapshot_read(items[1], at, events);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"stream\":";
  append_json_string(o, items[1]);
  if (r->found) {
    o += fmt::format(",\"snapshot\":{{\"revision\":{},\"type\":", r->revision);
    append_json_string(o, r->type);
    o += ",\"data\":";
    append_json_string(o, r->data);
    o += "}";
  } else {
    o += ",\"snapshot\":null";
  }
  print_line(o + fmt::format(",\"next\":{},\"end\":{}}}", r->next, r->end));
  for (const auto& e : r->events) print_line(event_json(e));
  return 0;
}

int cmd_scavenge(const std::vector<std::string>& args) {
  std::string server = kDefaultServer;
  po::options_description desc(
      "usage: annal scavenge\n"
      "Runs a scavenge on the node (sealed segments rewritten without the events removed by "
      "stream metadata and deletion) and prints what it did when done");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT");
  po::variables_map vm;
  std::vector<std::string> items;
  if (auto done = parse_command("scavenge", args, desc, nullptr, vm, &items)) return *done;
  if (!items.empty()) return usage("scavenge", "no arguments", desc);
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->scavenge();
  if (!r.ok()) return fail(r.error());
  print_line(fmt::format(
      "{{\"segments_checked\":{},\"segments_rewritten\":{},\"events_removed\":{},"
      "\"bytes_read\":{},\"bytes_written\":{},\"log_bytes_before\":{},\"log_bytes_after\":{},"
      "\"seconds\":{:.3f},\"mb_per_s\":{:.1f},\"cancelled\":{}}}",
      r->segments_checked, r->segments_rewritten, r->events_removed, r->bytes_read,
      r->bytes_written, r->log_bytes_before, r->log_bytes_after, r->duration_us / 1e6,
      r->duration_us == 0 ? 0.0 : static_cast<double>(r->bytes_written) / r->duration_us,
      r->cancelled));
  return 0;
}

}  // namespace annal::tools
