// The real annald with a config file, --check-config, JSON logs and systemd
// readiness (tools/annald.cc, tools/node_config.h, tools/node_log.h,
// tools/readiness.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "tests/common/temp_dir.h"
#include "tests/tools/annald_process.h"

namespace annal::tools::testing {
namespace {

namespace fs = std::filesystem;

class AnnaldTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  // A config file for a test node: loopback, port 0, small segments, the
  // admin endpoint at `http` (line 7), then `extra` (from line 8).
  std::string node_config(const std::string& extra = "", const std::string& data = "",
                          const std::string& http = "off") {
    return "data = " + (data.empty() ? path("data") : data) +
           "\nlisten = 127.0.0.1:0\nport-file = " + path("port") +
           "\nsegment-size = 8M\nmin-free = 1M\nthreads = 1\nhttp = " + http + "\n" + extra;
  }
  static bool can_connect(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }
  // The value printed for `key` by --check-config ("key   = value  # ...").
  static std::string printed_value(const std::string& out, const std::string& key) {
    for (const auto& line : lines_of(out)) {
      if (line.rfind(key + " ", 0) != 0) continue;
      const auto eq = line.find('=');
      if (eq == std::string::npos || line.find_first_not_of(' ', key.size()) != eq) continue;
      std::string value = line.substr(std::min(line.size(), eq + 2));
      return value.substr(0, value.find("  # "));
    }
    return "<missing>";
  }
  static std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  // YYYY-MM-DDTHH:MM:SS.mmmZ
  static bool is_iso_utc_ms(std::string_view t) {
    const std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (t.size() != shape.size()) return false;
    for (std::size_t i = 0; i < t.size(); ++i)
      if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(t[i])) : t[i] != shape[i])
        return false;
    return true;
  }

  test::TempDir dir_{"annal-annald"};
};

TEST_F(AnnaldTest, CheckConfigPrintsTheEffectiveConfigurationWithoutTouchingTheDataDirectory) {
  write_text_file(path("a.conf"), node_config("max-tags = 7\n"));
  auto r = run_annald({"--check-config", path("a.conf"), "--max-tags", "9"}, dir_.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(printed_value(r.out, "max-tags"), "9") << r.out;
  EXPECT_NE(r.out.find("# from the command line"), std::string::npos) << r.out;
  EXPECT_EQ(printed_value(r.out, "segment-size"), "8M") << r.out;
  EXPECT_EQ(printed_value(r.out, "data"), path("data")) << r.out;
  EXPECT_EQ(printed_value(r.out, "max-frame"), "32M") << r.out;  // a default
  EXPECT_EQ(printed_value(r.out, "metrics"), "on") << r.out;
  EXPECT_FALSE(fs::exists(path("data")));
  EXPECT_FALSE(fs::exists(path("port")));
}

TEST_F(AnnaldTest, CheckConfigOfAnInvalidFileExitsTwoNamingTheLineKeyAndValue) {
  write_text_file(path("bad.conf"), node_config("max-frame = 1\n"));
  auto r = run_annald({"--check-config", path("bad.conf")}, dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(path("bad.conf") + ":8: max-frame: invalid size '1'"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");
  write_text_file(path("unknown.conf"), "colour = blue\n");
  r = run_annald({"--check-config", path("unknown.conf")}, dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(path("unknown.conf") + ":1: unknown key 'colour'"), std::string::npos)
      << r.err;
}

TEST_F(AnnaldTest, TheShippedConfigFileIsValidAndUsesVarLibAnnal) {
  auto r = run_annald({"--check-config", ANNAL_SOURCE_DIR "/packaging/annald.conf"}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(printed_value(r.out, "data"), "/var/lib/annal") << r.out;
  EXPECT_EQ(printed_value(r.out, "listen"), "127.0.0.1:7411") << r.out;
  EXPECT_EQ(printed_value(r.out, "http"), "127.0.0.1:7412") << r.out;
}

TEST_F(AnnaldTest, TheShippedConfigFileNamesEveryKey) {
  const std::string shipped = read_text_file(ANNAL_SOURCE_DIR "/packaging/annald.conf");
  auto r = run_annald({"--check-config", ANNAL_SOURCE_DIR "/packaging/annald.conf"}, dir_.path());
  const auto shipped_lines = lines_of(shipped);
  int keys = 0;
  for (const auto& line : lines_of(r.out)) {
    if (line.empty() || line[0] == '#') continue;
    const std::string key = line.substr(0, line.find(' '));
    ++keys;
    const bool named = std::any_of(shipped_lines.begin(), shipped_lines.end(), [&](auto& l) {
      return l.rfind(key + " =", 0) == 0 || l.rfind("# " + key + " =", 0) == 0;
    });
    EXPECT_TRUE(named) << "packaging/annald.conf has no line for " << key;
  }
  EXPECT_GT(keys, 30);
}

TEST_F(AnnaldTest, ANodeTakesItsSettingsFromTheConfigFileAndLogsThem) {
  write_text_file(path("node.conf"), node_config());
  AnnaldProcess node({"--config", path("node.conf")}, dir_.path());
  const auto port = node.wait_port_file(path("port"));
  ASSERT_NE(port, 0) << node.log_text();
  EXPECT_TRUE(can_connect(port));
  // segment-size = 8M from the file: the first segment is preallocated to it.
  EXPECT_EQ(fs::file_size(path("data") + "/00000000000000000000.seg"), 8u << 20);
  EXPECT_EQ(node.stop(), 0);
  const auto log = node.log_text();
  EXPECT_NE(log.find("configuration (from " + path("node.conf") + " and flags)"), std::string::npos)
      << log;
  for (const char* kv : {"segment-size=8M", "http=off", "metrics=on", "log-format=text",
                         "listen=127.0.0.1:0", "max-frame=32M"})
    EXPECT_NE(log.find(kv), std::string::npos) << kv << " not logged:\n" << log;
}

TEST_F(AnnaldTest, AFlagOnTheCommandLineOverridesTheConfigFile) {
  write_text_file(path("node.conf"), node_config());
  AnnaldProcess node({"--config", path("node.conf"), "--port-file", path("other-port")},
                     dir_.path());
  ASSERT_NE(node.wait_port_file(path("other-port")), 0) << node.log_text();
  EXPECT_FALSE(fs::exists(path("port")));
  EXPECT_EQ(node.stop(), 0);
}

TEST_F(AnnaldTest, AnInvalidConfigFileStopsTheNodeWithExitTwoBeforeItOpensAnything) {
  write_text_file(path("node.conf"), node_config("secondary-index = sometimes\n"));
  auto r = run_annald({"--config", path("node.conf")}, dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":8: secondary-index must be on or off, got 'sometimes'"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Run 'annald --help'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("data")));
}

TEST_F(AnnaldTest, EveryLogLineOfANodeLoggingJsonParsesAsJson) {
  // A data directory whose name needs escaping shows up in the messages.
  const std::string data = path("da\"ta\\dir \xC3\xA4");
  write_text_file(path("node.conf"), node_config("log-format = json\n", data));
  AnnaldProcess node({"--config", path("node.conf")}, dir_.path());
  ASSERT_NE(node.wait_port_file(path("port")), 0) << node.log_text();
  EXPECT_EQ(node.stop(), 0);
  std::istringstream in(node.log_text());
  simdjson::dom::parser parser;
  int lines = 0;
  bool saw_data = false, saw_listening = false, saw_stopped = false;
  for (std::string line; std::getline(in, line); ++lines) {
    simdjson::dom::object obj;
    auto error = parser.parse(line).get(obj);
    ASSERT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << ": " << line;
    std::string_view t, level, logger, message;
    ASSERT_EQ(obj["time"].get(t), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["level"].get(level), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["logger"].get(logger), simdjson::SUCCESS) << line;
    ASSERT_EQ(obj["message"].get(message), simdjson::SUCCESS) << line;
    EXPECT_TRUE(is_iso_utc_ms(t)) << t;
    EXPECT_EQ(logger, "annald");
    const std::string m(message);
    saw_data |= m.find("opening data directory " + data + " (") != std::string::npos;
    saw_listening |= m.rfind("listening on 127.0.0.1:", 0) == 0;
    saw_stopped |= m.rfind("stopped cleanly", 0) == 0;
  }
  EXPECT_GT(lines, 5);
  EXPECT_TRUE(saw_data) << node.log_text();
  EXPECT_TRUE(saw_listening);
  EXPECT_TRUE(saw_stopped);
}

TEST_F(AnnaldTest, SystemdIsToldReadyOnceTheNodeListensAndStoppingWhenItStops) {
  NotifySocket sock(path("notify"));
  ASSERT_TRUE(sock.bound());
  // The admin endpoint on too: READY=1 waits for both ports.
  write_text_file(path("node.conf"),
                  node_config("http-port-file = " + path("http-port") + "\n", "", "127.0.0.1:0"));
  AnnaldProcess node({"--config", path("node.conf")}, dir_.path(),
                     {"NOTIFY_SOCKET=" + path("notify")});
  std::string ready;
  while (auto msg = sock.receive(60'000)) {
    if (msg->find("READY=1") != std::string::npos) {
      ready = *msg;
      break;
    }
    EXPECT_EQ(msg->rfind("STATUS=", 0), 0u) << *msg;  // progress only, before READY
  }
  ASSERT_NE(ready, "") << node.log_text();
  // By READY=1 the node has recovered, listens on both ports and wrote both
  // port files.
  std::ifstream f(path("port"));
  int port = 0;
  ASSERT_TRUE(f >> port) << "no port file at READY=1";
  EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(port)));
  std::ifstream h(path("http-port"));
  int http_port = 0;
  ASSERT_TRUE(h >> http_port) << "no HTTP port file at READY=1";
  EXPECT_TRUE(can_connect(static_cast<std::uint16_t>(http_port)));
  EXPECT_NE(ready.find("STATUS=serving on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << ready;
  ::kill(node.pid(), SIGTERM);
  auto stopping = sock.receive(20'000);
  ASSERT_TRUE(stopping.has_value());
  EXPECT_EQ(stopping->rfind("STOPPING=1", 0), 0u) << *stopping;
  EXPECT_EQ(node.wait_exit(std::chrono::seconds(20)), 0);
}

TEST_F(AnnaldTest, VersionAndHelpExitZero) {
  auto r = run_annald({"--version"}, dir_.path());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("annald ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '.'), 2) << r.out;  // annald X.Y.Z
  EXPECT_EQ(r.out.back(), '\n');
  r = run_annald({"--help"}, dir_.path());
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--check-config"), std::string::npos);
}

}  // namespace
}  // namespace annal::tools::testing
