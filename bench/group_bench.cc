// Consumer-group delivery throughput (docs/consumer-groups.md), against a
// running node: fills the log with N one-event appends (written 100 per
// append_multi, one event in each of 100 streams) over 1,000 streams, then in one run prints
// events/s acked, and the node's and this generator's CPU per event, for a plain subscription of
// the whole log, and for a group of the whole log with 1 and 8 consumers, round robin and ordered
// by stream. Target (issue #15): ordered >= 50% of round robin with 8 consumers and 1,000 keys.
// bench/groups.sh starts the node.
//
//   annal_group_bench --server 127.0.0.1:PORT --node-pid PID [--events N]
//                     [--max-in-flight N]
#include <fmt/format.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "net/client.h"

namespace {

using namespace annal;
using Clock = std::chrono::steady_clock;
using Kind = net::Subscription::Message::Kind;

double node_cpu_seconds(int pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::size_t at = close + 2;
  while (at < s.size()) {
    const auto sp = s.find(' ', at);
    fields.push_back(s.substr(at, sp - at));
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  // utime and stime are fields 14 and 15 (1-based), 12 and 13 after ')'.
  const double ticks = std::stod(fields.at(11)) + std::stod(fields.at(12));
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::unique_ptr<net::Client> connect(const std::string& server) {
  auto hp = net::parse_host_port(server);
  if (!hp) {
    std::fprintf(stderr, "bad --server %s\n", server.c_str());
    std::exit(2);
  }
  net::ClientOptions o;
  o.host = hp->first;
  o.port = hp->second;
  o.subscription_queue = 256;
  auto c = net::Client::connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "connect: %s\n", c.error_string().c_str());
    std::exit(1);
  }
  return std::move(c.value());
}

struct Figures {
  double seconds = 0;
  double node_cpu = 0;
  double self_cpu = 0;
};

template <class F>
Figures measure(int pid, F&& body) {
  const double n0 = node_cpu_seconds(pid), s0 = self_cpu_seconds();
  const auto t0 = Clock::now();
  body();
  Figures f;
  f.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  f.node_cpu = node_cpu_seconds(pid) - n0;
  f.self_cpu = self_cpu_seconds() - s0;
  return f;
}

void print(const char* label, std::uint64_t events, const Figures& f) {
  std::printf("%-34s %10.0f events/s  node %6.2f us/event  generator %6.2f us/event  (%.2f s)\n",
              label, static_cast<double>(events) / f.seconds, f.node_cpu * 1e6 / events,
              f.self_cpu * 1e6 / events, f.seconds);
  std::fflush(stdout);
}

void fill(const std::string& server, std::uint64_t events) {
  auto c = connect(server);
  std::atomic<std::uint64_t> done{0};
  std::atomic<bool> failed{false};
  const std::uint64_t appends = (events + 99) / 100;
  for (std::uint64_t a = 0; a < appends; ++a) {
    // 100 streams of one event each per append: every stream has events
    // throughout the log (the ordered strategy's keys, 1,000 of them).
    net::proto::AppendMultiReq req;
    for (std::uint64_t i = 0; i < 100 && a * 100 + i < events; ++i) {
      const std::uint64_t n = a * 100 + i;
      index::NewEvent e;
      e.id = EventId::random();
      e.type = "Tick";
      e.data = fmt::format("{{\"i\":{},\"pad\":\"{}\"}}", n, std::string(200, 'x'));
      req.streams.push_back(index::StreamAppend{
          fmt::format("k-{}", n % 1000), ExpectedRevision::any(), {std::move(e)}});
    }
    c->append_multi_async(req, [&](net::Reply<net::AppendMultiOutcome> r) {
      if (!r.ok() || !r->written()) failed = true;
      ++done;
    });
  }
  c->drain();
  if (failed) {
    std::fprintf(stderr, "fill failed\n");
    std::exit(1);
  }
}

void plain_subscription(const std::string& server, std::uint64_t events) {
  auto c = connect(server);
  net::proto::SubscribeReq req;
  req.target = net::proto::Target::kAll;
  req.from = 0;
  auto sub = c->subscribe(req);
  if (!sub.ok()) std::exit(1);
  std::uint64_t got = 0;
  while (got < events) {
    auto m = (*sub)->next(std::chrono::seconds(10));
    if (!m || m->kind == Kind::kEnded) std::exit(1);
    got += m->events.size();
  }
}

void group_run(const std::string& server, const std::string& name, groups::Strategy strategy,
               int consumers, std::uint32_t max_in_flight, std::uint64_t events) {
  auto admin = connect(server);
  groups::Settings s;
  s.target = groups::Target::kAll;
  s.strategy = strategy;
  s.max_in_flight = max_in_flight;
  if (auto r = admin->group_create(name, s); !r.ok()) {
    std::fprintf(stderr, "group_create: %s\n", r.error_string().c_str());
    std::exit(1);
  }
  // Consumers ack everything they get until the group's checkpoint says
  // every event below `events` is acked (the main thread watches).
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int k = 0; k < consumers; ++k)
    threads.emplace_back([&] {
      auto c = connect(server);
      auto m = c->group_join(name);
      if (!m.ok()) std::exit(1);
      std::vector<std::uint64_t> ps;
      while (!done.load()) {
        auto msg = (*m)->next(std::chrono::milliseconds(20));
        if (!msg) continue;
        if (msg->kind == Kind::kEnded) std::exit(1);
        ps.clear();
        for (const auto& e : msg->events) ps.push_back(e.position.value);
        (*m)->ack(ps);
      }
    });
  for (;;) {
    auto i = admin->group_info(name);
    if (i.ok() && i->checkpoint >= events) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  done = true;
  for (auto& t : threads) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:7411";
  int pid = 0;
  std::uint64_t events = 200'000;
  std::uint32_t max_in_flight = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--server")
      server = v;
    else if (k == "--node-pid")
      pid = std::stoi(v);
    else if (k == "--events")
      events = std::stoull(v);
    else if (k == "--max-in-flight")
      max_in_flight = static_cast<std::uint32_t>(std::stoul(v));
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (pid == 0) {
    std::fprintf(stderr, "--node-pid is required\n");
    return 2;
  }
  std::printf("filling %llu events (1,000 streams)\n", static_cast<unsigned long long>(events));
  print("fill (100-stream append_multi)", events, measure(pid, [&] { fill(server, events); }));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  print("plain subscription, whole log", events,
        measure(pid, [&] { plain_subscription(server, events); }));
  struct Item {
    const char* label;
    groups::Strategy strategy;
    int consumers;
  };
  const Item items[] = {
      {"group round-robin, 1 consumer", groups::Strategy::kRoundRobin, 1},
      {"group round-robin, 8 consumers", groups::Strategy::kRoundRobin, 8},
      {"group ordered, 1 consumer", groups::Strategy::kOrdered, 1},
      {"group ordered, 8 consumers", groups::Strategy::kOrdered, 8},
  };
  int n = 0;
  // ANNAL_GROUP_ONLY=N runs only item N (0-3) of the group items, for profiling.
  const char* only = std::getenv("ANNAL_GROUP_ONLY");
  for (const auto& it : items) {
    if (only && std::to_string(n) != only) {
      ++n;
      continue;
    }
    const std::string name = fmt::format("bench-{}", n++);
    print(it.label, events, measure(pid, [&] {
            group_run(server, name, it.strategy, it.consumers, max_in_flight, events);
          }));
  }
  return 0;
}
