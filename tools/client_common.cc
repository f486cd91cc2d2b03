#include "tools/client_common.h"

#include <cstdio>
#include <ctime>
#include <iostream>

namespace po = boost::program_options;

namespace annal::tools {

namespace proto = annal::net::proto;

void print_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int fail(const proto::Error& e) {
  std::fprintf(stderr, "annal: %s\n", net::error_string(e).c_str());
  return 1;
}

int usage(const std::string& cmd, const std::string& msg, const po::options_description& desc) {
  std::cerr << "annal " << cmd << ": " << msg << "\n" << desc << "\n";
  return 2;
}

std::optional<int> parse_command(const std::string& cmd, const std::vector<std::string>& args,
                                 const po::options_description& desc, std::string* stream,
                                 po::variables_map& vm, std::vector<std::string>* items) {
  po::options_description hidden;
  po::positional_options_description pos;
  if (stream != nullptr) {
    hidden.add_options()("stream", po::value(stream));
    pos.add("stream", 1);
  } else if (items != nullptr) {
    hidden.add_options()("item", po::value(items)->composing());
    pos.add("item", -1);
  }
  po::options_description opts;
  opts.add(desc).add(hidden);
  try {
    po::store(po::command_line_parser(std::vector<std::string>(args.begin() + 1, args.end()))
                  .options(opts)
                  .positional(pos)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return usage(cmd, e.what(), desc);
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  return std::nullopt;
}

net::Reply<std::unique_ptr<net::Client>> connect(const std::string& server) {
  auto hp = net::parse_host_port(server);
  if (!hp)
    return proto::Error{proto::Code::kInvalidArgument, proto::kNone,
                        "--server must be HOST:PORT, got '" + server + "'"};
  net::ClientOptions o;
  o.host = hp->first;
  o.port = hp->second;
  o.client_name = "annal-cli";
  return net::Client::connect(o);
}

std::optional<ExpectedRevision> parse_expected(const std::string& s) {
  if (s == "any") return ExpectedRevision::any();
  if (s == "no_stream") return ExpectedRevision::no_stream();
  if (s == "stream_exists") return ExpectedRevision::stream_exists();
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19)
    return std::nullopt;
  return ExpectedRevision::exact(std::stoull(s));
}

std::optional<index::QueryItem> parse_query_item(const std::string& text, std::string& error) {
  index::QueryItem item;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    const std::size_t end = std::min(text.find(' ', i), text.size());
    const std::string term = text.substr(i, end - i);
    i = end;
    if (term == "*") continue;
    if (term.starts_with("tag=")) {
      item.tags.push_back(term.substr(4));
    } else if (term.starts_with("type=")) {
      std::size_t at = 5;
      for (;;) {
        const std::size_t comma = term.find(',', at);
        item.types.push_back(term.substr(at, comma == std::string::npos ? comma : comma - at));
        if (comma == std::string::npos) break;
        at = comma + 1;
      }
    } else {
      error = "query term '" + term + "' is neither type=A,B nor tag=K:V";
      return std::nullopt;
    }
  }
  return item;
}

std::optional<index::Query> parse_query(const std::vector<std::string>& items, std::string& error) {
  index::Query q;
  for (const auto& text : items) {
    auto item = parse_query_item(text, error);
    if (!item) return std::nullopt;
    q.items.push_back(std::move(*item));
  }
  return q;
}

// A time as `annal` takes it: microseconds since the Unix epoch, or UTC in
// ISO 8601 (2026-12-07T09:00:00Z, optionally with a fraction of a second).
std::optional<std::int64_t> parse_time(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() <= 18)
    return std::stoll(s);
  std::tm tm{};
  const char* rest = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return std::nullopt;
  std::int64_t us = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    for (; *rest >= '0' && *rest <= '9'; ++rest)
      if (digits++ < 6) us = us * 10 + (*rest - '0');
    if (digits == 0) return std::nullopt;
    for (; digits < 6; ++digits) us *= 10;
  }
  if (*rest == 'Z') ++rest;
  if (*rest != '\0') return std::nullopt;
  return static_cast<std::int64_t>(::timegm(&tm)) * 1'000'000 + us;
}

}  // namespace annal::tools
