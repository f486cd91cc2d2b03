#include "bench/load/options.h"

#include <cstdio>
#include <exception>
#include <string>
#include <type_traits>

namespace annal::bench {

namespace {

constexpr const char* kCommon =
    "  --server HOST:PORT   the node (127.0.0.1:7411; --host is the same)\n"
    "  --json               one JSON object on stdout instead of text\n"
    "  --label TEXT         copied into the JSON\n";
constexpr const char* kLoad =
    "  --connections C (1)  --in-flight P (1, per connection)  --threads T (1: the\n"
    "                       generator's network threads; connections are spread over them)\n"
    "  --batch E (1 event per append)  --size S (256 bytes of JSON data per event)\n"
    "  --tags T (0 tags per event: k0:N .. kT-1:N)  --tag-values N (1000 values of each)\n"
    "  --condition (each append: fail if an event with its first two tags exists; --tags 2+)\n"
    "  --condition-after (the same, counting only events after the newest position the\n"
    "                    connection has seen acknowledged)\n"
    "  --streams N (1000)  --stream-prefix P (bench)  --dist uniform|zipf  --zipf-s X (0.99)\n"
    "  --duration SEC (10) | --count EVENTS | --fill-to POSITION   --warmup SEC (1)\n"
    "  --seed N (0: random event ids; a fixed seed repeats an earlier run's ids)\n";

void mode_usage(const std::string& mode) {
  if (mode == "append") {
    std::fprintf(stderr,
                 "usage: annal bench append [options]\n"
                 "Appends as fast as the node acknowledges, P requests in flight per "
                 "connection; prints throughput and ack latency.\n%s%s",
                 kCommon, kLoad);
  } else if (mode == "read-stream") {
    std::fprintf(stderr,
                 "usage: annal bench read-stream --stream NAME [options]\n"
                 "Reads one stream from revision 0 to its end, checking every event.\n%s"
                 "  --in-flight P (8)  --chunk K (1000 events per request)\n",
                 kCommon);
  } else if (mode == "read-all") {
    std::fprintf(stderr,
                 "usage: annal bench read-all [options]\n"
                 "Reads the global log in order, checking every position arrives once.\n%s"
                 "  --from POS (0)  --count N (all)  --in-flight P (8)  --chunk K (1000)\n",
                 kCommon);
  } else if (mode == "read-query") {
    std::fprintf(
        stderr,
        "usage: annal bench read-query [options]\n"
        "Reads the events of one tag k0:N (N random), P requests in flight per "
        "connection, as a decision model does; prints reads/s and events/s.\n%s"
        "  --connections C (1)  --in-flight P (1)  --threads T (1)  --tag-values N (1000)\n"
        "  --chunk K (1000 events per read)  --duration SEC (10)  --warmup SEC (1)\n",
        kCommon);
  } else if (mode == "subscribe") {
    std::fprintf(stderr,
                 "usage: annal bench subscribe [options]\n"
                 "N live subscribers of the global log during an append load; prints the "
                 "delivery delay.\n%s  --subscribers N (10)  --settle SEC (30)\n%s",
                 kCommon, kLoad);
  }
}

}  // namespace

int usage(const std::string& mode, const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "annal bench: %s\n", why.c_str());
  if (mode == "append" || mode == "read-stream" || mode == "read-all" || mode == "subscribe" ||
      mode == "read-query") {
    mode_usage(mode);
  } else {
    std::fprintf(stderr,
                 "usage: annal bench append|read-stream|read-all|read-query|subscribe [options]\n"
                 "       annal bench MODE --help   the options of one mode\n");
  }
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
    auto text = [&](std::string& out) -> bool {
      auto v = value();
      if (v) out = *v;
      return v.has_value();
    };
    bool ok = true;
    if (a == "--json")
      o.json = true;
    else if (a == "--help" || a == "-h") {
      why = "";
      return std::nullopt;
    } else if (a == "--host" || a == "--server") {
      ok = text(o.host);
    } else if (a == "--label") {
      ok = text(o.label);
    } else if (a == "--stream") {
      ok = text(o.stream);
    } else if (a == "--stream-prefix") {
      ok = text(o.stream_prefix);
    } else if (a == "--dist") {
      auto v = value();
      ok = v && (*v == "uniform" || *v == "zipf");
      if (ok) o.zipf = *v == "zipf";
    } else if (a == "--connections")
      ok = num(o.connections) && o.connections > 0;
    else if (a == "--threads")
      ok = num(o.threads) && o.threads > 0 && o.threads <= 64;
    else if (a == "--in-flight") {
      ok = num(o.in_flight) && o.in_flight > 0;
      in_flight_set = true;
    } else if (a == "--batch")
      ok = num(o.batch) && o.batch > 0;
    else if (a == "--tags")
      ok = num(o.tags) && o.tags <= 32;
    else if (a == "--tag-values")
      ok = num(o.tag_values) && o.tag_values > 0;
    else if (a == "--condition")
      o.condition = true;
    else if (a == "--condition-after")
      o.condition = o.condition_after = true;
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
  o.query_reads = args[1] == "read-query";
  if (o.condition && o.tags < 2) {
    why = "--condition needs --tags 2 or more";
    return std::nullopt;
  }
  return o;
}

}  // namespace annal::bench
