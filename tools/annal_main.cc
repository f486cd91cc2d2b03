// `annal`: client commands against a running node, and offline tools for a
// data directory.
#include <cstdio>
#include <string>
#include <vector>

#include "tools/cli.h"

namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: annal <command> [options]\n"
      "\n"
      "client commands (talk to a running annald, --server HOST:PORT):\n"
      "  append STREAM --type T --data JSON   append one event [--tag K:V ...]\n"
      "       [--fail-if 'type=A,B tag=K:V' --after POS]   ... unless a matching event exists\n"
      "  append-multi JSON | -                 several streams at once, all or nothing\n"
      "  read STREAM                           read a stream\n"
      "  read-all                              read the global log\n"
      "  read-category C | read-type T | read-tag K:V | read-correlation ID | read-causation ID\n"
      "                                        read one index key's events, in log order\n"
      "  read-query 'type=A,B tag=K:V' [...]   events matching any item, in log order [--head]\n"
      "  tail STREAM | --all | --category C    follow a stream, the log or an index key\n"
      "       | --type T | --tag K:V | --correlation ID | --causation ID | --query ITEM\n"
      "  info                                  node version, positions, limits, groups' lag\n"
      "  group create NAME --all | --stream S | --category C | --type T | --tag T [settings]\n"
      "  group update|list|info|parked|delete|replay-parked NAME   consumer groups\n"
      "  group consume NAME [--count N]        join, print events as JSON lines, ack them\n"
      "  checkpoint NAME [POSITION]            a named consumer's stored checkpoint\n"
      "  metadata STREAM [--set JSON]          a stream's metadata (max_count, max_age, ...)\n"
      "  delete STREAM [--hard]                delete a stream (--hard: a tombstone)\n"
      "  scavenge                              free the space of removed events now\n"
      "  snapshot save|read STREAM ...         a stream's snapshots (read: and the events after)\n"
      "  backup DEST [--link] [--mb-per-s N]   a consistent backup taken by the node into DEST\n"
      "\n"
      "offline tools (on a data directory, no node needed):\n"
      "  inspect DIR      segments and index files at a glance\n"
      "  dump DIR         records as JSON lines\n"
      "  dump-index DIR   stream index files as JSON lines\n"
      "  verify DIR       check everything; exit 1 on damage\n"
      "  repair DIR       plan (and with --apply, perform) a repair\n"
      "  restore BACKUP DATA   check a backup against its MANIFEST and restore it into DATA\n"
      "\n"
      "  bench            load generator against a running node\n"
      "\n"
      "Run 'annal <command> --help' for a command's options.\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    usage(stderr);
    return 2;
  }
  const std::string& cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  if (cmd == "append" || cmd == "read" || cmd == "read-all" || cmd == "tail" || cmd == "info" ||
      cmd == "read-category" || cmd == "read-type" || cmd == "read-tag" ||
      cmd == "read-correlation" || cmd == "read-causation" || cmd == "read-query" ||
      cmd == "append-multi" || cmd == "group" || cmd == "checkpoint" || cmd == "metadata" ||
      cmd == "delete" || cmd == "scavenge" || cmd == "snapshot" || cmd == "backup")
    return annal::tools::run_client_command(args);
  if (cmd == "inspect" || cmd == "dump" || cmd == "dump-index" || cmd == "verify" ||
      cmd == "repair" || cmd == "restore")
    return annal::tools::run_offline_command(args);
  if (cmd == "bench") return annal::tools::run_bench_command(args);
  std::fprintf(stderr, "annal: unknown command '%s'\n", cmd.c_str());
  usage(stderr);
  return 2;
}
