// annald's options and config file, parsed in-process (tools/node_config.h).
#include "tools/node_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "tests/common/temp_dir.h"
#include "tests/tools/annald_process.h"

namespace annal::tools {
namespace {

using testing::write_text_file;
using Action = NodeCommand::Action;

class NodeConfigTest : public ::testing::Test {
 protected:
  // Writes `text` as the config file and parses `--config FILE` + `flags`.
  NodeCommand with_file(const std::string& text, std::vector<std::string> flags = {}) {
    write_text_file(file_, text);
    flags.insert(flags.begin(), {"--config", file_});
    return parse_node_command(flags);
  }
  // The usage error of `cmd` (a failure if it parsed).
  static std::string error_of(const NodeCommand& cmd) {
    EXPECT_EQ(cmd.action, Action::kUsageError) << format_effective_config(cmd.config);
    return cmd.text;
  }
  static const ConfigEntry& entry(const NodeConfig& c, const std::string& key) {
    auto it = std::find_if(c.effective.begin(), c.effective.end(),
                           [&](const ConfigEntry& e) { return e.key == key; });
    if (it == c.effective.end()) throw std::runtime_error("no key " + key);
    return *it;
  }

  test::TempDir dir_{"annal-node-config"};
  std::string file_ = dir_.path() + "/annald.conf";
};

TEST_F(NodeConfigTest, WithNoOptionsTheDocumentedDefaultsApply) {
  auto cmd = parse_node_command(std::vector<std::string>{});
  ASSERT_EQ(cmd.action, Action::kRun) << cmd.text;
  const auto& c = cmd.config;
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 7411);
  EXPECT_EQ(c.http, "127.0.0.1:7412");
  EXPECT_TRUE(c.http_enabled());
  EXPECT_EQ(c.http_host, "127.0.0.1");
  EXPECT_EQ(c.http_port, 7412);
  EXPECT_TRUE(c.http_port_file.empty());
  EXPECT_TRUE(c.metrics);
  EXPECT_EQ(c.log_format, LogFormat::kText);
  EXPECT_EQ(c.log_level, spdlog::level::info);
  EXPECT_EQ(c.store.log.segment_size, 256ull << 20);
  EXPECT_EQ(c.server.scavenge_interval, std::chrono::seconds(86400));
  EXPECT_TRUE(c.config_file.empty());
}

TEST_F(NodeConfigTest, EveryOptionButTheCommandLineOnlyOnesHasAKeyWithAPrintableValue) {
  auto cmd = parse_node_command(std::vector<std::string>{});
  ASSERT_EQ(cmd.action, Action::kRun);
  std::vector<std::string> keys;
  for (const auto& e : cmd.config.effective) {
    keys.push_back(e.key);
    EXPECT_NE(e.value, "?") << e.key;
    EXPECT_EQ(e.source, ConfigSource::kDefault) << e.key;
  }
  for (const char* k : {"data", "listen", "port-file", "http", "http-port-file", "metrics",
                        "write-when-idle", "log-level", "log-format", "scavenge-free-below-mb"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  for (const char* k : {"help", "version", "config", "check-config"})
    EXPECT_EQ(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  EXPECT_EQ(entry(cmd.config, "write-when-idle").value, "off");
  EXPECT_EQ(entry(cmd.config, "port-file").value, "");
}

TEST_F(NodeConfigTest, AConfigFileSetsValuesOfEveryKind) {
  auto cmd = with_file(
      "# a node for the tests\n"
      "\n"
      "data = /srv/annal data   # spaces inside a value are kept\n"
      "listen = 127.0.0.1:0\n"
      "segment-size = 8M\n"
      "write-when-idle = on\n"
      "max-tags = 7\n"
      "secondary-index = off\n"
      "log-format = json\n"
      "log-level = warn\n"
      "http = off\n"
      "metrics = off\n"
      "keepalive-idle-s = 5\n"
      "port-file = /tmp/p\n");
  ASSERT_EQ(cmd.action, Action::kRun) << cmd.text;
  const auto& c = cmd.config;
  EXPECT_EQ(c.data_dir, "/srv/annal data");
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.store.log.segment_size, 8ull << 20);
  EXPECT_TRUE(c.store.log.write_when_idle);
  EXPECT_EQ(c.store.limits.max_tags, 7u);
  EXPECT_FALSE(c.store.secondary_index);
  EXPECT_EQ(c.log_format, LogFormat::kJson);
  EXPECT_EQ(c.log_level, spdlog::level::warn);
  EXPECT_FALSE(c.http_enabled());
  EXPECT_FALSE(c.metrics);
  EXPECT_EQ(c.server.keepalive_idle, std::chrono::seconds(5));
  EXPECT_EQ(c.port_file, "/tmp/p");
  EXPECT_EQ(c.config_file, file_);
  EXPECT_EQ(entry(c, "segment-size").source, ConfigSource::kFile);
  EXPECT_EQ(entry(c, "segment-size").value, "8M");
  EXPECT_EQ(entry(c, "max-frame").source, ConfigSource::kDefault);
}

TEST_F(NodeConfigTest, AFlagOnTheCommandLineOverridesTheSameKeyInTheFile) {
  auto cmd = with_file("listen = 127.0.0.1:1000\nmax-tags = 7\n", {"--listen", "127.0.0.1:2000"});
  ASSERT_EQ(cmd.action, Action::kRun) << cmd.text;
  EXPECT_EQ(cmd.config.server.port, 2000);
  EXPECT_EQ(entry(cmd.config, "listen").source, ConfigSource::kCommandLine);
  EXPECT_EQ(cmd.config.store.limits.max_tags, 7u);
  EXPECT_EQ(entry(cmd.config, "max-tags").source, ConfigSource::kFile);
}

TEST_F(NodeConfigTest, AnUnknownKeyIsAnErrorNamingTheFileLineAndKey) {
  auto msg = error_of(with_file("listen = 127.0.0.1:0\n# ok\nlisten-on = 1.2.3.4:5\n"));
  EXPECT_NE(msg.find(file_ + ":3: unknown key 'listen-on'"), std::string::npos) << msg;
}

TEST_F(NodeConfigTest, AValueOfTheWrongTypeIsAnErrorNamingTheLineKeyAndValue) {
  auto msg = error_of(with_file("\nmax-tags = many\n"));
  EXPECT_NE(msg.find(file_ + ":2: key 'max-tags': invalid value 'many'"), std::string::npos) << msg;
  msg = error_of(with_file("write-when-idle = sometimes\n"));
  EXPECT_NE(msg.find(file_ + ":1: key 'write-when-idle': invalid value 'sometimes'"),
            std::string::npos)
      << msg;
}

TEST_F(NodeConfigTest, AnInvalidValueFromTheFileIsReportedWithItsLine) {
  auto msg = error_of(with_file("data = /x\nsegment-size = 12X\n"));
  EXPECT_EQ(msg, file_ + ":2: segment-size: cannot parse size '12X'");
  msg = error_of(with_file("http = 7412\n"));
  EXPECT_EQ(msg, file_ + ":1: http must be HOST:PORT or off, got '7412'");
  msg = error_of(with_file("metrics = maybe\n"));
  EXPECT_EQ(msg, file_ + ":1: metrics must be on or off, got 'maybe'");
  msg = error_of(with_file("data =\n"));
  EXPECT_EQ(msg, file_ + ":1: data must not be empty");
  msg = error_of(with_file("log-format = xml\n"));
  EXPECT_EQ(msg, file_ + ":1: log-format must be text or json, got 'xml'");
}

TEST_F(NodeConfigTest, MalformedLinesAndRepeatedKeysAreErrors) {
  auto msg = error_of(with_file("listen 127.0.0.1:0\n"));
  EXPECT_EQ(msg, file_ + ":1: expected 'key = value', got 'listen 127.0.0.1:0'");
  msg = error_of(with_file("max-tags = 1\nmax-tags = 2\n"));
  EXPECT_EQ(msg, file_ + ":2: key 'max-tags' given twice (also on line 1)");
  msg = error_of(with_file(" = 3\n"));
  EXPECT_EQ(msg, file_ + ":1: no key before '='");
  msg = error_of(with_file("config = /etc/other.conf\n"));
  EXPECT_EQ(msg, file_ + ":1: 'config' can only be given on the command line");
}

TEST_F(NodeConfigTest, AMissingConfigFileIsAnErrorNamingIt) {
  auto msg = error_of(parse_node_command({"--config", dir_.path() + "/nope.conf"}));
  EXPECT_NE(msg.find("cannot read config file " + dir_.path() + "/nope.conf"), std::string::npos)
      << msg;
}

TEST_F(NodeConfigTest, ConfigAndCheckConfigTogetherAreRefused) {
  write_text_file(file_, "");
  auto msg = error_of(parse_node_command({"--config", file_, "--check-config", file_}));
  EXPECT_EQ(msg, "give --config or --check-config, not both");
}

TEST_F(NodeConfigTest, CheckConfigReadsTheFileAndAsksToPrintIt) {
  write_text_file(file_, "max-tags = 9\n");
  auto cmd = parse_node_command({"--check-config", file_, "--metrics", "off"});
  ASSERT_EQ(cmd.action, Action::kCheckConfig) << cmd.text;
  EXPECT_EQ(cmd.config.store.limits.max_tags, 9u);
  EXPECT_FALSE(cmd.config.metrics);
  const auto text = format_effective_config(cmd.config);
  EXPECT_NE(text.find("max-tags"), std::string::npos);
  EXPECT_NE(text.find("= 9  # from " + file_), std::string::npos) << text;
  EXPECT_NE(text.find("= off  # from the command line"), std::string::npos) << text;
}

TEST_F(NodeConfigTest, ThePrintedConfigurationReadBackGivesTheSameConfiguration) {
  auto first = with_file("segment-size = 8M\nhttp = [::1]:0\nwrite-when-idle = on\n",
                         {"--port-file", "/tmp/x y", "--max-tags", "3"});
  ASSERT_EQ(first.action, Action::kRun) << first.text;
  write_text_file(dir_.path() + "/printed.conf", format_effective_config(first.config));
  auto second = parse_node_command({"--config", dir_.path() + "/printed.conf"});
  ASSERT_EQ(second.action, Action::kRun) << second.text;
  ASSERT_EQ(first.config.effective.size(), second.config.effective.size());
  for (std::size_t i = 0; i < first.config.effective.size(); ++i)
    EXPECT_EQ(first.config.effective[i].value, second.config.effective[i].value)
        << first.config.effective[i].key;
  EXPECT_EQ(second.config.http_host, "::1");
  EXPECT_EQ(second.config.http_port, 0);
}

TEST_F(NodeConfigTest, TheNewFlagsAreValidated) {
  auto cmd = parse_node_command({"--http", "0.0.0.0:0", "--http-port-file", "/tmp/h"});
  ASSERT_EQ(cmd.action, Action::kRun) << cmd.text;
  EXPECT_EQ(cmd.config.http_host, "0.0.0.0");
  EXPECT_EQ(cmd.config.http_port, 0);
  EXPECT_EQ(cmd.config.http_port_file, "/tmp/h");
  EXPECT_EQ(error_of(parse_node_command({"--http", "localhost"})),
            "--http must be HOST:PORT or off, got 'localhost'");
  EXPECT_EQ(error_of(parse_node_command({"--metrics", "yes"})),
            "--metrics must be on or off, got 'yes'");
  EXPECT_EQ(error_of(parse_node_command({"--log-format", "JSON"})),
            "--log-format must be text or json, got 'JSON'");
}

TEST_F(NodeConfigTest, ExistingFlagErrorsAreUnchanged) {
  EXPECT_EQ(error_of(parse_node_command({"--listen", "nope"})),
            "--listen must be HOST:PORT, got 'nope'");
  EXPECT_EQ(error_of(parse_node_command({"--max-frame", "1"})), "--max-frame: invalid size '1'");
  EXPECT_EQ(error_of(parse_node_command({"--segment-size", "x"})),
            "--segment-size: cannot parse size 'x'");
  EXPECT_EQ(error_of(parse_node_command({"--secondary-index", "maybe"})),
            "--secondary-index must be on or off, got 'maybe'");
  EXPECT_NE(error_of(parse_node_command({"--bogus"})).find("--bogus"), std::string::npos);
}

TEST_F(NodeConfigTest, HelpListsTheConfigOptionsAndTheNewFlags) {
  auto cmd = parse_node_command({"--help"});
  ASSERT_EQ(cmd.action, Action::kHelp);
  for (const char* f : {"--config", "--check-config", "--http ", "--http-port-file", "--metrics",
                        "--log-format", "--listen", "--data"})
    EXPECT_NE(cmd.text.find(f), std::string::npos) << f;
}

TEST_F(NodeConfigTest, TheStartLogPacksEveryKeyIntoShortLines) {
  auto cmd = parse_node_command({"--port-file", "/tmp/a b"});
  ASSERT_EQ(cmd.action, Action::kRun);
  auto lines = effective_config_log_lines(cmd.config, 100);
  std::string all;
  for (const auto& l : lines) {
    EXPECT_LE(l.size(), 100u) << l;
    all += l + " ";
  }
  for (const auto& e : cmd.config.effective)
    EXPECT_TRUE(all.rfind(e.key + "=", 0) == 0 || all.find(" " + e.key + "=") != std::string::npos)
        << e.key;
  EXPECT_NE(all.find("port-file=\"/tmp/a b\""), std::string::npos) << all;
  EXPECT_NE(all.find("http-port-file=\"\""), std::string::npos) << all;
}

}  // namespace
}  // namespace annal::tools
