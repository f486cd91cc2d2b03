// `annal bench`: a load generator against a running node, built on the
// client library (net/client.h). See docs/benchmarks.md.
//
//   annal bench append      [common] [load]
//   annal bench read-stream [common] --stream NAME [--in-flight P]
//   annal bench read-all    [common] [--from POS] [--count N] [--in-flight P]
//   annal bench subscribe   [common] [load] --subscribers N
//
// The generator keeps P requests in flight per connection by issuing the next
// request from the completion callback of the previous one (on the client's
// reader thread), so each connection costs one thread and no extra wake-ups:
// on a small machine the generator competes with the node for the CPU, and it
// should take as little of it as it can.
//
// Figures: throughput counts what was acknowledged inside the measurement
// window (after --warmup, before the deadline); latencies are from handing
// the request to the client library to its acknowledgement callback.

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/format.h"
#include "engine/record.h"
#include "net/client.h"
#include "tools/cli.h"

namespace annal::tools {
namespace {

using Clock = std::chrono::steady_clock;
using net::Client;
namespace proto = net::proto;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// ---- Latency histogram -------------------------------------------------------
// Log-linear buckets: exact below 128 ns, then 64 sub-buckets per power of two
// (< 1.6% relative error). The maximum is kept exactly. Not thread-safe: one
// per thread, merged at the end.
class Histogram {
 public:
  static constexpr int kSub = 64;
  Histogram() : buckets_(64 * kSub + 2 * kSub, 0) {}
  void record(std::int64_t v) {
    if (v < 0) v = 0;
    const auto u = static_cast<std::uint64_t>(v);
    ++buckets_[index(u)];
    ++count_;
    max_ = std::max(max_, u);
    sum_ += static_cast<double>(u);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }
  std::uint64_t count() const { return count_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  std::uint64_t max() const { return max_; }
  // Value at quantile q in [0, 1] (the bucket's midpoint, capped at max).
  std::uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(midpoint(i), max_);
    }
    return max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);  // >= 7
    const int shift = msb - 6;                 // v >> shift in [64, 128)
    return static_cast<std::size_t>(shift) * kSub + static_cast<std::size_t>(v >> shift);
  }
  static std::uint64_t midpoint(std::size_t i) {
    if (i < 2 * kSub) return i;
    const std::size_t shift = i / kSub - 1;
    const std::uint64_t mant = i % kSub + kSub;
    return (mant << shift) + ((std::uint64_t{1} << shift) >> 1);
  }
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

std::string latency_json(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  return fmt::format(
      "{{\"count\":{},\"mean_ms\":{:.4f},\"p50_ms\":{:.4f},\"p90_ms\":{:.4f},\"p99_ms\":{:.4f},"
      "\"p999_ms\":{:.4f},\"max_ms\":{:.4f}}}",
      h.count(), h.mean() / 1e6, ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)),
      ms(h.quantile(0.999)), ms(h.max()));
}

std::string latency_text(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  return fmt::format("p50 {:.3f} ms  p90 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}  (n={})",
                     ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)),
                     ms(h.quantile(0.999)), ms(h.max()), h.count());
}

// ---- Options -------------------------------------------------------------------

struct Options {
  std::string host = "127.0.0.1:7411";
  bool json = false;
  std::string label;
  // load
  unsigned connections = 1;
  unsigned in_flight = 1;
  unsigned batch = 1;      // events per append
  std::size_t size = 256;  // bytes of JSON data per event
  std::uint64_t streams = 1000;
  std::string stream_prefix = "bench";
  bool zipf = false;
  double zipf_s = 0.99;
  double duration = 10;       // seconds; ignored when count is set
  std::uint64_t count = 0;    // events (append) or events to read (read-all)
  double warmup = 1;          // seconds not measured at the start
  std::uint64_t seed = 0;     // 0: random (event ids must differ between runs)
  std::uint64_t fill_to = 0;  // append: only as many events as bring the log to this end
  // read
  std::string stream;
  std::uint64_t from = 0;
  unsigned chunk = 1000;  // events asked per read request
  // subscribe
  unsigned subscribers = 10;
  double settle = 30;  // seconds subscribers may take to catch up at the end
};

int usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "annal bench: %s\n", why.c_str());
  std::fprintf(stderr,
               "usage: annal bench append|read-stream|read-all|subscribe [options]\n"
               "common:    --host HOST:PORT (127.0.0.1:7411)  --json  --label TEXT\n"
               "append/subscribe load:\n"
               "           --connections C (1)  --in-flight P (1)  --batch E (1)  --size S (256)\n"
               "           --streams N (1000)  --stream-prefix P (bench)  --dist uniform|zipf  "
               "--zipf-s X (0.99)\n"
               "           --duration SEC (10) | --count EVENTS | --fill-to POSITION   --warmup "
               "SEC (1)  --seed N\n"
               "read-stream: --stream NAME  --in-flight P (8)  --chunk K (1000)\n"
               "read-all:    --from POS (0)  --count N (all)  --in-flight P (8)  --chunk K (1000)\n"
               "subscribe:   --subscribers N (10)  --settle SEC (30) plus the load options\n");
  return 2;
}

std::optional<Options> parse(const std::vector<std::string>& args, std::string& why) {
  Options o;
  bool in_flight_set = false;
  for (std::size_t i = 2; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    auto num = [&](auto& out) -> bool {
      auto v = value();
      if (!v) return false;
      try {
        std::size_t used = 0;
        if constexpr (std::is_floating_point_v<std::remove_reference_t<decltype(out)>>) {
          out = std::stod(*v, &used);
        } else {
          out = static_cast<std::remove_reference_t<decltype(out)>>(std::stoull(*v, &used));
        }
        return used == v->size();
      } catch (const std::exception&) {
        return false;
      }
    };
    bool ok = true;
    if (a == "--json")
      o.json = true;
    else if (a == "--host") {
      auto v = value();
      ok = v.has_value();
      if (ok) o.host = *v;
    } else if (a == "--label") {
      auto v = value();
      ok = v.has_value();
      if (ok) o.label = *v;
    } else if (a == "--stream") {
      auto v = value();
      ok = v.has_value();
      if (ok) o.stream = *v;
    } else if (a == "--stream-prefix") {
      auto v = value();
      ok = v.has_value();
      if (ok) o.stream_prefix = *v;
    } else if (a == "--dist") {
      auto v = value();
      ok = v && (*v == "uniform" || *v == "zipf");
      if (ok) o.zipf = *v == "zipf";
    } else if (a == "--connections")
      ok = num(o.connections) && o.connections > 0;
    else if (a == "--in-flight") {
      ok = num(o.in_flight) && o.in_flight > 0;
      in_flight_set = true;
    } else if (a == "--batch")
      ok = num(o.batch) && o.batch > 0;
    else if (a == "--size")
      ok = num(o.size) && o.size >= 16;
    else if (a == "--streams")
      ok = num(o.streams) && o.streams > 0;
    else if (a == "--zipf-s")
      ok = num(o.zipf_s) && o.zipf_s > 0;
    else if (a == "--duration")
      ok = num(o.duration) && o.duration > 0;
    else if (a == "--count")
      ok = num(o.count);
    else if (a == "--warmup")
      ok = num(o.warmup) && o.warmup >= 0;
    else if (a == "--seed")
      ok = num(o.seed);
    else if (a == "--fill-to")
      ok = num(o.fill_to) && o.fill_to > 0;
    else if (a == "--from")
      ok = num(o.from);
    else if (a == "--chunk")
      ok = num(o.chunk) && o.chunk > 0;
    else if (a == "--subscribers")
      ok = num(o.subscribers) && o.subscribers > 0;
    else if (a == "--settle")
      ok = num(o.settle) && o.settle > 0;
    else {
      why = "unknown option " + a;
      return std::nullopt;
    }
    if (!ok) {
      why = "bad or missing value for " + a;
      return std::nullopt;
    }
  }
  if ((args[1] == "read-stream" || args[1] == "read-all") && !in_flight_set) o.in_flight = 8;
  if (o.count > 0) o.warmup = 0;  // a fixed amount of work is measured whole
  return o;
}

std::unique_ptr<Client> connect(const Options& o, const std::string& name) {
  auto hp = net::parse_host_port(o.host);
  if (!hp) {
    std::fprintf(stderr, "annal bench: --host must be HOST:PORT, got '%s'\n", o.host.c_str());
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

// ---- Event generation ------------------------------------------------------------

// JSON data of exactly `size` bytes: {"seq":N,"pad":"xxx..."}.
std::string json_data(std::uint64_t seq, std::size_t size) {
  std::string head = fmt::format("{{\"seq\":{},\"pad\":\"", seq);
  std::string s = head;
  const std::size_t tail = 2;  // "}
  if (size > head.size() + tail) s.append(size - head.size() - tail, 'x');
  s += "\"}";
  return s;
}

EventId fast_id(std::mt19937_64& rng) {
  EventId id;
  const std::uint64_t a = rng(), b = rng();
  for (int k = 0; k < 8; ++k) {
    id.bytes[k] = static_cast<std::uint8_t>(a >> (8 * k));
    id.bytes[8 + k] = static_cast<std::uint8_t>(b >> (8 * k));
  }
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x40);
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);
  return id;
}

// Chooses streams uniformly or by a Zipf law (rank k with weight 1/k^s).
class StreamChooser {
 public:
  StreamChooser(const Options& o) : n_(o.streams) {
    if (!o.zipf) return;
    cdf_.resize(n_);
    double sum = 0;
    for (std::uint64_t k = 0; k < n_; ++k) {
      sum += 1.0 / std::pow(static_cast<double>(k + 1), o.zipf_s);
      cdf_[k] = sum;
    }
    for (auto& c : cdf_) c /= sum;
  }
  std::uint64_t pick(std::mt19937_64& rng) const {
    if (cdf_.empty()) return rng() % n_;
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<std::uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::uint64_t n_;
  std::vector<double> cdf_;
};

// Acknowledgement time per global position, for the subscription delay.
// Chunks are allocated on first use; lookups never lock.
class AckTimes {
 public:
  static constexpr std::uint64_t kChunk = 1u << 16;
  static constexpr std::uint64_t kChunks = 1u << 16;
  explicit AckTimes(std::uint64_t base) : base_(base), chunks_(kChunks) {}
  ~AckTimes() {
    for (auto& c : chunks_) delete[] c.load();
  }
  void set(std::uint64_t position, std::int64_t t) {
    if (position < base_) return;
    auto* c = chunk((position - base_) / kChunk, true);
    if (c) c[(position - base_) % kChunk].store(t, std::memory_order_release);
  }
  // 0 if not acknowledged (yet).
  std::int64_t get(std::uint64_t position) {
    if (position < base_) return 0;
    auto* c = chunk((position - base_) / kChunk, false);
    return c ? c[(position - base_) % kChunk].load(std::memory_order_acquire) : 0;
  }

 private:
  std::atomic<std::int64_t>* chunk(std::uint64_t i, bool create) {
    if (i >= kChunks) return nullptr;
    auto* c = chunks_[i].load(std::memory_order_acquire);
    if (c || !create) return c;
    auto* fresh = new std::atomic<std::int64_t>[kChunk];
    for (std::uint64_t k = 0; k < kChunk; ++k) fresh[k].store(0, std::memory_order_relaxed);
    if (chunks_[i].compare_exchange_strong(c, fresh)) return fresh;
    delete[] fresh;
    return c;
  }
  std::uint64_t base_;
  std::vector<std::atomic<std::atomic<std::int64_t>*>> chunks_;
};

// ---- append --------------------------------------------------------------------

struct AppendResult {
  std::uint64_t events = 0;  // acknowledged inside the window
  std::uint64_t appends = 0;
  std::uint64_t errors = 0;
  std::uint64_t total_events = 0;  // acknowledged in the whole run
  double seconds = 0;              // window length
  Histogram latency;
  std::string first_error;
};

class AppendLoad {
 public:
  AppendLoad(const Options& o, AckTimes* acks) : o_(o), chooser_(o), acks_(acks) {}

  bool connect_all() {
    for (unsigned i = 0; i < o_.connections; ++i) {
      auto c = connect(o_, fmt::format("annal-bench-append-{}", i));
      if (!c) return false;
      if (c->hello().max_in_flight < o_.in_flight) {
        std::fprintf(stderr, "annal bench: --in-flight %u exceeds the node's max_in_flight %u\n",
                     o_.in_flight, c->hello().max_in_flight);
        return false;
      }
      auto conn = std::make_unique<Conn>();
      conn->client = std::move(c);
      // Event ids come from this generator: a fixed --seed repeats the ids of
      // an earlier run, which the node then treats as retries (or conflicts).
      conn->rng.seed(o_.seed != 0
                         ? o_.seed * 1000003 + i
                         : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
      conns_.push_back(std::move(conn));
    }
    return true;
  }

  std::uint64_t acked() const { return acked_.load(std::memory_order_relaxed); }

  AppendResult run() {
    t_begin_ = now_ns();
    t_measure_ = t_begin_ + static_cast<std::int64_t>(o_.warmup * 1e9);
    t_end_ = o_.count > 0 ? INT64_MAX : t_measure_ + static_cast<std::int64_t>(o_.duration * 1e9);
    for (auto& c : conns_)
      for (unsigned k = 0; k < o_.in_flight; ++k) issue(*c);
    // Wait for the deadline (or the count), then for what is in flight.
    {
      std::unique_lock lk(mu_);
      while (!stopping_.load()) {
        if (o_.count == 0 && now_ns() >= t_end_) break;
        cv_.wait_for(lk, std::chrono::milliseconds(5));
      }
    }
    const std::int64_t stopped = std::min(now_ns(), t_end_);
    stopping_.store(true);
    for (auto& c : conns_) c->client->drain();
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return outstanding_ == 0; });
    }
    AppendResult r;
    const std::int64_t window_end =
        o_.count > 0 && last_ack_.load() > 0 ? last_ack_.load() : stopped;
    r.seconds = static_cast<double>(window_end - t_measure_) / 1e9;
    for (auto& c : conns_) {
      std::lock_guard lk(c->mu);
      r.events += c->events;
      r.appends += c->appends;
      r.errors += c->errors;
      r.latency.merge(c->latency);
      if (r.first_error.empty()) r.first_error = c->first_error;
    }
    r.total_events = acked_.load();
    return r;
  }

 private:
  struct Conn {
    std::unique_ptr<Client> client;
    std::mutex mu;  // everything below: issue() runs on the main and the reader thread
    std::mt19937_64 rng;
    Histogram latency;
    std::uint64_t events = 0, appends = 0, errors = 0;
    std::string first_error;
  };

  void issue(Conn& c) {
    if (o_.count > 0) {
      const std::uint64_t taken = issued_.fetch_add(o_.batch);
      if (taken >= o_.count) {
        stopping_.store(true);
        cv_.notify_all();
        return;
      }
    }
    if (stopping_.load(std::memory_order_relaxed)) return;
    proto::AppendReq req;
    {
      std::lock_guard lk(c.mu);
      req.stream = fmt::format("{}-{}", o_.stream_prefix, chooser_.pick(c.rng));
      req.expected = ExpectedRevision::any();
      req.events.reserve(o_.batch);
      for (unsigned e = 0; e < o_.batch; ++e) {
        index::NewEvent ev;
        ev.id = fast_id(c.rng);
        ev.type = "BenchEvent";
        ev.flags = engine::format::kFlagDataJson;
        ev.data = json_data(seq_.fetch_add(1, std::memory_order_relaxed), o_.size);
        req.events.push_back(std::move(ev));
      }
    }
    {
      std::lock_guard lk(mu_);
      ++outstanding_;
    }
    const std::int64_t sent = now_ns();
    c.client->append_async(req, [this, &c, sent](net::Reply<proto::AppendOk> reply) {
      const std::int64_t t = now_ns();
      if (reply.ok()) {
        acked_.fetch_add(reply->count, std::memory_order_relaxed);
        if (acks_)
          for (std::uint32_t k = 0; k < reply->count; ++k) acks_->set(reply->first_position + k, t);
        last_ack_.store(t, std::memory_order_relaxed);
      }
      {
        std::lock_guard lk(c.mu);
        if (!reply.ok()) {
          ++c.errors;
          if (c.first_error.empty()) c.first_error = reply.error_string();
        } else if (t >= t_measure_ && t <= t_end_) {
          ++c.appends;
          c.events += reply->count;
          c.latency.record(t - sent);
        }
      }
      if (!reply.ok() && reply.error().code == proto::Code::kConnectionLost) {
        stopping_.store(true);
      } else if (t < t_end_) {
        issue(c);
      }
      std::lock_guard lk(mu_);
      if (--outstanding_ == 0 || stopping_.load()) cv_.notify_all();
    });
  }

  const Options& o_;
  StreamChooser chooser_;
  AckTimes* acks_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::int64_t t_begin_ = 0, t_measure_ = 0, t_end_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> issued_{0};
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::int64_t> last_ack_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t outstanding_ = 0;
};

// Bytes one event of the load occupies in a segment (for comparing with the
// disk's bandwidth).
std::size_t record_bytes(const Options& o) {
  engine::EventRecord r;
  r.stream = fmt::format("{}-{}", o.stream_prefix, o.streams - 1);
  r.type = "BenchEvent";
  r.flags = engine::format::kFlagDataJson;
  r.data = json_data(1'000'000, o.size);
  return engine::encoded_size(r);
}

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
      "\"appends_per_s\":{:.1f},\"data_mb_per_s\":{:.3f},\"record_mb_per_s\":{:.3f},\"latency\":{}",
      r.seconds, r.events, r.total_events, r.appends, r.errors, eps,
      r.seconds > 0 ? static_cast<double>(r.appends) / r.seconds : 0,
      eps * static_cast<double>(o.size) / 1e6, eps * static_cast<double>(record_bytes(o)) / 1e6,
      latency_json(r.latency));
}

void print_append_text(const Options& o, const AppendResult& r) {
  const double eps = r.seconds > 0 ? static_cast<double>(r.events) / r.seconds : 0;
  std::printf("append: %u conn x %u in flight, %u events/append, %zu B, %" PRIu64 " streams (%s)\n",
              o.connections, o.in_flight, o.batch, o.size, o.streams, o.zipf ? "zipf" : "uniform");
  std::printf("  %.0f events/s  %.0f appends/s  %.2f MB/s data  %.2f MB/s on disk  (%" PRIu64
              " events in %.2f s, %" PRIu64 " errors)\n",
              eps, static_cast<double>(r.appends) / std::max(r.seconds, 1e-9),
              eps * static_cast<double>(o.size) / 1e6,
              eps * static_cast<double>(record_bytes(o)) / 1e6, r.events, r.seconds, r.errors);
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
    std::printf("{\"command\":\"append\",\"label\":\"%s\",%s,%s}\n", o.label.c_str(),
                load_json(o).c_str(), append_json(o, r).c_str());
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
    auto cb = [&, f, n, sent](net::Reply<proto::ReadOk> reply) {
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
      c.read_all_async(q, cb);
    } else {
      proto::ReadStreamReq q;
      q.stream = o.stream;
      q.from = f;
      q.count = static_cast<std::uint32_t>(n);
      c.read_stream_async(q, cb);
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
  if (!all && o.stream.empty()) return usage("read-stream needs --stream NAME");
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
// N subscribers on the global log from the current end, each on its own
// connection with its own consumer thread, while an append load runs. Delay:
// from the appender's acknowledgement of a position to the subscriber's
// receipt of it (0 when the delivery came first).

struct Subscriber {
  std::unique_ptr<Client> client;
  std::unique_ptr<net::Subscription> sub;
  std::thread thread;
  Histogram delay;
  std::uint64_t next = 0;  // position expected next
  std::uint64_t received = 0;
  std::uint64_t before_ack = 0;
  std::string error;  // written by the consumer thread; read after join
  std::atomic<bool> failed{false};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> progress{0};
};

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
  std::atomic<std::uint64_t> final_end{UINT64_MAX};
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (unsigned i = 0; i < o.subscribers; ++i) {
    auto s = std::make_unique<Subscriber>();
    s->client = connect(o, fmt::format("annal-bench-sub-{}", i));
    if (!s->client) return 1;
    proto::SubscribeReq q;
    q.target = proto::Target::kAll;
    q.from = base;
    auto sub = s->client->subscribe(q);
    if (!sub) {
      std::fprintf(stderr, "annal bench: subscribe: %s\n", sub.error_string().c_str());
      return 1;
    }
    s->sub = std::move(sub).value();
    s->next = base;
    subs.push_back(std::move(s));
  }
  for (auto& sp : subs) {
    Subscriber* s = sp.get();
    s->thread = std::thread([s, &acks, &final_end] {
      while (true) {
        const std::uint64_t fe = final_end.load();
        if ((fe != UINT64_MAX && s->next >= fe) || s->stop.load()) return;
        auto m = s->sub->next(std::chrono::milliseconds(100));
        if (!m) continue;
        if (m->kind == net::Subscription::Message::Kind::kEnded) {
          s->error = net::error_string(m->error);
          s->failed.store(true);
          return;
        }
        if (m->kind != net::Subscription::Message::Kind::kEvents) continue;
        const std::int64_t t = now_ns();
        for (const auto& e : m->events) {
          if (e.position.value != s->next) {
            if (s->error.empty())
              s->error = fmt::format("expected position {}, got {}", s->next, e.position.value);
            s->failed.store(true);
            if (e.position.value < s->next) continue;  // duplicate
          }
          s->next = e.position.value + 1;
          ++s->received;
          const std::int64_t a = acks.get(e.position.value);
          if (a == 0 || a > t) {
            ++s->before_ack;
            s->delay.record(0);
          } else {
            s->delay.record(t - a);
          }
        }
        s->progress.store(s->received, std::memory_order_relaxed);
      }
    });
  }

  AppendLoad load(o, &acks);
  if (!load.connect_all()) return 1;
  Progress p("subscribe");
  p.start([&] { return load.acked(); },
          [&] {
            std::uint64_t lo = UINT64_MAX;
            for (auto& s : subs) lo = std::min(lo, s->progress.load());
            return fmt::format(" slowest subscriber {} events", lo);
          });
  AppendResult r = load.run();
  auto info2 = ctl->info();
  const std::uint64_t end = info2 ? info2->durable_end : base + r.total_events;
  final_end.store(end);
  const auto settle_start = Clock::now();
  // Wait for the subscribers to reach the end (bounded by --settle).
  for (auto& s : subs) {
    while (s->progress.load() < end - base && !s->failed.load() &&
           Clock::now() - settle_start < std::chrono::duration<double>(o.settle))
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double settle_s = std::chrono::duration<double>(Clock::now() - settle_start).count();
  p.stop();
  // Stop the consumers that did not finish (they poll every 100 ms).
  for (auto& s : subs) s->stop.store(true);
  for (auto& s : subs) s->thread.join();
  for (auto& s : subs)
    if (s->error.empty() && s->received != end - base)
      s->error = fmt::format("received {} of {} events", s->received, end - base);

  Histogram delay;
  unsigned complete = 0;
  std::uint64_t min_received = UINT64_MAX, before_ack = 0;
  std::string first_error;
  for (auto& s : subs) {
    delay.merge(s->delay);
    min_received = std::min(min_received, s->received);
    before_ack += s->before_ack;
    if (s->error.empty() && s->received == end - base)
      ++complete;
    else if (first_error.empty())
      first_error = s->error;
  }
  const bool all_complete = complete == subs.size();
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
    std::printf("subscribe: %u subscribers, %u/%zu received all %" PRIu64
                " events (slowest %" PRIu64 "), %.2f s to settle\n",
                o.subscribers, complete, subs.size(), end - base, min_received, settle_s);
    std::printf("  ack -> delivery delay: %s; %" PRIu64 " deliveries came before the ack\n",
                latency_text(delay).c_str(), before_ack);
    if (!first_error.empty()) std::printf("  first problem: %s\n", first_error.c_str());
  }
  return all_complete && r.errors == 0 ? 0 : 1;
}

}  // namespace

int run_bench_command(const std::vector<std::string>& args) {
  if (args.size() < 2 || args[1] == "--help" || args[1] == "-h") return usage("");
  std::string why;
  auto o = parse(args, why);
  if (!o) return usage(why);
  const std::string& mode = args[1];
  if (mode == "append") return cmd_append(*o);
  if (mode == "read-stream") return cmd_read(*o, false);
  if (mode == "read-all") return cmd_read(*o, true);
  if (mode == "subscribe") return cmd_subscribe(*o);
  return usage("unknown bench mode '" + mode + "'");
}

}  // namespace annal::tools
