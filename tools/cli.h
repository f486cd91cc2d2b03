#pragma once
// Subcommand entry points of the `annal` tool. Each returns the process exit
// status: 0 success, 1 failure/damage found, 2 usage error.
// args[0] is the subcommand name.

#include <string>
#include <vector>

namespace annal::tools {

// append, append-multi, read, read-all, read-query, tail, info (tools/client_*.cc)
int run_client_command(const std::vector<std::string>& args);
// inspect, dump, dump-index, verify, repair (tools/offline_cli.cc)
int run_offline_command(const std::vector<std::string>& args);
// bench (bench/load/bench_cli.cc)
int run_bench_command(const std::vector<std::string>& args);

}  // namespace annal::tools
