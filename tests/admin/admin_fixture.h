#pragma once
// A node in-process for the admin endpoint's tests: a Store in a temporary
// directory (optionally on a fault-injecting file system), the protocol
// Server and the AdminServer on 127.0.0.1 with ports they pick, a protocol
// client, and a small blocking HTTP GET.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "admin/http_server.h"
#include "engine/fault_fs.h"
#include "index/store.h"
#include "net/client.h"
#include "net/server.h"
#include "tests/common/temp_dir.h"

namespace annal::admin::testing {
namespace proto = net::proto;

struct HttpResult {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// One GET (HTTP/1.1, Connection: close) to 127.0.0.1:port.
HttpResult http_get(std::uint16_t port, const std::string& target,
                    const std::string& method = "GET");

// Prometheus text: "name{labels}" -> value, for the samples of the body.
std::map<std::string, double> parse_samples(const std::string& text);

class AdminFixture : public ::testing::Test {
 protected:
  void TearDown() override { stop(); }

  // Opens the store and starts both servers. `min_free` is the free-space
  // floor the log and the endpoint use.
  void start(std::uint64_t min_free = 0, bool metrics = true);
  void stop();

  net::Client& client();
  // `count` events appended to `stream` over the protocol (JSON data).
  void append(const std::string& stream, int count, const std::string& type = "Happened");
  // One event appended to `stream` with `expected`, over the protocol; the
  // answer, refusals included.
  net::Reply<proto::AppendOk> append_one(const std::string& stream, ExpectedRevision expected);
  HttpResult get(const std::string& target) { return http_get(admin_->port(), target); }

  test::TempDir dir_{"annal-admin"};
  engine::FaultInjectionFileSystem fault_fs_;
  bool use_fault_fs_ = false;
  std::unique_ptr<index::Store> store_;
  std::unique_ptr<net::Server> server_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<net::Client> client_;
  int appended_ids_ = 0;
};

}  // namespace annal::admin::testing
