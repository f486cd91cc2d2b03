// The admin endpoint serves the web console's built-in files: index.html at
// the root, the rest under /console/, with their content types.

#include <gtest/gtest.h>

#include "admin/console/console_assets.h"
#include "tests/admin/admin_fixture.h"

namespace annal::admin::testing {
namespace {

class ConsoleRouteTest : public AdminFixture {};

TEST_F(ConsoleRouteTest, TheRootServesIndexHtml) {
  start();
  for (const char* target : {"/", "/index.html"}) {
    const auto r = get(target);
    ASSERT_EQ(r.status, 200u) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << target;
    EXPECT_EQ(r.body, find_console_asset("/")->body) << target;
  }
}

TEST_F(ConsoleRouteTest, ScriptsAndStylesAreServedUnderConsoleWithTheirTypes) {
  start();
  const auto js = get("/console/views/log.js");
  ASSERT_EQ(js.status, 200u) << js.body;
  EXPECT_EQ(js.content_type, "text/javascript");
  EXPECT_EQ(js.body, find_console_asset("/console/views/log.js")->body);
  const auto css = get("/console/style.css");
  ASSERT_EQ(css.status, 200u);
  EXPECT_EQ(css.content_type, "text/css");
}

TEST_F(ConsoleRouteTest, AnUnknownConsoleFileIsNotFoundWithTheErrorJson) {
  start();
  const auto r = get("/console/nope.js");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("/console/nope.js"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace annal::admin::testing
