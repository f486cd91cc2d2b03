// Server::stop is bounded whatever the disk does, and accepted connections
// carry TCP keepalive so a vanished peer is found. In-process: a Store on a
// file system whose fdatasync can be held, a Server on 127.0.0.1, port 0.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/file.h"
#include "engine/format.h"
#include "index/store.h"
#include "net/client.h"
#include "net/server.h"
#include "tests/common/temp_dir.h"

namespace annal::net {
namespace {

using namespace std::chrono_literals;

// Passes everything to the real file system; while held, fdatasync blocks
// (a disk that stopped answering).
class GatedFileSystem final : public engine::FileSystem {
 public:
  void hold() {
    std::lock_guard l(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard l(mu_);
    held_ = false;
    cv_.notify_all();
  }
  // Waits until some fdatasync is blocked by hold().
  bool wait_blocked(std::chrono::milliseconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return blocked_ > 0; });
  }

  class GatedFile final : public engine::File {
   public:
    GatedFile(GatedFileSystem& fs, std::unique_ptr<engine::File> base)
        : fs_(fs), base_(std::move(base)) {}
    const std::string& path() const override { return base_->path(); }
    Status pwrite(std::uint64_t off, std::span<const std::byte> d) override {
      return base_->pwrite(off, d);
    }
    Status pread(std::uint64_t off, std::span<std::byte> out) override {
      return base_->pread(off, out);
    }
    Status allocate(std::uint64_t size) override { return base_->allocate(size); }
    Status datasync() override {
      fs_.gate();
      return base_->datasync();
    }
    Status sync() override { return base_->sync(); }
    Result<std::uint64_t> size() override { return base_->size(); }
    Result<std::shared_ptr<const engine::Mapping>> map(std::size_t length) override {
      return base_->map(length);
    }

   private:
    GatedFileSystem& fs_;
    std::unique_ptr<engine::File> base_;
  };

  Result<std::unique_ptr<engine::File>> open(const std::string& path,
                                             engine::OpenOptions options) override {
    auto f = base_.open(path, options);
    if (!f) return f.status();
    return std::unique_ptr<engine::File>(std::make_unique<GatedFile>(*this, std::move(*f)));
  }
  Status sync_dir(const std::string& dir) override { return base_.sync_dir(dir); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_.rename(from, to);
  }
  Status remove(const std::string& path) override { return base_.remove(path); }
  Status create_dirs(const std::string& dir) override { return base_.create_dirs(dir); }
  Result<std::vector<std::string>> list(const std::string& dir) override { return base_.list(dir); }
  bool exists(const std::string& path) override { return base_.exists(path); }
  Result<std::uint64_t> free_bytes(const std::string& dir) override {
    return base_.free_bytes(dir);
  }

 private:
  void gate() {
    std::unique_lock l(mu_);
    if (!held_) return;
    ++blocked_;
    cv_.notify_all();
    cv_.wait(l, [&] { return !held_; });
    --blocked_;
  }

  engine::FileSystem& base_ = engine::FileSystem::posix();
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int blocked_ = 0;
};

std::unique_ptr<index::Store> open_store(const std::string& dir, engine::FileSystem* fs) {
  index::StoreOptions o;
  o.log.dir = dir;
  o.log.segment_size = 1u << 20;
  o.log.min_free_bytes = 0;
  o.log.prepare_segments = false;
  o.log.fs = fs;
  auto s = index::Store::open(std::move(o));
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? std::move(s).value() : nullptr;
}

std::unique_ptr<Client> connect(std::uint16_t port) {
  ClientOptions co;
  co.port = port;
  auto c = Client::connect(co);
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? std::move(c).value() : nullptr;
}

proto::AppendReq one_event(const std::string& stream, std::uint8_t id_byte) {
  proto::AppendReq r;
  r.stream = stream;
  r.expected = ExpectedRevision::any();
  index::NewEvent e;
  e.id.bytes[0] = id_byte;
  e.id.bytes[15] = 0x5a;
  e.type = "Tested";
  e.flags = engine::format::kFlagDataJson;
  e.data = R"({"n":1})";
  r.events.push_back(std::move(e));
  return r;
}

TEST(ServerShutdownTest, AppendsStuckInFdatasyncAreAnsweredOutcomeUnknownWithinTheGrace) {
  test::TempDir dir("annal-shutdown");
  GatedFileSystem fs;
  auto store = open_store(dir.path(), &fs);
  ASSERT_TRUE(store);
  ServerOptions so;
  so.port = 0;
  so.threads = 1;
  so.shutdown_grace = 300ms;
  auto server = std::make_unique<Server>(*store, so);
  ASSERT_TRUE(server->start().is_ok());
  auto client = connect(server->port());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->append(one_event("s", 1)).ok());

  fs.hold();
  std::vector<std::promise<Reply<proto::AppendOk>>> replies(3);
  std::vector<std::future<Reply<proto::AppendOk>>> answers;
  for (std::size_t i = 0; i < replies.size(); ++i) {
    answers.push_back(replies[i].get_future());
    client->append_async(one_event("s", static_cast<std::uint8_t>(2 + i)),
                         [&, i](Reply<proto::AppendOk> r) { replies[i].set_value(std::move(r)); });
  }
  ASSERT_TRUE(fs.wait_blocked(10s)) << "the append never reached fdatasync";
  // All three must have reached the node before it stops (else the later
  // ones are refused as new requests, not left waiting): slow under TSan.
  for (int i = 0; i < 5000 && server->stats().requests_in_flight < 3; ++i)
    std::this_thread::sleep_for(2ms);
  ASSERT_EQ(server->stats().requests_in_flight, 3);

  const auto t0 = std::chrono::steady_clock::now();
  server->stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  // The grace, at most a second for the last writes, and scheduling slack.
  EXPECT_LT(took, 300ms + 1s + 2s);
  for (auto& a : answers) {
    ASSERT_EQ(a.wait_for(5s), std::future_status::ready);
    auto r = a.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, proto::Code::kShuttingDown) << r.error().message;
    EXPECT_NE(r.error().message.find("outcome is unknown"), std::string::npos) << r.error().message;
  }
  client.reset();
  server.reset();

  // The disk comes back: the held group becomes durable, and a retry of the
  // "unknown" appends with the same ids is deduplicated, not written again.
  fs.release();
  store.reset();
  store = open_store(dir.path(), nullptr);
  ASSERT_TRUE(store);
  Server again(*store, so);
  ASSERT_TRUE(again.start().is_ok());
  client = connect(again.port());
  ASSERT_TRUE(client);
  for (std::uint8_t i = 0; i < 3; ++i) {
    auto r = client->append(one_event("s", static_cast<std::uint8_t>(2 + i)));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r.value().deduplicated) << "retry " << int(i) << " was written twice";
    EXPECT_EQ(r.value().first_revision, 1u + i);
  }
  EXPECT_EQ(store->log().durable_end().value, 4u);
  client.reset();
  again.stop();
}

// The server side of the one accepted TCP connection to `port` in this
// process (a socket whose local port is the server's and that has a peer).
int accepted_socket(std::uint16_t port) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    sockaddr_in local{}, peer{};
    socklen_t n = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n) != 0) continue;
    if (local.sin_family != AF_INET || ntohs(local.sin_port) != port) continue;
    n = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &n) == 0) return fd;
  }
  return -1;
}

int int_option(int fd, int level, int name) {
  int v = -1;
  socklen_t n = sizeof v;
  EXPECT_EQ(::getsockopt(fd, level, name, &v, &n), 0);
  return v;
}

TEST(ServerShutdownTest, AcceptedConnectionsProbeForVanishedPeers) {
  test::TempDir dir("annal-keepalive");
  auto store = open_store(dir.path(), nullptr);
  ASSERT_TRUE(store);
  for (const bool on : {true, false}) {
    SCOPED_TRACE(on ? "keepalive on" : "keepalive off");
    ServerOptions so;
    so.port = 0;
    so.threads = 1;
    so.keepalive_idle = on ? 7s : 0s;
    so.keepalive_interval = 2s;
    so.keepalive_probes = 4;
    Server server(*store, so);
    ASSERT_TRUE(server.start().is_ok());
    auto client = connect(server.port());  // the handshake: the connection exists
    ASSERT_TRUE(client);
    const int fd = accepted_socket(server.port());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_KEEPALIVE), on ? 1 : 0);
    if (on) {
      EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
      EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
      EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
      EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), (7 + 2 * 4) * 1000);
    }
    client.reset();
    server.stop();
  }
}

}  // namespace
}  // namespace annal::net
