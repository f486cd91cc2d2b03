#pragma once
// What the client commands of `annal` share (tools/client_cli.cc,
// tools/client_append_multi.cc): connecting, option parsing, the CLI's
// forms of an expected revision and a query item, and output.

#include <boost/program_options.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/types.h"
#include "index/query.h"
#include "net/client.h"

namespace annal::tools {

inline constexpr const char* kDefaultServer = "127.0.0.1:7411";

// One line on stdout, flushed.
void print_line(const std::string& line);
// "annal: code_name (code): message" on stderr; returns the exit code 1.
int fail(const net::proto::Error& e);
// The command's usage error and options on stderr; returns 2.
int usage(const std::string& cmd, const std::string& msg,
          const boost::program_options::options_description& desc);
// Parses args[1..] against `desc`, plus an optional positional STREAM into
// *stream, or any number of positional arguments into *items. Returns the
// exit code when the command stops here (0 after --help, 2 with a usage
// error), nullopt when it goes on.
std::optional<int> parse_command(const std::string& cmd, const std::vector<std::string>& args,
                                 const boost::program_options::options_description& desc,
                                 std::string* stream, boost::program_options::variables_map& vm,
                                 std::vector<std::string>* items = nullptr);
// Connects to --server HOST:PORT.
net::Reply<std::unique_ptr<net::Client>> connect(const std::string& server);
// any | no_stream | stream_exists | N
std::optional<ExpectedRevision> parse_expected(const std::string& s);
// Query items as the CLI takes them: space-separated `type=A,B` (any of the
// types) and `tag=K:V` (all of the tags; repeat) terms; `*` or nothing
// matches every event. nullopt with `error` set if a term is neither.
std::optional<index::QueryItem> parse_query_item(const std::string& text, std::string& error);
std::optional<index::Query> parse_query(const std::vector<std::string>& items, std::string& error);

// A time as `annal` takes it: microseconds since the Unix epoch, or UTC in
// ISO 8601 (2026-12-07T09:00:00Z, optionally with a fraction of a second).
std::optional<std::int64_t> parse_time(const std::string& s);

// append-multi (tools/client_append_multi.cc).
int cmd_append_multi(const std::vector<std::string>& args);
// group, checkpoint (tools/client_groups.cc).
int cmd_group(const std::vector<std::string>& args);
int cmd_checkpoint(const std::vector<std::string>& args);
// metadata, delete (tools/client_lifecycle.cc).
int cmd_metadata(const std::vector<std::string>& args);
int cmd_delete(const std::vector<std::string>& args);
int cmd_scavenge(const std::vector<std::string>& args);
// backup (tools/client_backup.cc).
int cmd_backup(const std::vector<std::string>& args);
int cmd_snapshot(const std::vector<std::string>& args);
// The groups' lag as a JSON array, for `annal info` (null from a node
// before v4, {"error": ...} if the node could not list them).
std::string groups_json(net::Client& c);

}  // namespace annal::tools
