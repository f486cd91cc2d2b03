#include "admin/console/console_assets.h"

#include <string>
#include <unordered_map>

#include "admin/console/console_files.h"

namespace annal::admin {
namespace {

std::string_view content_type(std::string_view path) {
  struct Type {
    std::string_view suffix, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript"},
      {".css", "text/css"},
      {".svg", "image/svg+xml"},
      {".json", "application/json"},
      {".png", "image/png"},
  };
  for (const auto& t : kTypes) {
    if (path.ends_with(t.suffix)) return t.type;
  }
  return "application/octet-stream";
}

// Request path -> asset, built once from the generated table.
class Assets {
 public:
  Assets() {
    for (std::size_t i = 0; i < detail::kConsoleFileCount; ++i) {
      const auto& f = detail::kConsoleFiles[i];
      by_path_.emplace("/console/" + std::string(f.path),
                       ConsoleAsset{content_type(f.path), f.bytes});
    }
  }

  const ConsoleAsset* find(std::string_view path) const {
    path = path.substr(0, path.find('?'));
    if (path == "/" || path == "/index.html") path = "/console/index.html";
    auto it = by_path_.find(std::string(path));
    return it == by_path_.end() ? nullptr : &it->second;
  }

 private:
  std::unordered_map<std::string, ConsoleAsset> by_path_;
};

}  // namespace

const ConsoleAsset* find_console_asset(std::string_view path) {
  static const Assets assets;  // immutable after its thread-safe construction
  return assets.find(path);
}

}  // namespace annal::admin
