// `annal backup DEST [--link] [--mb-per-s N]`: an online backup taken by the
// node into DEST, a path on the node's machine (docs/operations.md, "Backup
// and restore"); prints one JSON line when it is complete.
#include <fmt/format.h>

#include <boost/program_options.hpp>

#include "tools/client_common.h"
#include "tools/offline_json.h"

namespace po = boost::program_options;

namespace annal::tools {

int cmd_backup(const std::vector<std::string>& args) {
  std::string server = kDefaultServer;
  bool link = false;
  std::int64_t mb_per_s = -1;
  po::options_description desc(
      "usage: annal backup DEST [--link] [--mb-per-s N]\n"
      "Takes a consistent backup of the node's data directory into DEST while appends go on,\n"
      "and prints what it holds when done. DEST is an absolute path on the node's machine\n"
      "that must not exist (or be an empty directory), outside the data directory; it is\n"
      "written as DEST.partial and renamed when complete. Restore it with `annal restore`");
  desc.add_options()("help,h", "this help")("server", po::value(&server)->default_value(server),
                                            "node address HOST:PORT")(
      "link", po::bool_switch(&link),
      "hard-link sealed segments and index files instead of copying them (DEST on the data "
      "directory's file system; the backup then shares their disk blocks; copies if it cannot)")(
      "mb-per-s", po::value(&mb_per_s),
      "read budget in MiB/s (0 = as fast as the disk; default: the node's --backup-mb-per-s)");
  po::variables_map vm;
  std::vector<std::string> items;
  if (auto done = parse_command("backup", args, desc, nullptr, vm, &items)) return *done;
  if (items.size() != 1) return usage("backup", "one DEST", desc);
  if (vm.count("mb-per-s") && (mb_per_s < 0 || mb_per_s > (1 << 20)))
    return usage("backup", "--mb-per-s must be between 0 and 1048576", desc);
  const std::uint64_t bps = !vm.count("mb-per-s") ? 0
                            : mb_per_s == 0       ? net::proto::kNone
                                                  : static_cast<std::uint64_t>(mb_per_s) << 20;
  auto c = connect(server);
  if (!c.ok()) return fail(c.error());
  auto r = c.value()->backup(items[0], link, bps);
  if (!r.ok()) return fail(r.error());
  std::string o = "{\"dest\":";
  append_json_string(o, r->dest);
  o += fmt::format(
      ",\"position\":{},\"files\":{},\"bytes\":{},\"linked\":{},\"seconds\":{:.3f},"
      "\"mb_per_s\":{:.1f},\"note\":",
      r->position, r->files, r->bytes, r->linked, r->duration_us / 1e6,
      r->duration_us == 0 ? 0.0 : static_cast<double>(r->bytes) / r->duration_us);
  append_json_string(o, r->note);
  o += "}";
  print_line(o);
  return 0;
}

}  // namespace annal::tools
