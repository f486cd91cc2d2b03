// `annal inspect | dump | dump-index | verify | repair`: the command-line
// front end of tools/offline.h. Exit status: 0 clean / success, 1 damage
// found or failure, 2 usage error (docs/operations.md).

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tools/cli.h"
#include "tools/offline.h"
#include "tools/offline_json.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace {

struct Command {
  const char* name;
  const char* usage;
  std::vector<std::pair<std::string, bool>> options;  // name, takes a value
  std::size_t positionals = 1;                        // DIR (restore: BACKUP DATA)
};

const Command kCommands[] = {
    {"inspect",
     "usage: annal inspect DIR [--json]\n"
     "One line per segment (positions, events, timestamps, bytes used and\n"
     "allocated, sealed or active, position index state) and a summary.\n"
     "  --json   one JSON object instead of the table\n"
     "Exit: 0 read, 1 the directory cannot be read, 2 usage error.\n",
     {{"json", false}}},
    {"dump",
     "usage: annal dump DIR [--from POS] [--count N] [--stream NAME] [--segment FILE] [--data]\n"
     "Records as JSON lines, in position order. Damaged spans appear as\n"
     "{\"damaged\":true,...} lines.\n"
     "  --from POS       start at global position POS\n"
     "  --count N        at most N records\n"
     "  --stream NAME    only records of stream NAME\n"
     "  --segment FILE   only this segment file (e.g. 00000000000000000000.seg)\n"
     "  --data           include payloads: JSON embedded as JSON, others base64\n"
     "Exit: 0 all records valid, 1 damage seen or failure, 2 usage error.\n",
     {{"from", true}, {"count", true}, {"stream", true}, {"segment", true}, {"data", false}}},
    {"dump-index",
     "usage: annal dump-index DIR\n"
     "The stream index (DIR/index) as JSON lines: the manifest, each index file,\n"
     "and every entry (stream hash, revision, position).\n"
     "Exit: 0 read, 1 missing or damaged, 2 usage error.\n",
     {}},
    {"verify",
     "usage: annal verify DIR [--json]\n"
     "Checks every record's checksum, position continuity across segments,\n"
     "segment headers, position indexes (.idx) and the stream index against\n"
     "the log. One finding per line: kind, file, offset, positions affected.\n"
     "Progress on stderr when it is a terminal; a final throughput figure.\n"
     "  --json   one JSON report object\n"
     "Exit: 0 clean, 1 damage found or failure, 2 usage error.\n",
     {{"json", false}}},
    {"repair",
     "usage: annal repair DIR [--apply]\n"
     "Prints a repair plan; with --apply performs it: every changed byte is first\n"
     "copied to DIR/repair-backup-<time>/, torn tails are cut, damaged spans in\n"
     "the middle of the log become lost markers (positions stay dense, intact\n"
     "records stay in place), position indexes are rebuilt, a damaged stream\n"
     "index is moved aside for the node to rebuild. Refuses while a node holds\n"
     "the directory. Running it again changes nothing.\n"
     "  --apply  perform the plan (default: dry run)\n"
     "Exit: 0 nothing to repair or repaired clean, 1 damage found (dry run),\n"
     "damage left, directory locked or failure, 2 usage error.\n",
     {{"apply", false}}},
    {"restore",
     "usage: annal restore BACKUP DATA [--link]\n"
     "Restores a backup taken by `annal backup` into DATA, which must not exist or\n"
     "be an empty directory. Every file is checked against the backup's MANIFEST\n"
     "(size and XXH3-64 checksum) as it is copied: a missing or damaged file stops\n"
     "the restore naming it, and nothing is left in DATA. Files are synced, then\n"
     "moved into place; a node refuses DATA until the restore has finished.\n"
     "  --link   hard-link the backup's files instead of copying them (same file\n"
     "           system; the newest segment, which the node writes into, is copied)\n"
     "Exit: 0 restored, 1 damaged backup or failure, 2 usage error.\n",
     {{"link", false}},
     2},
};

struct Parsed {
  std::string dir;
  std::string dir2;  // restore: DATA
  std::map<std::string, std::string> opts;
  bool has(const std::string& k) const { return opts.count(k) > 0; }
};

// Returns nullopt after printing a usage error.
std::optional<Parsed> parse(const Command& cmd, const std::vector<std::string>& args, bool& help) {
  Parsed p;
  help = false;
  std::vector<std::string> positional;
  auto fail = [&](const std::string& msg) -> std::optional<Parsed> {
    std::fprintf(stderr, "annal %s: %s\n%s", cmd.name, msg.c_str(), cmd.usage);
    return std::nullopt;
  };
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help = true;
      return p;
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      const std::pair<std::string, bool>* spec = nullptr;
      for (const auto& o : cmd.options)
        if (o.first == name) spec = &o;
      if (!spec) return fail("unknown option --" + name);
      if (spec->second && !inline_value) {
        if (i + 1 >= args.size()) return fail("--" + name + " needs a value");
        value = args[++i];
      } else if (!spec->second && inline_value) {
        return fail("--" + name + " takes no value");
      }
      if (p.opts.count(name)) return fail("--" + name + " given twice");
      p.opts[name] = value;
      continue;
    }
    positional.push_back(a);
  }
  if (cmd.positionals == 2) {
    if (positional.size() != 2) return fail("expected BACKUP and DATA");
    p.dir2 = positional[1];
  } else if (positional.size() != 1) {
    return fail(positional.empty() ? "missing DIR" : "expected one DIR");
  }
  p.dir = positional[0];
  return p;
}

std::optional<std::uint64_t> parse_u64(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

void print(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

int fail_status(const char* cmd, const Status& st) {
  std::fflush(stdout);
  std::fprintf(stderr, "annal %s: %s\n", cmd, st.to_string().c_str());
  return 1;
}

int run_verify(const Parsed& p) {
  VerifyOptions vo;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  if (tty) {
    vo.on_progress = [&](std::uint64_t done, std::uint64_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(200) && done < total) return;
      last = now;
      const double secs = std::chrono::duration<double>(now - t0).count();
      const double mib = static_cast<double>(done) / (1 << 20);
      const double pct =
          total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
      const int bar = static_cast<int>(pct / 5);
      std::fprintf(stderr, "\r[%-20.*s] %5.1f%% %9.1f / %.1f MiB %8.1f MiB/s", bar,
                   "####################", pct, mib, static_cast<double>(total) / (1 << 20),
                   secs > 0 ? mib / secs : 0.0);
      std::fflush(stderr);
    };
  }
  auto report = verify_directory(p.dir, vo);
  if (tty) std::fprintf(stderr, "\r%79s\r", "");
  if (!report) return fail_status("verify", report.status());
  const auto& d = report->survey;
  const std::string summary = fmt::format(
      "verify {}: {} finding(s); {} segment(s), {} positions ({} lost at repair), {} index "
      "entries, {} secondary index entries; {:.1f} MiB in "
      "{:.3f} s = {:.1f} MiB/s",
      p.dir, d.findings.size(), d.segments.size(), d.end.value, d.lost_markers,
      report->index_entries, report->secondary_entries,
      static_cast<double>(d.bytes_scanned) / (1 << 20), report->seconds, report->mib_per_second());
  if (p.has("json")) {
    std::string arr = "[";
    for (std::size_t i = 0; i < d.findings.size(); ++i) {
      if (i) arr += ",";
      arr += finding_json(d.findings[i]);
    }
    arr += "]";
    print(JsonObject()
              .str("dir", p.dir)
              .boolean("clean", report->clean())
              .raw("findings", arr)
              .num("segments", static_cast<std::uint64_t>(d.segments.size()))
              .num("positions", d.end.value)
              .num("records", d.records)
              .num("lost_markers", d.lost_markers)
              .num("index_entries", report->index_entries)
              .num("secondary_index_entries", report->secondary_entries)
              .num("indexed_through", report->indexed_through)
              .num("bytes", d.bytes_scanned)
              .num("seconds", report->seconds)
              .num("mib_per_s", report->mib_per_second())
              .done());
    std::fprintf(stderr, "%s\n", summary.c_str());
  } else {
    for (const auto& fd : d.findings) print(finding_text(fd));
    print(summary);
  }
  return report->clean() ? 0 : 1;
}

int run_repair(const Parsed& p) {
  RepairOptions ro;
  ro.apply = p.has("apply");
  ro.out = [](const std::string& line) {
    print(line);
    std::fflush(stdout);
  };
  auto r = repair_directory(p.dir, ro);
  if (!r) return fail_status("repair", r.status());
  if (!r->plan.unrepairable.empty()) return 1;
  if (!ro.apply) return r->plan.empty() ? 0 : 1;
  return r->clean_after ? 0 : 1;
}

int run_dump(const Parsed& p) {
  DumpOptions o;
  if (p.has("from")) {
    auto v = parse_u64(p.opts.at("from"));
    if (!v) {
      std::fprintf(stderr, "annal dump: --from needs a position (a non-negative integer)\n");
      return 2;
    }
    o.from = *v;
  }
  if (p.has("count")) {
    auto v = parse_u64(p.opts.at("count"));
    if (!v) {
      std::fprintf(stderr, "annal dump: --count needs a non-negative integer\n");
      return 2;
    }
    o.count = *v;
  }
  if (p.has("stream")) o.stream = p.opts.at("stream");
  if (p.has("segment")) o.segment = p.opts.at("segment");
  o.data = p.has("data");
  std::uint64_t damaged = 0;
  Status st = dump_directory(p.dir, o, print, &damaged);
  if (!st) return fail_status("dump", st);
  return damaged == 0 ? 0 : 1;
}

int run_restore(const Parsed& p) {
  RestoreOptions o;
  o.link = p.has("link");
  o.out = [](const std::string& line) {
    print(line);
    std::fflush(stdout);
  };
  auto r = restore_backup(p.dir, p.dir2, o);
  if (!r) return fail_status("restore", r.status());
  print(fmt::format(
      "restored {} into {}: position {} (every event below it), {} files, {} bytes ({} linked) "
      "in {:.3f} s; the node rebuilds what the backup left out at its first start",
      p.dir, p.dir2, r->position, r->files, r->bytes, r->linked, r->seconds));
  return 0;
}

}  // namespace

int run_offline_command(const std::vector<std::string>& args) {
  const Command* cmd = nullptr;
  for (const auto& c : kCommands)
    if (!args.empty() && args[0] == c.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "annal: unknown offline command\n");
    return 2;
  }
  bool help = false;
  auto p = parse(*cmd, args, help);
  if (help) {
    std::fputs(cmd->usage, stdout);
    return 0;
  }
  if (!p) return 2;
  const std::string name = cmd->name;
  if (name == "verify") return run_verify(*p);
  if (name == "repair") return run_repair(*p);
  if (name == "dump") return run_dump(*p);
  if (name == "restore") return run_restore(*p);
  if (name == "inspect") {
    Status st = inspect_directory(p->dir, InspectOptions{.json = p->has("json")}, print);
    return st ? 0 : fail_status("inspect", st);
  }
  if (name == "dump-index") {
    Status st = dump_index(p->dir, print);
    return st ? 0 : fail_status("dump-index", st);
  }
  return 2;
}

}  // namespace annal::tools
