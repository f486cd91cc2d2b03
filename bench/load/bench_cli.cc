// `annal bench`: a load generator against a running node. See
// docs/benchmarks.md.
//
//   annal bench append      [common] [load]
//   annal bench read-stream [common] --stream NAME [--in-flight P]
//   annal bench read-all    [common] [--from POS] [--count N] [--in-flight P]
//   annal bench subscribe   [common] [load] --subscribers N
//
// Appends (bench/load/append_load.h) drive many connections from few threads.
// Reads and subscriptions use the client library (net/client.h), keeping P
// requests in flight by issuing the next from the completion callback of the
// previous one (on the client's reader thread).

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/load/append_load.h"
#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "bench/load/subscribe_load.h"
#include "bench/load/workload.h"
#include "engine/format.h"
#include "engine/record.h"
#include "net/client.h"
#include "tools/cli.h"

namespace annal::bench {
namespace {

using Clock = std::chrono::steady_clock;
using net::Client;
namespace proto = net::proto;

std::unique_ptr<Client> connect(const Options& o, const std::string& name) {
  auto hp = net::parse_host_port(o.host);
  if (!hp) {
    std::fprintf(stderr, "annal bench: --server must be HOST:PORT, got '%s'\n", o.host.c_str());
    return nullptr;
  }
  net::ClientOptions co;
  co.host = hp->first;
  co.port = hp->second;
  co.client_name = name;
  co.subscription_queue = 256;
  auto c = Client::connect(co);
  if (!c) {
    std::fprintf(stderr, "annal bench: cannot connect to %s: %s\n", o.host.c_str(),
                 c.error_string().c_str());
    return nullptr;
  }
  return std::move(c).value();
}

// One progress line on stderr, rewritten in place, only on a terminal.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(::isatty(2) == 1) {}
  ~Progress() { stop(); }
  // done(): total units so far; extra(): appended text.
  void start(std::function<std::uint64_t()> done, std::function<std::string()> extra = {}) {
    if (!tty_) return;
    thread_ = std::thread([this, done = std::move(done), extra = std::move(extra)] {
      const auto t0 = Clock::now();
      std::uint64_t last = 0;
      auto tl = t0;
      std::unique_lock lk(mu_);
      while (!cv_.wait_for(lk, std::chrono::milliseconds(500), [&] { return stop_; })) {
        const auto t = Clock::now();
        const std::uint64_t d = done();
        const double rate =
            static_cast<double>(d - last) / std::chrono::duration<double>(t - tl).count();
        last = d;
        tl = t;
        std::fprintf(stderr, "\r\033[K%s %6.1f s  %12" PRIu64 " events  %10.0f events/s  %s",
                     what_.c_str(), std::chrono::duration<double>(t - t0).count(), d, rate,
                     extra ? extra().c_str() : "");
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    });
  }
  void stop() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::string what_;
  bool tty_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

std::string load_json(const Options& o) {
  return fmt::format(
      "\"connections\":{},\"in_flight\":{},\"batch\":{},\"event_size\":{},\"streams\":{},\"dist\":"
      "\"{}\","
      "\"record_bytes\":{}",
      o.connections, o.in_flight, o.batch, o.size, o.streams, o.zipf ? "zipf" : "uniform",
      record_bytes(o));
}

std::string append_json(const Options& o, const AppendResult& r) {
  const double eps = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  return fmt::format(
      "\"seconds\":{:.3f},\"events\":{},\"total_events\":{},\"appends\":{},\"errors\":{},\"events_"
      "per_s\":{:.1f},"
      "\"appends_per_s\":{:.1f},\"data_mb_per_s\":{:.3f},\"record_mb_per_s\":{:.3f},\"latency\":{},"
      "\"refused\":{}",
      r.seconds, r.events, r.total_events, r.appends, r.errors, eps,
      r.seconds > 0 ? static_cast<double>(r.appends) / r.seconds : 0,
      eps * static_cast<double>(o.size) / 1e6, eps * static_cast<double>(record_bytes(o)) / 1e6,
      latency_json(r.latency), r.refused);
}

void print_append_text(const Options& o, const AppendResult& r) {
  const double eps = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  if (o.query_reads) {
    std::printf("read-query: %u conn x %u in flight, one tag of %" PRIu64 " values per read\n",
                o.connections, o.in_flight, o.tag_values);
    std::printf("  %.0f reads/s  %.0f events/s  (%" PRIu64 " reads, %" PRIu64
                " events in %.2f s, %" PRIu64 " errors)\n",
                static_cast<double>(r.appends) / std::max(r.seconds, 1e-9), eps, r.appends,
                r.events, r.seconds, r.errors);
    std::printf("  read latency: %s\n", latency_text(r.latency).c_str());
    if (!r.first_error.empty()) std::printf("  first error: %s\n", r.first_error.c_str());
    return;
  }
  if (o.condition) std::printf("conditional ");
  std::printf("append: %u conn x %u in flight, %u events/append, %zu B, %" PRIu64 " streams (%s)\n",
              o.connections, o.in_flight, o.batch, o.size, o.streams, o.zipf ? "zipf" : "uniform");
  std::printf("  %.0f events/s  %.0f appends/s  %.2f MB/s data  %.2f MB/s on disk  (%" PRIu64
              " events in %.2f s, %" PRIu64 " errors)\n",
              eps, static_cast<double>(r.appends) / std::max(r.seconds, 1e-9),
              eps * static_cast<double>(o.size) / 1e6,
              eps * static_cast<double>(record_bytes(o)) / 1e6, r.events, r.seconds, r.errors);
  if (o.condition) std::printf("  %" PRIu64 " refused by their condition\n", r.refused);
  std::printf("  ack latency: %s\n", latency_text(r.latency).c_str());
  if (!r.first_error.empty()) std::printf("  first error: %s\n", r.first_error.c_str());
}

int cmd_append(Options o) {
  if (o.fill_to > 0) {
    auto c = connect(o, "annal-bench-control");
    if (!c) return 1;
    auto info = c->info();
    if (!info) {
      std::fprintf(stderr, "annal bench: info: %s\n", info.error_string().c_str());
      return 1;
    }
    if (info->durable_end >= o.fill_to) {
      if (o.json)
        std::printf("{\"command\":\"append\",\"label\":\"%s\",\"events\":0}\n", o.label.c_str());
      return 0;
    }
    o.count = o.fill_to - info->durable_end;
    o.warmup = 0;
  }
  AppendLoad load(o, nullptr);
  if (!load.connect_all()) return 1;
  Progress p("append");
  p.start([&] { return load.acked(); });
  AppendResult r = load.run();
  p.stop();
  if (o.json) {
    std::printf("{\"command\":\"%s\",\"label\":\"%s\",%s,%s}\n",
                o.query_reads ? "read-query" : "append", o.label.c_str(), load_json(o).c_str(),
                append_json(o, r).c_str());
  } else {
    print_append_text(o, r);
  }
  return r.errors == 0 && r.events > 0 ? 0 : 1;
}

// ---- read-stream / read-all -------------------------------------------------------
// Positions (and revisions within a stream) are dense, so the reader can keep
// P requests in flight, each asking for the next `chunk` events, and check
// that every response carries exactly the events asked for.

struct ReadResult {
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;  // data + metadata bytes
  std::uint64_t requests = 0;
  double seconds = 0;
  std::string error;  // empty if every event arrived, in order, once
  Histogram latency;
};

ReadResult pipelined_read(const Options& o, Client& c, bool all, std::uint64_t from,
                          std::uint64_t end, std::atomic<std::uint64_t>& progress) {
  ReadResult r;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t next_from = from;  // first not yet requested
  unsigned in_flight = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> short_reads;  // gaps to re-request
  std::function<void(std::uint64_t, std::uint64_t)> send;
  // REQUIRES mu held by the caller for the bookkeeping; send itself is called unlocked.
  auto take_next = [&](std::uint64_t& f, std::uint64_t& n) -> bool {
    if (!short_reads.empty()) {
      f = short_reads.back().first;
      n = short_reads.back().second;
      short_reads.pop_back();
      return true;
    }
    if (next_from >= end || !r.error.empty()) return false;
    f = next_from;
    n = std::min<std::uint64_t>(o.chunk, end - next_from);
    next_from += n;
    return true;
  };
  send = [&](std::uint64_t f, std::uint64_t n) {
    const std::int64_t sent = now_ns();
    // Views into the response: checked here, never copied.
    auto cb = [&, f, n, sent](net::Reply<proto::ReadOkView> reply) {
      const std::int64_t t = now_ns();
      std::uint64_t nf = 0, nn = 0;
      bool again = false;
      {
        std::lock_guard lk(mu);
        --in_flight;
        ++r.requests;
        r.latency.record(t - sent);
        if (!reply.ok()) {
          if (r.error.empty()) r.error = reply.error_string();
        } else {
          const auto& ev = reply->events;
          std::uint64_t k = 0;
          for (; k < ev.size() && k < n; ++k) {
            const std::uint64_t got = all ? ev[k].position.value : ev[k].revision.value;
            if (got != f + k) {
              if (r.error.empty())
                r.error = fmt::format("asked for {} at {}, got {}", f + k, f + k, got);
              break;
            }
            r.bytes += ev[k].data.size() + ev[k].metadata.size();
          }
          r.events += k;
          progress.fetch_add(k, std::memory_order_relaxed);
          if (ev.size() > n && r.error.empty())
            r.error = fmt::format("asked for {} events at {}, got {}", n, f, ev.size());
          if (k < n && r.error.empty()) {
            if (ev.empty())
              r.error = fmt::format("no events at {} (end={})", f + k, reply->end);
            else
              short_reads.emplace_back(f + k, n - k);
          }
        }
        again = take_next(nf, nn);
        if (again) ++in_flight;
        cv.notify_all();
      }
      if (again) send(nf, nn);
    };
    if (all) {
      proto::ReadAllReq q;
      q.from = f;
      q.count = static_cast<std::uint32_t>(n);
      c.read_all_view_async(q, cb);
    } else {
      proto::ReadStreamReq q;
      q.stream = o.stream;
      q.from = f;
      q.count = static_cast<std::uint32_t>(n);
      c.read_stream_view_async(q, cb);
    }
  };
  const auto t0 = Clock::now();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> first;
  {
    std::lock_guard lk(mu);
    std::uint64_t f, n;
    for (unsigned i = 0; i < o.in_flight && take_next(f, n); ++i) {
      first.emplace_back(f, n);
      ++in_flight;
    }
  }
  for (auto [f, n] : first) send(f, n);
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return in_flight == 0; });
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (r.error.empty() && r.events != end - from)
    r.error = fmt::format("read {} events, expected {}", r.events, end - from);
  return r;
}

int cmd_read(const Options& o, bool all) {
  if (!all && o.stream.empty()) return usage("read-stream", "read-stream needs --stream NAME");
  auto c = connect(o, all ? "annal-bench-read-all" : "annal-bench-read-stream");
  if (!c) return 1;
  if (c->hello().max_in_flight < o.in_flight) {
    std::fprintf(stderr, "annal bench: --in-flight %u exceeds the node's max_in_flight %u\n",
                 o.in_flight, c->hello().max_in_flight);
    return 1;
  }
  std::uint64_t from = o.from, end = 0;
  if (all) {
    auto info = c->info();
    if (!info) {
      std::fprintf(stderr, "annal bench: info: %s\n", info.error_string().c_str());
      return 1;
    }
    end = info->durable_end;
    if (o.count > 0) end = std::min(end, from + o.count);
  } else {
    proto::ReadStreamReq q;
    q.stream = o.stream;
    q.from = proto::kNone;
    q.count = 1;
    q.direction = index::Direction::kBackward;
    auto last = c->read_stream(q);
    if (!last || last->events.empty()) {
      std::fprintf(stderr, "annal bench: stream '%s': %s\n", o.stream.c_str(),
                   last ? "empty" : last.error_string().c_str());
      return 1;
    }
    end = last->events[0].revision.value + 1;
    if (o.count > 0) end = std::min(end, from + o.count);
  }
  if (end <= from) {
    std::fprintf(stderr, "annal bench: nothing to read (from %" PRIu64 ", end %" PRIu64 ")\n", from,
                 end);
    return 1;
  }
  std::atomic<std::uint64_t> progress{0};
  Progress p(all ? "read-all" : "read-stream");
  p.start([&] { return progress.load(); });
  ReadResult r = pipelined_read(o, *c, all, from, end, progress);
  p.stop();
  const double eps = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  if (o.json) {
    std::printf("{\"command\":\"%s\",\"label\":\"%s\",\"stream\":\"%s\",\"from\":%" PRIu64
                ",\"in_flight\":%u,\"chunk\":%u,"
                "\"seconds\":%.4f,\"events\":%" PRIu64 ",\"requests\":%" PRIu64
                ",\"events_per_s\":%.1f,"
                "\"data_mb_per_s\":%.3f,\"complete\":%s,\"error\":\"%s\",\"request_latency\":%s}\n",
                all ? "read-all" : "read-stream", o.label.c_str(), all ? "" : o.stream.c_str(),
                from, o.in_flight, o.chunk, r.seconds, r.events, r.requests, eps,
                static_cast<double>(r.bytes) / std::max(r.seconds, 1e-9) / 1e6,
                r.error.empty() ? "true" : "false", r.error.c_str(),
                latency_json(r.latency).c_str());
  } else {
    std::printf("%s%s: %" PRIu64
                " events in %.3f s: %.0f events/s, %.1f MB/s of data (%u in flight x %u)\n",
                all ? "read-all" : "read-stream ", all ? "" : o.stream.c_str(), r.events, r.seconds,
                eps, static_cast<double>(r.bytes) / std::max(r.seconds, 1e-9) / 1e6, o.in_flight,
                o.chunk);
    std::printf("  request latency: %s\n", latency_text(r.latency).c_str());
    if (!r.error.empty()) std::printf("  INCOMPLETE: %s\n", r.error.c_str());
  }
  return r.error.empty() ? 0 : 1;
}

// ---- subscribe -------------------------------------------------------------------
// N subscribers on the global log from the current end (bench/load/
// subscribe_load.h), while an append load runs.

int cmd_subscribe(const Options& o) {
  auto ctl = connect(o, "annal-bench-control");
  if (!ctl) return 1;
  auto info = ctl->info();
  if (!info) {
    std::fprintf(stderr, "annal bench: info: %s\n", info.error_string().c_str());
    return 1;
  }
  const std::uint64_t base = info->durable_end;
  AckTimes acks(base);
  SubscribeLoad subs(o, acks, base);
  if (!subs.connect_all()) return 1;
  subs.start();

  AppendLoad load(o, &acks);
  if (!load.connect_all()) return 1;
  Progress p("subscribe");
  p.start([&] { return load.acked(); },
          [&] { return fmt::format(" slowest subscriber {} events", subs.slowest()); });
  AppendResult r = load.run();
  auto info2 = ctl->info();
  const std::uint64_t end = info2 ? info2->durable_end : base + r.total_events;
  const auto settle_start = Clock::now();
  SubscribeResult sr = subs.finish(end, o.settle);
  const double settle_s = std::chrono::duration<double>(Clock::now() - settle_start).count();
  p.stop();
  const Histogram& delay = sr.delay;
  const unsigned complete = sr.complete;
  const std::uint64_t min_received = sr.min_received;
  const std::uint64_t before_ack = sr.before_ack;
  const std::string& first_error = sr.first_error;
  const bool all_complete = complete == o.subscribers;
  if (o.json) {
    std::printf(
        "{\"command\":\"subscribe\",\"label\":\"%s\",\"subscribers\":%u,%s,%s,\"expected_events\":"
        "%" PRIu64 ",\"subscribers_complete\":%u,\"all_complete\":%s,\"min_received\":%" PRIu64
        ",\"delivered_before_ack\":%" PRIu64
        ",\"settle_s\":%.3f,\"first_error\":\"%s\",\"delay\":%s}\n",
        o.label.c_str(), o.subscribers, load_json(o).c_str(), append_json(o, r).c_str(), end - base,
        complete, all_complete ? "true" : "false", min_received, before_ack, settle_s,
        first_error.c_str(), latency_json(delay).c_str());
  } else {
    print_append_text(o, r);
    std::printf("subscribe: %u subscribers, %u/%u received all %" PRIu64 " events (slowest %" PRIu64
                "), %.2f s to settle\n",
                o.subscribers, complete, o.subscribers, end - base, min_received, settle_s);
    std::printf("  ack -> delivery delay: %s; %" PRIu64 " deliveries came before the ack\n",
                latency_text(delay).c_str(), before_ack);
    if (!first_error.empty()) std::printf("  first problem: %s\n", first_error.c_str());
  }
  return all_complete && r.errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace annal::bench

namespace annal::tools {

int run_bench_command(const std::vector<std::string>& args) {
  using namespace annal::bench;
  if (args.size() < 2 || args[1] == "--help" || args[1] == "-h") return usage("", "");
  std::string why;
  auto o = parse(args, why);
  if (!o) return usage(args[1], why);
  const std::string& mode = args[1];
  if (mode == "append" || mode == "read-query") return cmd_append(*o);
  if (mode == "read-stream") return cmd_read(*o, false);
  if (mode == "read-all") return cmd_read(*o, true);
  if (mode == "subscribe") return cmd_subscribe(*o);
  return usage("", "unknown bench mode '" + mode + "'");
}

}  // namespace annal::tools
