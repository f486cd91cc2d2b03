#include <gtest/gtest.h>

#include "tools/offline_json.h"

namespace annal::tools {
namespace {

TEST(JsonTest, StringsAreEscapedAndInvalidUtf8BecomesByteEscapes) {
  std::string out;
  append_json_string(out, std::string("a\"b\\c\n\x01\xc3\xa9\xff", 10));
  EXPECT_EQ(out, R"("a\"b\\c\n\u0001é\u00ff")");
  EXPECT_TRUE(is_valid_json(out));
}

TEST(JsonTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\x00\xff", 2)), "AP8=");
}

TEST(JsonTest, ObjectsAreValidJson) {
  const std::string s = JsonObject()
                            .str("k", "v")
                            .num("n", std::uint64_t{7})
                            .boolean("b", true)
                            .null("z")
                            .raw("r", "[1,2]")
                            .done();
  EXPECT_EQ(s, R"({"k":"v","n":7,"b":true,"z":null,"r":[1,2]})");
  EXPECT_TRUE(is_valid_json(s));
  EXPECT_FALSE(is_valid_json(R"({"a":1,"x":[1,2,}})"));
}

}  // namespace
}  // namespace annal::tools
