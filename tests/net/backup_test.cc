// Online backup against the real node (protocol v6; docs/operations.md,
// "Backup and restore"): a backup taken while several connections append,
// restored with `annal restore` and opened by a second node, holds every
// acknowledged event below its position and nothing above; bad destinations,
// a second concurrent backup and an old protocol version are refused with
// clear errors; `annal backup` from the command line.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
namespace fsys = std::filesystem;

struct Acked {
  std::uint64_t position = 0;
  std::string stream;
  std::uint64_t revision = 0;
  std::string data;
};

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
    }
  }
  std::string out(const std::string& name) { return out_.path() + "/" + name; }
  void put(Client& c, const std::string& stream, int n, std::size_t pad = 0) {
    for (int i = 0; i < n; ++i) {
      auto r =
          c.append(proto::AppendReq{stream,
                                    ExpectedRevision::any(),
                                    {json_event("E", "{\"i\":" + std::to_string(i) + ",\"p\":\"" +
                                                         std::string(pad, 'x') + "\"}")}});
      ASSERT_TRUE(r.ok()) << r.error_string();
    }
  }
  // `annal ARGS` without a server (restore, verify); exit status, output.
  static int annal(const std::string& args, std::string* output) {
    const std::string cmd = std::string(ANNAL_CLI_PATH) + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    output->clear();
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) output->append(buf, n);
    const int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  TempDir dir_;
  TempDir out_;
  std::unique_ptr<Node> node_;
};

TEST_F(BackupTest, ABackupDuringConcurrentAppendsRestoresToExactlyTheEventsBelowItsPosition) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Acked> acked;
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      auto c = node_->client();
      for (int k = 0; !stop.load(); ++k) {
        const std::string stream = "w" + std::to_string(w) + "-" + std::to_string(k % 5);
        const std::string data = "{\"w\":" + std::to_string(w) + ",\"k\":" + std::to_string(k) +
                                 ",\"pad\":\"" + std::string(300, 'p') + "\"}";
        auto r =
            c->append(proto::AppendReq{stream, ExpectedRevision::any(), {json_event("E", data)}});
        if (!r.ok()) {
          ADD_FAILURE() << r.error_string();
          return;
        }
        std::lock_guard l(mu);
        acked.push_back(Acked{r->first_position, stream, r->first_revision, data});
      }
    });
  auto count = [&] {
    std::lock_guard l(mu);
    return acked.size();
  };
  while (count() < 2000) std::this_thread::sleep_for(5ms);
  auto c = node_->client();
  auto b = c->backup(out("bk"));
  const std::size_t at_end = count();
  while (count() < at_end + 300) std::this_thread::sleep_for(5ms);
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_TRUE(b.ok()) << b.error_string();
  const std::uint64_t p = b->position;
  EXPECT_GT(p, 0u);
  EXPECT_EQ(b->dest, fsys::canonical(out_.path()).string() + "/bk");
  EXPECT_EQ(b->linked, 0u);

  std::string text;
  ASSERT_EQ(annal("verify " + out("bk"), &text), 0) << text;
  TempDir restored;
  ASSERT_EQ(annal("restore " + out("bk") + " " + restored.path() + "/data", &text), 0) << text;
  EXPECT_NE(text.find("position " + std::to_string(p)), std::string::npos) << text;
  ASSERT_EQ(annal("verify " + restored.path() + "/data", &text), 0) << text;

  Node copy(restored.path());
  auto cc = copy.client();
  std::size_t below = 0, above = 0;
  for (const Acked& a : acked) {
    auto r =
        cc->read_stream(proto::ReadStreamReq{a.stream, a.revision, 1, index::Direction::kForward});
    if (a.position < p) {
      ++below;
      ASSERT_TRUE(r.ok()) << r.error_string();
      ASSERT_EQ(r->events.size(), 1u) << a.stream << "@" << a.revision;
      EXPECT_EQ(r->events[0].position.value, a.position);
      EXPECT_EQ(r->events[0].data, a.data);
    } else {
      ++above;
      // Past the position: not there, neither whole nor in part.
      if (r.ok()) {
        EXPECT_TRUE(r->events.empty()) << a.stream << "@" << a.revision << " is past " << p;
      }
    }
  }
  EXPECT_GT(below, 1000u);
  EXPECT_GT(above, 0u);
  auto all = cc->read_all(proto::ReadAllReq{p, 10, index::Direction::kForward});
  ASSERT_TRUE(all.ok()) << all.error_string();
  EXPECT_TRUE(all->events.empty());
  EXPECT_EQ(copy.stop(), std::optional<int>(0)) << copy.log_text();
}

TEST_F(BackupTest, BadDestinationsAreRefusedWithACodeAndAMessage) {
  auto c = node_->client();
  put(*c, "s", 3);
  auto rel = c->backup("backups/today");
  ASSERT_FALSE(rel.ok());
  EXPECT_EQ(rel.error().code, proto::Code::kInvalidArgument);
  EXPECT_NE(rel.error().message.find("absolute"), std::string::npos) << rel.error().message;

  auto inside = c->backup(dir_.path() + "/data/bk");
  ASSERT_FALSE(inside.ok());
  EXPECT_EQ(inside.error().code, proto::Code::kInvalidArgument);
  EXPECT_NE(inside.error().message.find("inside the data directory"), std::string::npos);

  fsys::create_directories(out("full"));
  std::ofstream(out("full") + "/keep") << "x";
  auto full = c->backup(out("full"));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, proto::Code::kAlreadyExists);
  EXPECT_NE(full.error().message.find("not empty"), std::string::npos);
  EXPECT_TRUE(fsys::exists(out("full") + "/keep"));

  std::string text;
  EXPECT_EQ(run_annal(node_->port(), "backup relative/bk", &text), 1);
  EXPECT_NE(text.find("invalid_argument (14)"), std::string::npos) << text;
}

TEST_F(BackupTest, ASecondBackupWhileOneRunsIsRefusedBusy) {
  auto c = node_->client();
  put(*c, "s", 600, 4000);  // ~2.5 MB: a few seconds at 1 MiB/s
  std::optional<Reply<proto::BackupOk>> first;
  std::thread t([&] {
    auto c1 = node_->client();
    first.emplace(c1->backup(out("slow"), false, 1u << 20));
  });
  for (int i = 0; i < 2000 && !fsys::exists(out("slow") + ".partial"); ++i)
    std::this_thread::sleep_for(2ms);
  auto second = c->backup(out("second"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, proto::Code::kBusy);
  EXPECT_EQ(proto::code_name(second.error().code), std::string("busy"));
  auto sc = c->scavenge();
  ASSERT_FALSE(sc.ok());
  EXPECT_EQ(sc.error().code, proto::Code::kBusy) << sc.error().message;
  // Appends are not held up meanwhile.
  put(*c, "during", 20);
  t.join();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->ok()) << first->error_string();
  EXPECT_GE((*first)->position, 600u);
  // One at a time, not one ever: the next is accepted.
  auto third = c->backup(out("third"));
  EXPECT_TRUE(third.ok()) << third.error_string();
}

TEST_F(BackupTest, TheBackupOfAnEmptyNodeFromTheCommandLineRestoresToAnEmptyNode) {
  std::string text;
  ASSERT_EQ(run_annal(node_->port(), "backup " + out("empty"), &text), 0) << text;
  EXPECT_NE(text.find("\"position\":0,"), std::string::npos) << text;
  EXPECT_TRUE(fsys::exists(out("empty") + "/MANIFEST"));
  TempDir restored;
  ASSERT_EQ(annal("restore " + out("empty") + " " + restored.path() + "/data", &text), 0) << text;
  Node copy(restored.path());
  auto cc = copy.client();
  auto all = cc->read_all(proto::ReadAllReq{0, 10, index::Direction::kForward});
  ASSERT_TRUE(all.ok()) << all.error_string();
  EXPECT_TRUE(all->events.empty());
  EXPECT_EQ(copy.stop(), std::optional<int>(0)) << copy.log_text();
}

TEST_F(BackupTest, AVersion5ConnectionCannotAskForABackup) {
  auto c = node_->client(64, 5);
  auto r = c->backup(out("v5"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kBadRequest);
  EXPECT_NE(r.error().message.find("protocol version 6"), std::string::npos);
  // On the wire, a v5 connection's backup op is an unknown operation.
  RawConn raw(node_->port());
  ASSERT_TRUE(raw.send(proto::encode_hello(1, proto::Hello{proto::kHelloMagic, 5, "raw"})));
  ASSERT_TRUE(raw.read_frame().has_value());
  ASSERT_TRUE(raw.send(proto::encode(7, proto::BackupReq{out("raw"), false, 0}, 5)));
  auto f = raw.read_frame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
  EXPECT_FALSE(fsys::exists(out("raw")));
}

}  // namespace
}  // namespace annal::net::testing
