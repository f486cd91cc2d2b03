// annald's JSON log lines (tools/node_log.h): every line is one valid JSON
// object with the text form's fields, whatever bytes the message holds.
#include "tools/node_log.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace annal::tools {
namespace {

struct Parsed {
  std::string time, level, logger, message;
};

class JsonLogFormatterTest : public ::testing::Test {
 protected:
  // Formats one message and parses the line back with a strict JSON parser.
  Parsed format(std::string_view message, spdlog::level::level_enum level = spdlog::level::info,
                std::chrono::system_clock::time_point when = std::chrono::system_clock::now()) {
    spdlog::details::log_msg msg(when, spdlog::source_loc{}, "annald", level,
                                 spdlog::string_view_t(message.data(), message.size()));
    spdlog::memory_buf_t buf;
    JsonLogFormatter().format(msg, buf);
    line_.assign(buf.data(), buf.size());
    EXPECT_FALSE(line_.empty());
    EXPECT_EQ(line_.back(), '\n');
    EXPECT_EQ(line_.find('\n'), line_.size() - 1) << "one line per message: " << line_;
    Parsed p;
    simdjson::dom::element doc;
    auto error = parser_.parse(line_).get(doc);
    EXPECT_EQ(error, simdjson::SUCCESS) << simdjson::error_message(error) << ": " << line_;
    if (error) return p;
    simdjson::dom::object obj;
    EXPECT_EQ(doc.get(obj), simdjson::SUCCESS);
    EXPECT_EQ(obj.size(), 4u) << line_;
    for (auto [key, out] : {std::pair{"time", &p.time}, std::pair{"level", &p.level},
                            std::pair{"logger", &p.logger}, std::pair{"message", &p.message}}) {
      std::string_view v;
      EXPECT_EQ(obj[key].get(v), simdjson::SUCCESS) << key << " in " << line_;
      *out = std::string(v);
    }
    return p;
  }

  simdjson::dom::parser parser_;
  std::string line_;
};

TEST_F(JsonLogFormatterTest, ALineHasTheTextFormsFieldsWithAnIsoUtcTimeInMilliseconds) {
  // 2026-11-27T09:36:21.236Z
  const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795772181236));
  auto p = format("listening on 127.0.0.1:7411", spdlog::level::info, when);
  EXPECT_EQ(p.time, "2026-11-27T09:36:21.236Z");
  EXPECT_EQ(p.level, "info");
  EXPECT_EQ(p.logger, "annald");
  EXPECT_EQ(p.message, "listening on 127.0.0.1:7411");
  EXPECT_EQ(line_,
            "{\"time\":\"2026-11-27T09:36:21.236Z\",\"level\":\"info\",\"logger\":\"annald\","
            "\"message\":\"listening on 127.0.0.1:7411\"}\n");
}

TEST_F(JsonLogFormatterTest, LevelsHaveTheTextFormsNames) {
  EXPECT_EQ(format("x", spdlog::level::warn).level, "warning");
  EXPECT_EQ(format("x", spdlog::level::err).level, "error");
  EXPECT_EQ(format("x", spdlog::level::debug).level, "debug");
}

TEST_F(JsonLogFormatterTest, QuotesBackslashesAndControlCharactersAreEscaped) {
  const std::string m = std::string("say \"hi\" to C:\\dir\nnext\tline\r\b\f") + '\x01' + '\x1f' +
                        '\x7f' + std::string(1, '\0') + "end";
  auto p = format(m);
  EXPECT_EQ(p.message, m);
  EXPECT_NE(line_.find("\\u0001\\u001f"), std::string::npos) << line_;
  EXPECT_NE(line_.find("\\u0000end"), std::string::npos) << line_;
}

TEST_F(JsonLogFormatterTest, NonAsciiTextPassesThroughUnescaped) {
  const std::string m = "stream café-ünïcødé 日本 🎉";
  auto p = format(m);
  EXPECT_EQ(p.message, m);
  EXPECT_NE(line_.find(m), std::string::npos) << "not \\u-escaped: " << line_;
}

TEST_F(JsonLogFormatterTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // A lone continuation byte, a truncated sequence, an overlong '/', a
  // surrogate, a code point above U+10FFFF, and a truncated 4-byte sequence at the end.
  const std::string m =
      "a\x80"
      "b\xC3"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xF4\x90\x80\x80"
      "f\xF0\x9F\x8E";
  auto p = format(m);
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(p.message, "a" + r + "b" + r + "c" + r + r + "d" + r + r + r + "e" + r + r + r + r +
                           "f" + r + r + r);
}

}  // namespace
}  // namespace annal::tools
