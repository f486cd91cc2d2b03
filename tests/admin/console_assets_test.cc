// The console's files as the node serves them (admin/console/console_assets.h)
// against the files checked in under admin/console/.
#include "admin/console/console_assets.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace annal::admin {
namespace {

namespace fs = std::filesystem;
const fs::path kSourceDir = ANNAL_CONSOLE_SOURCE_DIR;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The files that must be built in: every file of the folder but the build
// files and C++ sources (the rule in admin/console/CMakeLists.txt).
std::vector<std::string> console_source_files() {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(kSourceDir)) {
    if (!e.is_regular_file()) continue;
    const auto name = e.path().filename().string();
    const auto ext = e.path().extension().string();
    if (name == "CMakeLists.txt" || ext == ".cmake" || ext == ".h" || ext == ".cc" ||
        name.starts_with(".")) {
      continue;
    }
    out.push_back(fs::relative(e.path(), kSourceDir).generic_string());
  }
  return out;
}

// Every string that follows `opener` in text up to `close`, when it starts
// with one of `starts`. (No std::regex: GCC 12 reports false
// maybe-uninitialized warnings inside <regex> in the ASan build.)
std::vector<std::string> quoted(const std::string& text, const std::string& opener, char close,
                                const std::vector<std::string>& starts) {
  std::vector<std::string> out;
  for (std::size_t at = text.find(opener); at != std::string::npos;
       at = text.find(opener, at + 1)) {
    const std::size_t begin = at + opener.size();
    const std::size_t end = text.find(close, begin);
    if (end == std::string::npos) break;
    const std::string value = text.substr(begin, end - begin);
    for (const auto& prefix : starts)
      if (value.starts_with(prefix)) {
        out.push_back(value);
        break;
      }
  }
  return out;
}

TEST(ConsoleAssetsTest, IndexIsServedAtTheRootAndAsIndexHtml) {
  for (const char* path : {"/", "/index.html", "/?x=1"}) {
    const ConsoleAsset* a = find_console_asset(path);
    ASSERT_NE(a, nullptr) << path;
    EXPECT_EQ(a->content_type, "text/html; charset=utf-8") << path;
    EXPECT_EQ(a->body, read_file(kSourceDir / "index.html")) << path;
  }
}

TEST(ConsoleAssetsTest, EveryAssetIndexHtmlReferencesResolvesWithItsContentType) {
  const auto index = read_file(kSourceDir / "index.html");
  auto refs = quoted(index, "src=\"", '"', {"/console/"});
  for (auto& r : quoted(index, "href=\"", '"', {"/console/"})) refs.push_back(r);
  ASSERT_GE(refs.size(), 3u) << "index.html should load the script, the stylesheet and the icon";
  for (const auto& ref : refs) {
    const ConsoleAsset* a = find_console_asset(ref);
    ASSERT_NE(a, nullptr) << ref;
    if (ref.ends_with(".js")) {
      EXPECT_EQ(a->content_type, "text/javascript") << ref;
    }
    if (ref.ends_with(".css")) {
      EXPECT_EQ(a->content_type, "text/css") << ref;
    }
    if (ref.ends_with(".svg")) {
      EXPECT_EQ(a->content_type, "image/svg+xml") << ref;
    }
  }
}

TEST(ConsoleAssetsTest, EveryImportInTheScriptsResolves) {
  int checked = 0;
  for (const auto& file : console_source_files()) {
    if (!file.ends_with(".js")) continue;
    const fs::path dir = fs::path("/console") / fs::path(file).parent_path();
    for (const auto& rel : quoted(read_file(kSourceDir / file), "from '", '\'', {"./", "../"})) {
      const auto target = (dir / rel).lexically_normal().generic_string();
      EXPECT_NE(find_console_asset(target), nullptr)
          << file << " imports " << rel << " (" << target << ")";
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(ConsoleAssetsTest, EverySourceFileIsBuiltInByteForByte) {
  const auto files = console_source_files();
  ASSERT_FALSE(files.empty());
  for (const auto& file : files) {
    const ConsoleAsset* a = find_console_asset("/console/" + file);
    ASSERT_NE(a, nullptr) << file << " is in admin/console/ but not built in";
    EXPECT_EQ(a->body, read_file(kSourceDir / file)) << file;
    EXPECT_NE(a->content_type, "application/octet-stream") << file << " has no known content type";
  }
}

TEST(ConsoleAssetsTest, UnknownPathsAndBuildFilesAreNotFound) {
  for (const char* path :
       {"", "/console/", "/console/nope.js", "/index.htm", "/app.js", "/api/info",
        "/console/CMakeLists.txt", "/console/console_assets.cc", "/console/embed_files.cmake",
        "/console/../index.html", "console/app.js", "/CONSOLE/app.js"}) {
    EXPECT_EQ(find_console_asset(path), nullptr) << path;
  }
}

}  // namespace
}  // namespace annal::admin
