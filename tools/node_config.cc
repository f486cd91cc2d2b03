#include "tools/node_config.h"

#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "net/client.h"

#ifndef ANNAL_VERSION
#define ANNAL_VERSION "unknown"
#endif

namespace annal::tools {

namespace po = boost::program_options;

std::optional<std::uint64_t> parse_size(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string suffix = s.substr(i);
  std::uint64_t mult = 1;
  if (suffix.empty() || suffix == "B" || suffix == "b")
    mult = 1;
  else if (suffix == "K" || suffix == "k" || suffix == "KiB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    mult = 1ull << 30;
  else
    return std::nullopt;
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

namespace {

// Options that exist only on the command line: no config key.
const std::set<std::string> kCommandLineOnly = {"help", "version", "config", "check-config"};

const char* const kUsage =
    "annald: the annal event-store node\n\n"
    "usage: annald [--config FILE] [--data DIR] [--listen HOST:PORT] [options]\n"
    "       annald --check-config FILE [options]\n\n"
    "Every option but --help, --version, --config and --check-config can also be\n"
    "set in the config file as 'key = value' (the option's name without the\n"
    "dashes; '#' starts a comment); the command line overrides the file.\n"
    "Sizes accept a K, M or G suffix (binary units). Options";

const char* const kHelpTail =
    "Stops gracefully on SIGINT/SIGTERM: stops accepting, answers what is in flight,\n"
    "flushes and closes the data directory, exits 0. Tells systemd (NOTIFY_SOCKET)\n"
    "READY=1 once it serves and STOPPING=1 when it stops. Exit status: 0 clean stop,\n"
    "1 cannot start, 2 bad options or config file, 3 the data directory could not be\n"
    "closed in time.\n";

// The options as given, before validation. Numbers without units bind
// straight into `c`; everything validated later is kept as text.
struct RawOptions {
  NodeConfig c;
  const index::Limits dl;
  std::string listen = "127.0.0.1:7411";
  std::string secondary_index = "on", category_separator = "-";
  std::string log_level = "info", log_format = "text", metrics = "on";
  std::string segment_size = std::to_string(c.store.log.segment_size >> 20) + "M";
  std::string min_free = std::to_string(c.store.log.min_free_bytes >> 20) + "M";
  std::string max_event_size = std::to_string(dl.max_event_size >> 20) + "M";
  std::string max_append_size = std::to_string(dl.max_append_size >> 20) + "M";
  std::string max_frame = std::to_string(c.server.max_frame >> 20) + "M";
  std::uint64_t idle_timeout_ms = static_cast<std::uint64_t>(c.server.idle_timeout.count());
  std::uint64_t shutdown_grace_ms = static_cast<std::uint64_t>(c.server.shutdown_grace.count());
  std::uint64_t keepalive_idle_s = static_cast<std::uint64_t>(c.server.keepalive_idle.count());
  std::uint64_t keepalive_interval_s =
      static_cast<std::uint64_t>(c.server.keepalive_interval.count());
  std::uint64_t group_persist_ms =
      static_cast<std::uint64_t>(c.server.group_persist_period.count());
  std::uint64_t scavenge_mb_per_s = 64, scavenge_interval_s = 86400, scavenge_free_below_mb = 1024;
  std::uint64_t backup_mb_per_s = 128;
  std::string config, check_config;
};

void describe(po::options_description& desc, RawOptions& r) {
  auto& so = r.c.store;
  auto& no = r.c.server;
  const auto& dl = r.dl;
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("version", "print the version and exit")
    ("config", po::value(&r.config),
     "read options from this file ('key = value' lines); flags given here override it")
    ("check-config", po::value(&r.check_config),
     "read this config file and the other flags, print the effective configuration and "
     "exit: 0 if valid, 2 if not; never opens the data directory")
    ("data", po::value(&r.c.data_dir)->default_value(r.c.data_dir),
     "data directory (created if missing); one node per directory (DIR/LOCK)")
    ("listen", po::value(&r.listen)->default_value(r.listen),
     "address to listen on, HOST:PORT; port 0 picks a free port (see --port-file)")
    ("port-file", po::value(&r.c.port_file),
     "after listening, write the bound port number to this file (for scripts and tests)")
    ("http", po::value(&r.c.http)->default_value(r.c.http),
     "admin endpoint (metrics, health, JSON API, web console), HOST:PORT or 'off'; "
     "port 0 picks a free port (see --http-port-file); no authentication: keep it on loopback")
    ("http-port-file", po::value(&r.c.http_port_file),
     "after listening, write the admin endpoint's port number to this file")
    ("metrics", po::value(&r.metrics)->default_value(r.metrics),
     "on | off: count requests, latencies and commits for /metrics (off: nothing is counted)")
    ("segment-size", po::value(&r.segment_size)->default_value(r.segment_size),
     "size of each preallocated log segment file")
    ("min-free", po::value(&r.min_free)->default_value(r.min_free),
     "free-space floor: appends are refused with no_space while the file system has less")
    ("max-stream-name", po::value(&so.limits.max_stream_name)->default_value(dl.max_stream_name),
     "longest stream name, bytes")
    ("max-event-type", po::value(&so.limits.max_event_type)->default_value(dl.max_event_type),
     "longest event type, bytes")
    ("max-event-size", po::value(&r.max_event_size)->default_value(r.max_event_size),
     "largest event (metadata + data)")
    ("max-append-size", po::value(&r.max_append_size)->default_value(r.max_append_size),
     "largest append (all its events, encoded)")
    ("max-append-events", po::value(&so.limits.max_append_events)->default_value(dl.max_append_events),
     "most events in one append")
    ("max-tags", po::value(&so.limits.max_tags)->default_value(dl.max_tags),
     "most tags on one event (at most 65535)")
    ("max-tag-size", po::value(&so.limits.max_tag_size)->default_value(dl.max_tag_size),
     "longest tag, bytes (at most 65535)")
    ("max-correlation-id", po::value(&so.limits.max_correlation_id)->default_value(dl.max_correlation_id),
     "longest correlation or causation id, bytes (at most 65535)")
    ("write-when-idle", po::bool_switch(&so.log.write_when_idle),
     "an append that finds the log idle is written and synced by its network thread, "
     "not handed to the writer thread: lower latency for a lone writer, but a disk that "
     "hangs in fdatasync then also stalls that thread's connections and a bounded stop "
     "(config key: write-when-idle = on|off)")
    ("secondary-index", po::value(&r.secondary_index)->default_value(r.secondary_index),
     "on | off: keep the index of categories, event types, tags and correlation/causation ids "
     "(DATA/secondary) that read-category, read-type, read-tag, ... and their subscriptions use")
    ("category-separator", po::value(&r.category_separator)->default_value(r.category_separator),
     "one character: a stream's category is its name up to the first one (order-17 -> order); "
     "changing it rebuilds the secondary index at start")
    ("memtable-entries", po::value(&so.memtable_entries)->default_value(so.memtable_entries),
     "stream-index entries kept in memory before they are written to an index file")
    ("idempotency-window", po::value(&so.idempotency_window)->default_value(so.idempotency_window),
     "how many recent event ids are remembered for idempotent retries (survives restarts)")
    ("threads", po::value(&no.threads)->default_value(0),
     "network I/O threads; 0 = one per hardware thread")
    ("read-threads", po::value(&no.read_threads)->default_value(no.read_threads),
     "threads reading the log for read requests and subscription catch-up")
    ("max-connections", po::value(&no.max_connections)->default_value(no.max_connections),
     "connections served at once; more are refused with too_many_connections")
    ("max-in-flight", po::value(&no.max_in_flight)->default_value(no.max_in_flight),
     "requests in flight per connection; more get too_many_requests")
    ("max-subscriptions", po::value(&no.max_subscriptions)->default_value(no.max_subscriptions),
     "subscriptions per connection")
    ("max-frame", po::value(&r.max_frame)->default_value(r.max_frame),
     "largest frame accepted; larger ones get frame_too_large and the connection is closed")
    ("idle-timeout-ms", po::value(&r.idle_timeout_ms)->default_value(r.idle_timeout_ms),
     "close connections with no request, nothing in flight and no subscription for this long; 0 = never")
    ("shutdown-grace-ms", po::value(&r.shutdown_grace_ms)->default_value(r.shutdown_grace_ms),
     "on SIGTERM, wait this long for appends in flight; those still waiting are answered "
     "shutting_down (outcome unknown), and closing the data directory gets as long again")
    ("keepalive-idle-s", po::value(&r.keepalive_idle_s)->default_value(r.keepalive_idle_s),
     "TCP keepalive: first probe after this many idle seconds; finds vanished peers; 0 = off")
    ("keepalive-interval-s", po::value(&r.keepalive_interval_s)->default_value(r.keepalive_interval_s),
     "TCP keepalive: seconds between probes")
    ("keepalive-probes", po::value(&no.keepalive_probes)->default_value(no.keepalive_probes),
     "TCP keepalive: unanswered probes before the connection is dropped")
    ("group-persist-ms", po::value(&r.group_persist_ms)->default_value(r.group_persist_ms),
     "how often a consumer group's changed progress is written to DATA/groups: after a "
     "crash, events acked within this long before it may be delivered again")
    ("scavenge-mb-per-s", po::value(&r.scavenge_mb_per_s)->default_value(r.scavenge_mb_per_s),
     "scavenge write budget in MiB/s (0 = as fast as the disk)")
    ("scavenge-interval-s", po::value(&r.scavenge_interval_s)->default_value(r.scavenge_interval_s),
     "scavenge every this many seconds (0 = never on a schedule)")
    ("scavenge-free-below-mb",
     po::value(&r.scavenge_free_below_mb)->default_value(r.scavenge_free_below_mb),
     "scavenge (at most every 10 minutes) while the data directory's file system has less "
     "free space than this (MiB; 0 = never)")
    ("backup-mb-per-s", po::value(&r.backup_mb_per_s)->default_value(r.backup_mb_per_s),
     "read budget of a backup request that names none, MiB/s (0 = as fast as the disk)")
    ("log-level", po::value(&r.log_level)->default_value(r.log_level),
     "trace, debug, info, warn, error")
    ("log-format", po::value(&r.log_format)->default_value(r.log_format),
     "text | json: one line per message on stderr; json lines carry the same fields "
     "(time, level, logger, message)");
  // clang-format on
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

struct FileEntry {
  int line = 0;
  std::string key, value;
};

// Reads `path` into entries; every line checked (syntax, known key, given
// once). Values are checked by the caller. Returns an error message or "".
std::string read_config_file(const std::string& path, const po::options_description& desc,
                             std::vector<FileEntry>* out) {
  std::ifstream f(path);
  if (!f) return fmt::format("cannot read config file {}: {}", path, std::strerror(errno));
  std::map<std::string, int> seen;
  std::string text;
  for (int n = 1; std::getline(f, text); ++n) {
    if (n == 1 && text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // UTF-8 BOM
    std::string_view line(text);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    if (trim(line).empty()) continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return fmt::format("{}:{}: expected 'key = value', got '{}'", path, n, trim(text));
    FileEntry e{n, trim(line.substr(0, eq)), trim(line.substr(eq + 1))};
    if (e.key.empty()) return fmt::format("{}:{}: no key before '='", path, n);
    if (kCommandLineOnly.count(e.key))
      return fmt::format("{}:{}: '{}' can only be given on the command line", path, n, e.key);
    if (!desc.find_nothrow(e.key, false))
      return fmt::format("{}:{}: unknown key '{}' (annald --help lists the keys, without '--')",
                         path, n, e.key);
    if (auto [it, fresh] = seen.emplace(e.key, n); !fresh)
      return fmt::format("{}:{}: key '{}' given twice (also on line {})", path, n, e.key,
                         it->second);
    out->push_back(std::move(e));
  }
  if (f.bad()) return fmt::format("cannot read config file {}: {}", path, std::strerror(errno));
  return "";
}

po::option file_option(const FileEntry& e) {
  po::option o;
  o.string_key = e.key;
  o.value.push_back(e.value);
  o.original_tokens = {e.key, e.value};
  return o;
}

// Each value parsed on its own (into a scratch map), so an error names its line.
std::string check_file_values(const std::string& path, const po::options_description& desc,
                              const std::vector<FileEntry>& entries) {
  po::variables_map scratch;
  for (const auto& e : entries) {
    po::parsed_options one(&desc);
    one.options.push_back(file_option(e));
    try {
      po::store(one, scratch);
    } catch (const std::exception& ex) {
      return fmt::format("{}:{}: key '{}': invalid value '{}' ({})", path, e.line, e.key, e.value,
                         ex.what());
    }
  }
  return "";
}

std::string any_text(const boost::any& a) {
  if (a.empty()) return "";
  if (auto* s = boost::any_cast<std::string>(&a)) return *s;
  if (auto* b = boost::any_cast<bool>(&a)) return *b ? "on" : "off";
  if (auto* v = boost::any_cast<unsigned long>(&a)) return std::to_string(*v);
  if (auto* v = boost::any_cast<unsigned long long>(&a)) return std::to_string(*v);
  if (auto* v = boost::any_cast<unsigned int>(&a)) return std::to_string(*v);
  if (auto* v = boost::any_cast<int>(&a)) return std::to_string(*v);
  return "?";  // a type added to describe() without a case here: node_config_test catches it
}

// Semantic checks once every value is in `r`. `flag(key)` names the option
// where it was set ("--key", or "FILE:LINE: key"). Returns an error or "".
template <class Flag>
std::string validate(RawOptions& r, const Flag& flag) {
  auto& c = r.c;
  c.log_level = spdlog::level::from_str(r.log_level);
  if (c.log_level == spdlog::level::off && r.log_level != "off")
    return fmt::format("{}: unknown log level '{}' (trace, debug, info, warn, error)",
                       flag("log-level"), r.log_level);
  if (r.log_format != "text" && r.log_format != "json")
    return fmt::format("{} must be text or json, got '{}'", flag("log-format"), r.log_format);
  c.log_format = r.log_format == "json" ? LogFormat::kJson : LogFormat::kText;
  for (auto [key, text, out] :
       {std::tuple{"segment-size", r.segment_size, &c.store.log.segment_size},
        std::tuple{"min-free", r.min_free, &c.store.log.min_free_bytes}}) {
    auto v = parse_size(text);
    if (!v) return fmt::format("{}: cannot parse size '{}'", flag(key), text);
    *out = *v;
  }
  for (auto [key, text, out] :
       {std::tuple{"max-event-size", r.max_event_size, &c.store.limits.max_event_size},
        std::tuple{"max-append-size", r.max_append_size, &c.store.limits.max_append_size}}) {
    auto v = parse_size(text);
    if (!v) return fmt::format("{}: cannot parse size '{}'", flag(key), text);
    *out = static_cast<std::size_t>(*v);
  }
  {
    auto v = parse_size(r.max_frame);
    if (!v || *v < 64 || *v > UINT32_MAX)
      return fmt::format("{}: invalid size '{}'", flag("max-frame"), r.max_frame);
    c.server.max_frame = static_cast<std::uint32_t>(*v);
  }
  if (r.secondary_index != "on" && r.secondary_index != "off")
    return fmt::format("{} must be on or off, got '{}'", flag("secondary-index"),
                       r.secondary_index);
  c.store.secondary_index = r.secondary_index == "on";
  if (r.category_separator.size() != 1)
    return fmt::format("{} must be one character, got '{}'", flag("category-separator"),
                       r.category_separator);
  c.store.category_separator = r.category_separator[0];
  if (c.data_dir.empty()) return fmt::format("{} must not be empty", flag("data"));
  auto hp = net::parse_host_port(r.listen);
  if (!hp) return fmt::format("{} must be HOST:PORT, got '{}'", flag("listen"), r.listen);
  c.server.host = hp->first;
  c.server.port = hp->second;
  if (c.http != "off") {
    auto http = net::parse_host_port(c.http);
    if (!http) return fmt::format("{} must be HOST:PORT or off, got '{}'", flag("http"), c.http);
    c.http_host = http->first;
    c.http_port = http->second;
  } else {
    c.http_host.clear();
    c.http_port = 0;
  }
  if (r.metrics != "on" && r.metrics != "off")
    return fmt::format("{} must be on or off, got '{}'", flag("metrics"), r.metrics);
  c.metrics = r.metrics == "on";
  c.store.log.metrics = c.server.metrics = c.metrics;
  c.server.idle_timeout = std::chrono::milliseconds(r.idle_timeout_ms);
  c.server.shutdown_grace = std::chrono::milliseconds(r.shutdown_grace_ms);
  if (r.keepalive_idle_s > 86400)
    return fmt::format("{} must be at most 86400", flag("keepalive-idle-s"));
  if (r.keepalive_interval_s < 1 || r.keepalive_interval_s > 3600)
    return fmt::format("{} must be between 1 and 3600", flag("keepalive-interval-s"));
  if (c.server.keepalive_probes < 1 || c.server.keepalive_probes > 100)
    return fmt::format("{} must be between 1 and 100", flag("keepalive-probes"));
  c.server.keepalive_idle = std::chrono::seconds(r.keepalive_idle_s);
  c.server.keepalive_interval = std::chrono::seconds(r.keepalive_interval_s);
  if (r.group_persist_ms < 1 || r.group_persist_ms > 60'000)
    return fmt::format("{} must be between 1 and 60000", flag("group-persist-ms"));
  c.server.group_persist_period = std::chrono::milliseconds(r.group_persist_ms);
  if (r.scavenge_mb_per_s > (1u << 20))
    return fmt::format("{} must be at most 1048576", flag("scavenge-mb-per-s"));
  if (r.scavenge_interval_s > 365ull * 86400)
    return fmt::format("{} must be at most a year (31536000)", flag("scavenge-interval-s"));
  if (r.scavenge_free_below_mb > (1ull << 30))
    return fmt::format("{} must be at most 2^30", flag("scavenge-free-below-mb"));
  c.server.scavenge_bytes_per_second = r.scavenge_mb_per_s << 20;
  c.server.scavenge_interval = std::chrono::seconds(r.scavenge_interval_s);
  c.server.scavenge_free_below = r.scavenge_free_below_mb << 20;
  if (r.backup_mb_per_s > (1u << 20))
    return fmt::format("{} must be at most 1048576", flag("backup-mb-per-s"));
  c.server.backup_bytes_per_second = r.backup_mb_per_s << 20;
  if (c.server.max_in_flight == 0)
    return fmt::format("{} must be at least 1", flag("max-in-flight"));
  if (c.server.max_connections == 0)
    return fmt::format("{} must be at least 1", flag("max-connections"));
  return "";
}

NodeCommand usage_error(std::string text) {
  NodeCommand cmd;
  cmd.action = NodeCommand::Action::kUsageError;
  cmd.text = std::move(text);
  return cmd;
}

}  // namespace

NodeCommand parse_node_command(const std::vector<std::string>& args) {
  RawOptions r;
  po::options_description desc(kUsage);
  describe(desc, r);

  po::parsed_options cmdline(&desc);
  try {
    cmdline = po::command_line_parser(args).options(desc).run();
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }
  std::set<std::string> from_cmdline;
  for (const auto& o : cmdline.options) from_cmdline.insert(o.string_key);
  if (from_cmdline.count("help")) {
    std::ostringstream help;
    help << desc << "\n" << kHelpTail;
    NodeCommand cmd;
    cmd.action = NodeCommand::Action::kHelp;
    cmd.text = help.str();
    return cmd;
  }
  if (from_cmdline.count("version")) {
    NodeCommand cmd;
    cmd.action = NodeCommand::Action::kVersion;
    cmd.text = std::string("annald ") + ANNAL_VERSION + "\n";
    return cmd;
  }

  po::variables_map vm;
  try {
    po::store(cmdline, vm);
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }
  const bool check = vm.count("check-config") > 0;
  if (check && vm.count("config")) return usage_error("give --config or --check-config, not both");
  const std::string path = check                ? vm["check-config"].as<std::string>()
                           : vm.count("config") ? vm["config"].as<std::string>()
                                                : "";
  if ((check || vm.count("config")) && path.empty())
    return usage_error(fmt::format("--{} needs a file name", check ? "check-config" : "config"));

  std::vector<FileEntry> entries;
  std::map<std::string, int> file_line;
  if (!path.empty()) {
    if (auto err = read_config_file(path, desc, &entries); !err.empty()) return usage_error(err);
    if (auto err = check_file_values(path, desc, entries); !err.empty()) return usage_error(err);
    po::parsed_options file(&desc);
    for (const auto& e : entries) {
      file.options.push_back(file_option(e));
      file_line[e.key] = e.line;
    }
    // The command line was stored first: its values are final, the file's
    // values for the same keys are skipped.
    try {
      po::store(file, vm);
    } catch (const std::exception& e) {
      return usage_error(fmt::format("{}: {}", path, e.what()));
    }
  }
  try {
    po::notify(vm);
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }

  const auto flag = [&](const std::string& key) {
    auto it = file_line.find(key);
    if (from_cmdline.count(key) || it == file_line.end()) return "--" + key;
    return fmt::format("{}:{}: {}", path, it->second, key);
  };
  if (auto err = validate(r, flag); !err.empty()) return usage_error(err);

  NodeCommand cmd;
  cmd.action = check ? NodeCommand::Action::kCheckConfig : NodeCommand::Action::kRun;
  cmd.config = std::move(r.c);
  cmd.config.config_file = path;
  for (const auto& d : desc.options()) {
    const std::string& key = d->long_name();
    if (kCommandLineOnly.count(key)) continue;
    ConfigEntry e;
    e.key = key;
    if (vm.count(key)) e.value = any_text(vm[key].value());
    e.source = from_cmdline.count(key) ? ConfigSource::kCommandLine
               : file_line.count(key)  ? ConfigSource::kFile
                                       : ConfigSource::kDefault;
    cmd.config.effective.push_back(std::move(e));
  }
  return cmd;
}

NodeCommand parse_node_command(int argc, const char* const argv[]) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_node_command(args);
}

std::string format_effective_config(const NodeConfig& config) {
  std::string out = "# annald effective configuration";
  out += config.config_file.empty() ? " (defaults and command line)\n"
                                    : " (defaults, " + config.config_file + ", command line)\n";
  std::size_t width = 0;
  for (const auto& e : config.effective) width = std::max(width, e.key.size());
  for (const auto& e : config.effective) {
    std::string line = fmt::format("{:<{}} = {}", e.key, width, e.value);
    if (e.source == ConfigSource::kFile)
      line += "  # from " + config.config_file;
    else if (e.source == ConfigSource::kCommandLine)
      line += "  # from the command line";
    out += trim(line) + "\n";
  }
  return out;
}

std::vector<std::string> effective_config_log_lines(const NodeConfig& config, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  for (const auto& e : config.effective) {
    const bool quote = e.value.empty() || e.value.find_first_of(" \t\"") != std::string::npos;
    std::string item = e.key + "=" + (quote ? fmt::format("\"{}\"", e.value) : e.value);
    if (!line.empty() && line.size() + 1 + item.size() > width) {
      lines.push_back(std::move(line));
      line.clear();
    }
    if (!line.empty()) line += ' ';
    line += item;
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

}  // namespace annal::tools
