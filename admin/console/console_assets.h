#pragma once
// The web console's static files (admin/console/), built into the node at
// build time: the admin HTTP endpoint serves them with find_console_asset.
//
// Thread safety: find_console_asset may be called from any thread at any
// time; the assets are immutable and live for the whole program.

#include <string_view>

namespace annal::admin {

struct ConsoleAsset {
  std::string_view content_type;  // e.g. "text/html; charset=utf-8", "text/javascript"
  std::string_view body;          // the file's bytes
};

// path as requested: "/" or "/index.html" -> index.html; "/console/app.js" ->
// app.js (and "/console/views/log.js" -> views/log.js). A query string
// ("?v=2") is ignored. nullptr if no such file.
const ConsoleAsset* find_console_asset(std::string_view path);

}  // namespace annal::admin
