// annald: the annal storage node. Opens (and recovers) a data directory and
// serves protocol v1 (docs/protocol.md) over TCP, until SIGINT/SIGTERM.
// Options and config file: tools/node_config.h, docs/node.md; logs:
// tools/node_log.h; readiness (port files, systemd): tools/readiness.h.
#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "admin/http_server.h"
#include "engine/file.h"
#include "index/store.h"
#include "net/server.h"
#include "tools/node_config.h"
#include "tools/node_log.h"
#include "tools/readiness.h"

#ifndef ANNAL_VERSION
#define ANNAL_VERSION "unknown"
#endif

using namespace annal;

namespace {

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
  const tools::NodeCommand cmd = tools::parse_node_command(argc, argv);
  switch (cmd.action) {
    case tools::NodeCommand::Action::kUsageError:
      return usage_error(cmd.text);
    case tools::NodeCommand::Action::kHelp:
    case tools::NodeCommand::Action::kVersion:
      std::cout << cmd.text;
      return 0;
    case tools::NodeCommand::Action::kCheckConfig:
      std::cout << tools::format_effective_config(cmd.config);
      return 0;
    case tools::NodeCommand::Action::kRun:
      break;
  }
  const tools::NodeConfig& config = cmd.config;
  const std::string& data_dir = config.data_dir;
  index::StoreOptions so = config.store;
  const net::ServerOptions& no = config.server;
  tools::setup_node_logging(config.log_level, config.log_format);
  spdlog::info("annald {} starting; configuration{}:", ANNAL_VERSION,
               config.config_file.empty() ? "" : " (from " + config.config_file + " and flags)");
  for (const auto& line : tools::effective_config_log_lines(config))
    spdlog::info("config: {}", line);

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
  (void)tools::notify_service_manager("STATUS=opening the data directory (recovery)");
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
      no.max_connections, no.max_in_flight, no.idle_timeout.count());
  // The admin endpoint starts after the protocol server, so that it is never
  // ready before the node is.
  std::unique_ptr<admin::AdminServer> http_server;
  if (config.http_enabled()) {
    admin::AdminOptions ao;
    ao.host = config.http_host;
    ao.port = config.http_port;
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
  for (auto [path, port] :
       {std::pair{config.port_file, server.port()},
        std::pair{config.http_port_file, http_server ? http_server->port() : std::uint16_t{0}}}) {
    if (path.empty() || port == 0) continue;
    if (auto st = tools::write_port_file(path, port); !st.is_ok()) {
      spdlog::error("cannot write the port file: {}", st.to_string());
      if (http_server) http_server->stop();
      server.stop();
      return 1;
    }
  }
  // Ready: recovered, both ports listening, port files written.
  if (auto st = tools::notify_ready(fmt::format("serving on {}:{}", no.host, server.port()));
      !st.is_ok())
    spdlog::warn("cannot tell systemd the node is ready: {}", st.to_string());

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  spdlog::info("received {}: stopping (no new connections, answering what is in flight)",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  if (auto st = tools::notify_stopping("stopping"); !st.is_ok())
    spdlog::warn("cannot tell systemd the node is stopping: {}", st.to_string());
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
