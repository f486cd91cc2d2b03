#pragma once
// Options of `annal bench` and their parser.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace annal::bench {

struct Options {
  std::string host = "127.0.0.1:7411";
  bool json = false;
  std::string label;
  // load
  unsigned connections = 1;
  unsigned threads = 1;  // the generator's network threads (append load)
  unsigned in_flight = 1;
  unsigned batch = 1;      // events per append
  std::size_t size = 256;  // bytes of JSON data per event
  unsigned tags = 0;       // tags per event (k0:N, k1:N, ...; N of tag_values values each)
  std::uint64_t tag_values = 1000;
  // append: every append carries a condition, "no event with both of the
  // first event's first two tags" (protocol 3 append_multi); needs --tags 2+.
  bool condition = false;
  // --condition-after: the condition counts only events after the newest
  // position this connection has seen acknowledged (a decision made on what
  // it read), not the whole log.
  bool condition_after = false;
  // read-query mode: each request reads the events of tag k0:N (N random of
  // tag_values), up to `chunk` of them.
  bool query_reads = false;
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

// Prints the usage of `mode` (every mode when empty) after `why`; returns 2.
int usage(const std::string& mode, const std::string& why);
// Parses args[2..] for mode args[1]; nullopt with `why` set on bad input.
std::optional<Options> parse(const std::vector<std::string>& args, std::string& why);

}  // namespace annal::bench
