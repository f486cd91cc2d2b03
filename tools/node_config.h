#pragma once
// annald's configuration: every option, from its command line and from an
// optional config file (`--config FILE`), validated into one NodeConfig.
// Format and keys: docs/operations.md ("Configuration"); flags:
// docs/node.md.
//
// The file holds `key = value` lines, `#` starts a comment, blank lines are
// ignored; every flag but --help, --version, --config and --check-config has
// a key, its name without the dashes. A flag on the command line overrides
// the same key in the file. Errors name the file, line, key and value.
//
// Thread safety: plain functions and values; parse_node_command touches no
// global state.

#include <spdlog/common.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "index/store.h"
#include "net/server.h"

namespace annal::tools {

enum class LogFormat { kText, kJson };

// Where an effective value came from.
enum class ConfigSource { kDefault, kFile, kCommandLine };

struct ConfigEntry {
  std::string key;    // the config key: the flag's name without "--"
  std::string value;  // as written in a config file ("" for an unset path)
  ConfigSource source = ConfigSource::kDefault;
};

struct NodeConfig {
  std::string data_dir = "./data";
  index::StoreOptions store;  // store.log.dir is left empty: main sets it to data_dir
  net::ServerOptions server;
  std::string port_file;  // empty: none
  spdlog::level::level_enum log_level = spdlog::level::info;
  LogFormat log_format = LogFormat::kText;
  // The HTTP admin endpoint: HOST:PORT (port 0 picks a free one), or "off".
  // When on, http_host/http_port hold it parsed.
  std::string http = "127.0.0.1:7412";
  std::string http_host = "127.0.0.1";
  std::uint16_t http_port = 7412;
  std::string http_port_file;  // empty: none
  bool metrics = true;         // --metrics on|off; also in store.log.metrics, server.metrics

  std::string config_file;  // the file read, empty if none
  // Every key with its effective value, in --help order.
  std::vector<ConfigEntry> effective;

  bool http_enabled() const { return http != "off"; }
};

struct NodeCommand {
  enum class Action {
    kRun,          // serve with `config`
    kCheckConfig,  // --check-config: print `config` (format_effective_config), exit 0
    kHelp,         // print `text` on stdout, exit 0
    kVersion,      // print `text` on stdout, exit 0
    kUsageError,   // print `text` (names the flag, or file:line and key) on stderr, exit 2
  };
  Action action = Action::kUsageError;
  NodeConfig config;
  std::string text;
};

// Parses argv (argv[0] ignored), reads the config file if one is named,
// validates everything. Never opens the data directory.
NodeCommand parse_node_command(int argc, const char* const argv[]);
NodeCommand parse_node_command(const std::vector<std::string>& args);  // without argv[0]

// The effective configuration as a config file: one `key = value` line per
// key, a comment saying where non-default values came from. Reading it back
// with --config gives the same configuration.
std::string format_effective_config(const NodeConfig& config);

// The same, packed into lines of `key=value` pairs (values with spaces or
// empty ones quoted) of about `width` characters, for the log at start.
std::vector<std::string> effective_config_log_lines(const NodeConfig& config,
                                                    std::size_t width = 160);

// "64M", "1G", "4096", "16k" -> bytes (binary units). nullopt if malformed
// or out of range.
std::optional<std::uint64_t> parse_size(const std::string& text);

}  // namespace annal::tools
