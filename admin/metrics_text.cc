#include "admin/metrics_text.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/file.h"
#include "proto/protocol.h"

namespace annal::admin {
namespace proto = net::proto;
namespace {

class Writer {
 public:
  // # HELP and # TYPE for a family.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, double v, std::string_view labels = {}) {
    if (labels.empty())
      out_ += fmt::format("{} {}\n", name, format_value(v));
    else
      out_ += fmt::format("{}{{{}}} {}\n", name, labels, format_value(v));
  }
  void one(std::string_view name, std::string_view type, std::string_view help, double v) {
    family(name, type, help);
    sample(name, v);
  }
  // A histogram observed in `unit_scale` units per base unit (1e9 for ns ->
  // seconds, 1 for counts).
  void histogram(std::string_view name, std::string_view help, const engine::Histogram& h,
                 double unit_scale, std::string_view labels = {}) {
    family(name, "histogram", help);
    const auto s = h.snapshot();
    const std::string sep = labels.empty() ? "" : std::string(labels) + ",";
    for (std::size_t i = 0; i < s.buckets; ++i)
      sample(std::string(name) + "_bucket", static_cast<double>(s.cumulative[i]),
             fmt::format("{}le=\"{}\"", sep,
                         format_value(static_cast<double>(s.bounds[i]) / unit_scale)));
    sample(std::string(name) + "_bucket", static_cast<double>(s.cumulative[s.buckets]),
           fmt::format("{}le=\"+Inf\"", sep));
    sample(std::string(name) + "_sum", static_cast<double>(s.sum) / unit_scale, labels);
    sample(std::string(name) + "_count", static_cast<double>(s.count), labels);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

double u(std::uint64_t v) {
  return static_cast<double>(v);
}

void process_metrics(Writer& w) {
  // /proc/self/stat fields 14/15 (utime, stime in ticks), 24 (rss pages).
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    const std::size_t close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> f;
      for (std::string x; rest >> x;) f.push_back(x);
      // rest starts at field 3 (state).
      if (f.size() > 21) {
        const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
        const double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        const double rss = std::stod(f[21]) * static_cast<double>(::sysconf(_SC_PAGESIZE));
        w.one("process_cpu_seconds_total", "counter", "User and system CPU time of the node.", cpu);
        w.one("process_resident_memory_bytes", "gauge", "Resident memory of the node.", rss);
      }
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  if (!ec) w.one("process_open_fds", "gauge", "Open file descriptors of the node.", u(fds));
}

void request_metrics(Writer& w, const net::NetMetrics& m) {
  w.family("annal_requests_total", "counter",
           "Protocol requests received, by operation (reads by kind: read_stream, read_all, "
           "read_index, read_query).");
  for (unsigned op = 0; op < 256; ++op) {
    if (!proto::is_request_op(static_cast<std::uint8_t>(op))) continue;
    w.sample("annal_requests_total", u(m.requests[op].load(std::memory_order_relaxed)),
             fmt::format("op=\"{}\"", proto::op_name(static_cast<proto::Op>(op))));
  }
  w.family("annal_errors_total", "counter",
           "Error answers sent, by protocol error code (docs/protocol.md).");
  for (unsigned code = 1; code < 256; ++code) {
    const std::uint64_t n = m.errors[code].load(std::memory_order_relaxed);
    const char* name = proto::code_name(static_cast<proto::Code>(code));
    if (n == 0 && std::string_view(name) == "unknown") continue;
    w.sample("annal_errors_total", u(n), fmt::format("code=\"{}\"", name));
  }
  w.histogram("annal_append_duration_seconds",
              "Appends (append, append_multi, metadata and deletion writes) from the request's "
              "arrival to its answer, durable or refused.",
              m.append_ns, 1e9);
  const auto appends = m.append_ns.snapshot().count;
  w.one("annal_appends_total", "counter",
        "Append requests answered (the count of annal_append_duration_seconds).", u(appends));
  w.one("annal_subscriptions_active", "gauge", "Subscriptions open now.",
        static_cast<double>(m.subscriptions_active.load(std::memory_order_relaxed)));
  w.one("annal_subscriptions_total", "counter", "Subscriptions opened since start.",
        u(m.subscriptions_total.load(std::memory_order_relaxed)));
}

// The subscription furthest behind: how many positions and how old the
// first event it has not read yet is.
void subscription_lag_metrics(Writer& w, const Node& node) {
  const auto& log = node.store.log();
  const std::uint64_t end = log.durable_end().value;
  const auto lag = node.server.metrics().subscriptions.lag(end);
  double seconds = 0;
  std::uint64_t events = 0;
  if (lag.oldest_next < end) {
    events = end - lag.oldest_next;
    std::int64_t ts = 0;
    if (log.visit(GlobalPosition(lag.oldest_next),
                  [&](const engine::RecordView& v) { ts = v.timestamp_us; })
            .is_ok()) {
      const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      seconds = now_us > ts ? static_cast<double>(now_us - ts) / 1e6 : 0;
    }
  }
  w.one("annal_subscriptions_behind", "gauge",
        "Subscriptions that have not read up to the durable end (catching up, or a stream "
        "subscription reading its stream's index).",
        u(lag.behind));
  w.one("annal_subscription_max_lag_events", "gauge",
        "Positions between the durable end and the subscription furthest behind (stream "
        "subscriptions count once they follow the log).",
        u(events));
  w.one("annal_subscription_max_lag_seconds", "gauge",
        "Age of the first event the subscription furthest behind has not read.", seconds);
}

void log_metrics(Writer& w, const Node& node) {
  const auto& log = node.store.log();
  const auto& m = log.metrics();
  w.one("annal_events_appended_total", "counter",
        "Events made durable (appended events, metadata and deletion markers).",
        u(m.events_written.load(std::memory_order_relaxed)));
  w.one("annal_written_bytes_total", "counter", "Record bytes written to segment files.",
        u(m.bytes_written.load(std::memory_order_relaxed)));
  w.one("annal_group_commits_total", "counter", "Group commits made durable.",
        u(m.group_commits.load(std::memory_order_relaxed)));
  w.histogram("annal_group_commit_events", "Events per durable group commit.", m.group_events, 1);
  w.histogram("annal_fdatasync_duration_seconds", "fdatasync of group commits.", m.sync_ns, 1e9);
  w.one("annal_fdatasync_errors_total", "counter",
        "fdatasync calls that failed (the first one stops the writer).",
        u(m.sync_errors.load(std::memory_order_relaxed)));
  w.one("annal_appends_refused_no_space_total", "counter",
        "Appends refused because the file system was below the free-space floor.",
        u(m.appends_refused_no_space.load(std::memory_order_relaxed)));
  w.one("annal_durable_end_position", "gauge",
        "One past the last durable event: the log's length in positions.",
        u(log.durable_end().value));
  const Status writer = log.writer_status();
  w.one("annal_writer_failed", "gauge",
        "1 once the log writer has failed (appends are refused until a restart), else 0.",
        writer.is_ok() ? 0 : 1);
  const auto segments = log.segments();
  std::uint64_t used = 0, allocated = 0;
  for (const auto& s : segments) {
    used += s.bytes_used;
    allocated += s.bytes_allocated;
  }
  w.one("annal_log_segments", "gauge", "Segment files of the log.", u(segments.size()));
  w.one("annal_log_used_bytes", "gauge", "Bytes of the segment files holding records.", u(used));
  w.one("annal_log_allocated_bytes", "gauge", "Bytes allocated to segment files.", u(allocated));
  const auto& r = log.recovery();
  w.one("annal_recovery_end_position", "gauge", "The log's end found by the last start's recovery.",
        u(r.end.value));
  w.one("annal_recovery_segments", "gauge", "Segments the last start's recovery opened.",
        u(r.segments));
  w.one("annal_recovery_torn_bytes_cut", "gauge",
        "Bytes of a torn tail the last start cut (a write the crash interrupted).",
        u(r.torn_bytes_cut));
  w.one("annal_recovery_incomplete_events_cut", "gauge",
        "Events of an unacknowledged trailing append the last start cut.",
        u(r.incomplete_events_cut));
  w.one("annal_recovery_position_indexes_rebuilt", "gauge",
        "Segment position indexes the last start rebuilt.", u(r.position_indexes_rebuilt));
}

void index_metrics(Writer& w, const Node& node) {
  const auto s = node.store.stats();
  w.one("annal_index_memtable_entries", "gauge",
        "Stream-index entries in memory, not yet in index files.", u(s.memtable_entries));
  w.one("annal_index_files", "gauge", "Stream-index files.", u(s.index_files));
  w.one("annal_index_indexed_through_position", "gauge",
        "Positions below this are in stream-index files.", u(s.indexed_through));
  w.one("annal_index_resident_bytes", "gauge", "Estimated memory of the stream index.",
        u(s.resident_bytes_estimate));
  w.one("annal_index_repairs_total", "counter",
        "Damaged stream-index files rebuilt from the log while open.", u(s.index_repairs));
  if (auto sec = node.store.secondary_stats()) {
    w.one("annal_secondary_index_memtable_entries", "gauge",
          "Secondary-index entries in memory (active and frozen).", u(sec->memtable_entries));
    w.one("annal_secondary_index_frozen_memtables", "gauge",
          "Secondary-index memtables waiting for the background flush.", u(sec->frozen_memtables));
    w.one("annal_secondary_index_files", "gauge", "Secondary-index files.", u(sec->index_files));
    w.one("annal_secondary_index_indexed_through_position", "gauge",
          "Positions below this are in secondary-index files.", u(sec->indexed_through));
    w.one("annal_secondary_index_flushes_total", "counter",
          "Background flushes of the secondary index.", u(sec->flushes));
    w.one("annal_secondary_index_merges_total", "counter",
          "Background merges of secondary-index files.", u(sec->merges));
  }
}

void node_metrics(Writer& w, const Node& node) {
  const auto st = node.server.stats();
  w.one("annal_connections_open", "gauge", "Protocol connections open now.",
        u(st.connections_open));
  w.one("annal_connections_accepted_total", "counter", "Protocol connections accepted.",
        u(st.connections_accepted));
  w.one("annal_connections_refused_total", "counter",
        "Protocol connections refused (too_many_connections).", u(st.connections_refused));
  w.one("annal_requests_in_flight", "gauge", "Requests received and not yet answered.",
        static_cast<double>(st.requests_in_flight));
  auto free = engine::FileSystem::posix().free_bytes(node.options.data_dir);
  if (free.is_ok())
    w.one("annal_disk_free_bytes", "gauge",
          "Free bytes on the data directory's file system (for unprivileged users).", u(*free));
  w.one("annal_disk_free_floor_bytes", "gauge",
        "The free-space floor: appends are refused below it (annald --min-free).",
        u(node.options.min_free_bytes));
  const auto started = std::chrono::duration<double>(node.started.time_since_epoch()).count();
  w.one("annal_start_time_seconds", "gauge", "When the node started, seconds since the epoch.",
        started);
  w.family("annal_build_info", "gauge", "The node's version, as a label; always 1.");
  w.sample("annal_build_info", 1,
           fmt::format("version=\"{}\",protocol=\"{}\"", escape_label(node.options.server_version),
                       proto::kProtocolVersion));
}

void group_metrics(Writer& w, const Node& node) {
  const auto groups = node.server.groups();
  w.one("annal_consumer_groups", "gauge", "Consumer groups and named consumers.", u(groups.size()));
  if (groups.empty()) return;
  struct Field {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const proto::GroupInfo&);
  };
  static const Field fields[] = {
      {"annal_consumer_group_lag_events", "gauge",
       "Events of the group's source not yet resolved (acked, skipped or parked).",
       [](const proto::GroupInfo& g) { return u(g.lag_events); }},
      {"annal_consumer_group_lag_seconds", "gauge",
       "Age of the oldest unresolved event of the group's source.",
       [](const proto::GroupInfo& g) { return static_cast<double>(g.lag_us) / 1e6; }},
      {"annal_consumer_group_members", "gauge", "Consumers connected to the group.",
       [](const proto::GroupInfo& g) { return u(g.consumers); }},
      {"annal_consumer_group_in_flight", "gauge", "Events delivered and not yet resolved.",
       [](const proto::GroupInfo& g) { return u(g.in_flight); }},
      {"annal_consumer_group_parked", "gauge", "Events in the group's parked list.",
       [](const proto::GroupInfo& g) { return u(g.parked); }},
      {"annal_consumer_group_acked_total", "counter",
       "Events resolved by ack or skip since the group was created.",
       [](const proto::GroupInfo& g) { return u(g.acked_total); }},
      {"annal_consumer_group_delivered_total", "counter", "Deliveries since the node started.",
       [](const proto::GroupInfo& g) { return u(g.delivered_total); }},
  };
  for (const auto& f : fields) {
    w.family(f.name, f.type, f.help);
    for (const auto& g : groups)
      w.sample(f.name, f.get(g),
               fmt::format("group=\"{}\",kind=\"{}\"", escape_label(g.name),
                           g.kind == groups::Kind::kGroup ? "group" : "named_consumer"));
  }
}

}  // namespace

std::string escape_label(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\')
      o += "\\\\";
    else if (c == '"')
      o += "\\\"";
    else if (c == '\n')
      o += "\\n";
    else
      o += c;
  }
  return o;
}

std::string format_value(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

std::string render_metrics(const Node& node) {
  Writer w;
  request_metrics(w, node.server.metrics());
  subscription_lag_metrics(w, node);
  log_metrics(w, node);
  index_metrics(w, node);
  node_metrics(w, node);
  group_metrics(w, node);
  process_metrics(w);
  return w.take();
}

}  // namespace annal::admin
