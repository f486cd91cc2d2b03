// annald: the annal storage node. Opens (and recovers) a data directory and
// serves protocol v1 (docs/protocol.md) over TCP. Flags: docs/node.md.
#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "admin/http_server.h"
#include "engine/file.h"
#include "index/store.h"
#include "net/client.h"
#include "net/server.h"

namespace po = boost::program_options;
using namespace annal;

namespace {

// "64M", "1G", "4096", "16k" -> bytes. nullopt if malformed.
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

struct SizeFlag {
  const char* name;
  std::string value;
};

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "annald: %s\nRun 'annald --help' for the flags.\n", msg.c_str());
  return 2;
}

// Destroys the store on another thread and waits up to `limit` (at least a
// second) for it: false if it is still closing (the thread is left running).
bool close_within(std::unique_ptr<index::Store> store, std::chrono::milliseconds limit) {
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  std::thread([s = std::move(store), done]() mutable {
    s.reset();
    done->set_value();
  }).detach();
  return closed.wait_for(std::max<std::chrono::milliseconds>(limit, std::chrono::seconds(1))) ==
         std::future_status::ready;
}

// Writes `port` to `path` (nothing if `path` is empty): write then rename, so
// a reader never sees a partial number. False (logged) on failure.
bool write_port_file(const std::string& path, std::uint16_t port) {
  if (path.empty()) return true;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << "\n";
    if (!f) {
      spdlog::error("cannot write the port file {}", tmp);
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    spdlog::error("cannot rename {} to {}: {}", tmp, path, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

// Read responses (up to max_read_bytes, 1 MiB by default) are built in
// buffers of their own. glibc serves such sizes with a fresh mmap and gives
// them back on free (or trims them from the arena), so every response paid
// page faults and the zeroing of new pages: a quarter of the node's CPU in a
// stream read. Keep them in the arenas instead; larger frames still use mmap.
static void tune_allocator() {
  (void)::mallopt(M_MMAP_THRESHOLD, 4 << 20);
  (void)::mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int main(int argc, char** argv) {
  tune_allocator();
  index::StoreOptions so;
  net::ServerOptions no;
  const index::Limits dl;
  std::string data_dir = "./data";
  std::string listen = "127.0.0.1:7411";
  std::string secondary_index = "on", category_separator = "-";
  std::string port_file;
  std::string http = "127.0.0.1:7412", http_port_file, metrics = "on";
  std::string log_level = "info";
  std::string segment_size = std::to_string(so.log.segment_size >> 20) + "M";
  std::string min_free = std::to_string(so.log.min_free_bytes >> 20) + "M";
  std::string max_event_size = std::to_string(dl.max_event_size >> 20) + "M";
  std::string max_append_size = std::to_string(dl.max_append_size >> 20) + "M";
  std::string max_frame = std::to_string(no.max_frame >> 20) + "M";
  std::uint64_t idle_timeout_ms = static_cast<std::uint64_t>(no.idle_timeout.count());
  std::uint64_t shutdown_grace_ms = static_cast<std::uint64_t>(no.shutdown_grace.count());
  std::uint64_t keepalive_idle_s = static_cast<std::uint64_t>(no.keepalive_idle.count());
  std::uint64_t keepalive_interval_s = static_cast<std::uint64_t>(no.keepalive_interval.count());
  std::uint64_t group_persist_ms = static_cast<std::uint64_t>(no.group_persist_period.count());
  std::uint64_t scavenge_mb_per_s = 64, scavenge_interval_s = 86400, scavenge_free_below_mb = 1024;
  std::uint64_t backup_mb_per_s = 128;

  po::options_description desc(
      "annald: the annal event-store node\n\n"
      "usage: annald [--data DIR] [--listen HOST:PORT] [options]\n\n"
      "Sizes accept a K, M or G suffix (binary units). Options");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("data", po::value(&data_dir)->default_value(data_dir),
     "data directory (created if missing); one node per directory (DIR/LOCK)")
    ("listen", po::value(&listen)->default_value(listen),
     "address to listen on, HOST:PORT; port 0 picks a free port (see --port-file)")
    ("port-file", po::value(&port_file),
     "after listening, write the bound port number to this file (for scripts and tests)")
    ("http", po::value(&http)->default_value(http),
     "admin endpoint (metrics, health, JSON API, web console), HOST:PORT or 'off'; "
     "port 0 picks a free port (see --http-port-file); no authentication: keep it on loopback")
    ("http-port-file", po::value(&http_port_file),
     "after listening, write the admin endpoint's port number to this file")
    ("metrics", po::value(&metrics)->default_value(metrics),
     "on | off: count requests, latencies and commits for /metrics (off: nothing is counted)")
    ("segment-size", po::value(&segment_size)->default_value(segment_size),
     "size of each preallocated log segment file")
    ("min-free", po::value(&min_free)->default_value(min_free),
     "free-space floor: appends are refused with no_space while the file system has less")
    ("max-stream-name", po::value(&so.limits.max_stream_name)->default_value(dl.max_stream_name),
     "longest stream name, bytes")
    ("max-event-type", po::value(&so.limits.max_event_type)->default_value(dl.max_event_type),
     "longest event type, bytes")
    ("max-event-size", po::value(&max_event_size)->default_value(max_event_size),
     "largest event (metadata + data)")
    ("max-append-size", po::value(&max_append_size)->default_value(max_append_size),
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
     "hangs in fdatasync then also stalls that thread's connections and a bounded stop")
    ("secondary-index", po::value(&secondary_index)->default_value(secondary_index),
     "on | off: keep the index of categories, event types, tags and correlation/causation ids "
     "(DATA/secondary) that read-category, read-type, read-tag, ... and their subscriptions use")
    ("category-separator", po::value(&category_separator)->default_value(category_separator),
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
    ("max-frame", po::value(&max_frame)->default_value(max_frame),
     "largest frame accepted; larger ones get frame_too_large and the connection is closed")
    ("idle-timeout-ms", po::value(&idle_timeout_ms)->default_value(idle_timeout_ms),
     "close connections with no request, nothing in flight and no subscription for this long; 0 = never")
    ("shutdown-grace-ms", po::value(&shutdown_grace_ms)->default_value(shutdown_grace_ms),
     "on SIGTERM, wait this long for appends in flight; those still waiting are answered "
     "shutting_down (outcome unknown), and closing the data directory gets as long again")
    ("keepalive-idle-s", po::value(&keepalive_idle_s)->default_value(keepalive_idle_s),
     "TCP keepalive: first probe after this many idle seconds; finds vanished peers; 0 = off")
    ("keepalive-interval-s", po::value(&keepalive_interval_s)->default_value(keepalive_interval_s),
     "TCP keepalive: seconds between probes")
    ("keepalive-probes", po::value(&no.keepalive_probes)->default_value(no.keepalive_probes),
     "TCP keepalive: unanswered probes before the connection is dropped")
    ("group-persist-ms", po::value(&group_persist_ms)->default_value(group_persist_ms),
     "how often a consumer group's changed progress is written to DATA/groups: after a "
     "crash, events acked within this long before it may be delivered again")
    ("scavenge-mb-per-s", po::value(&scavenge_mb_per_s)->default_value(scavenge_mb_per_s),
     "scavenge write budget in MiB/s (0 = as fast as the disk)")
    ("scavenge-interval-s", po::value(&scavenge_interval_s)->default_value(scavenge_interval_s),
     "scavenge every this many seconds (0 = never on a schedule)")
    ("scavenge-free-below-mb",
     po::value(&scavenge_free_below_mb)->default_value(scavenge_free_below_mb),
     "scavenge (at most every 10 minutes) while the data directory's file system has less "
     "free space than this (MiB; 0 = never)")
    ("backup-mb-per-s", po::value(&backup_mb_per_s)->default_value(backup_mb_per_s),
     "read budget of a backup request that names none, MiB/s (0 = as fast as the disk)")
    ("log-level", po::value(&log_level)->default_value(log_level),
     "trace, debug, info, warn, error");
  // clang-format on

  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n"
              << "Stops gracefully on SIGINT/SIGTERM: stops accepting, answers what is in flight,\n"
                 "flushes and closes the data directory, exits 0.\n";
    return 0;
  }

  spdlog::set_default_logger(spdlog::stderr_color_mt("annald"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ annald: %v", spdlog::pattern_time_type::utc);
  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off")
    return usage_error("unknown --log-level " + log_level);
  spdlog::set_level(level);

  for (auto [name, text, out] : {std::tuple{"--segment-size", segment_size, &so.log.segment_size},
                                 std::tuple{"--min-free", min_free, &so.log.min_free_bytes}}) {
    auto v = parse_size(text);
    if (!v) return usage_error(fmt::format("{}: cannot parse size '{}'", name, text));
    *out = *v;
  }
  for (auto [name, text, out] :
       {std::tuple{"--max-event-size", max_event_size, &so.limits.max_event_size},
        std::tuple{"--max-append-size", max_append_size, &so.limits.max_append_size}}) {
    auto v = parse_size(text);
    if (!v) return usage_error(fmt::format("{}: cannot parse size '{}'", name, text));
    *out = static_cast<std::size_t>(*v);
  }
  {
    auto v = parse_size(max_frame);
    if (!v || *v < 64 || *v > UINT32_MAX)
      return usage_error(fmt::format("--max-frame: invalid size '{}'", max_frame));
    no.max_frame = static_cast<std::uint32_t>(*v);
  }
  if (secondary_index != "on" && secondary_index != "off")
    return usage_error("--secondary-index must be on or off, got '" + secondary_index + "'");
  so.secondary_index = secondary_index == "on";
  if (category_separator.size() != 1)
    return usage_error("--category-separator must be one character, got '" + category_separator +
                       "'");
  so.category_separator = category_separator[0];
  if (metrics != "on" && metrics != "off")
    return usage_error("--metrics must be on or off, got '" + metrics + "'");
  so.log.metrics = no.metrics = metrics == "on";
  std::optional<std::pair<std::string, std::uint16_t>> http_hp;
  if (http != "off") {
    http_hp = net::parse_host_port(http);
    if (!http_hp) return usage_error("--http must be HOST:PORT or off, got '" + http + "'");
  }
  auto hp = net::parse_host_port(listen);
  if (!hp) return usage_error("--listen must be HOST:PORT, got '" + listen + "'");
  no.host = hp->first;
  no.port = hp->second;
  no.idle_timeout = std::chrono::milliseconds(idle_timeout_ms);
  no.shutdown_grace = std::chrono::milliseconds(shutdown_grace_ms);
  if (keepalive_idle_s > 86400 || keepalive_interval_s < 1 || keepalive_interval_s > 3600 ||
      no.keepalive_probes < 1 || no.keepalive_probes > 100)
    return usage_error(
        "--keepalive-idle-s must be at most 86400, --keepalive-interval-s between 1 and 3600, "
        "--keepalive-probes between 1 and 100");
  no.keepalive_idle = std::chrono::seconds(keepalive_idle_s);
  no.keepalive_interval = std::chrono::seconds(keepalive_interval_s);
  if (group_persist_ms < 1 || group_persist_ms > 60'000)
    return usage_error("--group-persist-ms must be between 1 and 60000");
  no.group_persist_period = std::chrono::milliseconds(group_persist_ms);
  if (scavenge_mb_per_s > (1u << 20) || scavenge_interval_s > 365ull * 86400 ||
      scavenge_free_below_mb > (1ull << 30))
    return usage_error(
        "--scavenge-mb-per-s must be at most 1048576, --scavenge-interval-s at most a year, "
        "--scavenge-free-below-mb at most 2^30");
  no.scavenge_bytes_per_second = scavenge_mb_per_s << 20;
  no.scavenge_interval = std::chrono::seconds(scavenge_interval_s);
  no.scavenge_free_below = scavenge_free_below_mb << 20;
  if (backup_mb_per_s > (1u << 20)) return usage_error("--backup-mb-per-s must be at most 1048576");
  no.backup_bytes_per_second = backup_mb_per_s << 20;
  if (no.max_in_flight == 0 || no.max_connections == 0)
    return usage_error("--max-in-flight and --max-connections must be at least 1");

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (auto st = engine::FileSystem::posix().create_dirs(data_dir); !st.is_ok()) {
    spdlog::error("cannot create data directory {}: {}", data_dir, st.to_string());
    return 1;
  }
  auto lock = engine::DirectoryLock::acquire(data_dir);
  if (!lock.is_ok()) {
    spdlog::error("{}", lock.status().to_string());
    if (lock.status().code() == Errc::kLocked)
      spdlog::error("another annald is using {}; stop it first or choose another --data", data_dir);
    return 1;
  }

  so.log.dir = data_dir;
  spdlog::info("opening data directory {} (segment size {} bytes, free-space floor {} bytes)",
               data_dir, so.log.segment_size, so.log.min_free_bytes);
  auto opened = index::Store::open(so);
  if (!opened.is_ok()) {
    spdlog::error("cannot open the store: {}", opened.status().to_string());
    if (opened.status().code() == Errc::kCorruption)
      spdlog::error("the data directory is damaged: run 'annal verify {}' then 'annal repair {}'",
                    data_dir, data_dir);
    return 1;
  }
  std::unique_ptr<index::Store> store = std::move(opened.value());
  {
    const auto& rr = store->log().recovery();
    spdlog::info(
        "recovered log: end position {}, {} segments, {} torn bytes cut, {} incomplete "
        "events cut, {} position indexes rebuilt",
        rr.end.value, rr.segments, rr.torn_bytes_cut, rr.incomplete_events_cut,
        rr.position_indexes_rebuilt);
    spdlog::info("durable end {}", store->log().durable_end().value);
    const auto st = store->stats();
    spdlog::info("stream index: {} memtable entries, {} index files, indexed through {}{}",
                 st.memtable_entries, st.index_files, st.indexed_through,
                 st.last_rebuild_reason.empty() ? "" : ", rebuilt: " + st.last_rebuild_reason);
    const auto& l = store->limits();
    spdlog::info(
        "limits: stream name {} B, event type {} B, event {} B, append {} B / {} events, "
        "{} tags of {} B, correlation/causation ids {} B",
        l.max_stream_name, l.max_event_type, l.max_event_size, l.max_append_size,
        l.max_append_events, l.max_tags, l.max_tag_size, l.max_correlation_id);
  }

  net::Server server(*store, no);
  if (auto st = server.start(); !st.is_ok()) {
    spdlog::error("{}", st.to_string());
    return 1;
  }
  spdlog::info(
      "listening on {}:{} ({} I/O threads, max {} connections, {} in flight per "
      "connection, idle timeout {} ms)",
      no.host, server.port(),
      no.threads ? no.threads : std::max(1u, std::thread::hardware_concurrency()),
      no.max_connections, no.max_in_flight, idle_timeout_ms);
  // The admin endpoint starts after the protocol server, so that it is never
  // ready before the node is.
  std::unique_ptr<admin::AdminServer> http_server;
  if (http_hp) {
    admin::AdminOptions ao;
    ao.host = http_hp->first;
    ao.port = http_hp->second;
    ao.data_dir = data_dir;
    ao.min_free_bytes = so.log.min_free_bytes;
    ao.segment_size = so.log.segment_size;
    ao.server_version = no.server_version;
    ao.metrics = no.metrics;
    http_server = std::make_unique<admin::AdminServer>(*store, server, ao);
    if (auto st = http_server->start(); !st.is_ok()) {
      spdlog::error("{}", st.to_string());
      server.stop();
      return 1;
    }
    spdlog::info("admin endpoint and web console on http://{}:{}/ (/metrics, /health/ready{})",
                 ao.host, http_server->port(), no.metrics ? "" : "; metrics are off");
  }
  if (!write_port_file(port_file, server.port()) ||
      (http_server && !write_port_file(http_port_file, http_server->port()))) {
    if (http_server) http_server->stop();
    server.stop();
    return 1;
  }

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  spdlog::info("received {}: stopping (no new connections, answering what is in flight)",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  server.stop();  // /health/ready says "stopping" meanwhile
  if (http_server) http_server->stop();
  const auto end = store->log().durable_end().value;
  const Status writer = store->log().writer_status();
  // Finishes queued appends, flushes the index, closes files. A disk hung in
  // fdatasync would hold this forever: after the grace again, exit without a
  // clean close (like a crash: nothing acknowledged is lost, recovery runs at
  // the next start).
  if (!close_within(std::move(store), no.shutdown_grace)) {
    spdlog::error(
        "closing the data directory did not finish within {} ms (a write or fdatasync is "
        "hanging?); exiting without a clean close: the next start recovers",
        no.shutdown_grace.count());
    std::_Exit(3);
  }
  lock.value().reset();
  spdlog::info("stopped cleanly at durable end {}{}", end,
               writer.is_ok() ? "" : " (writer had failed: " + writer.to_string() + ")");
  return 0;
}
