#pragma once
// The console's files as built into the binary: a table generated at build
// time by embed_files.cmake (console_files.cc in the build directory).
// Internal to annal_console; use console_assets.h.

#include <cstddef>
#include <string_view>

namespace annal::admin::detail {

struct EmbeddedFile {
  std::string_view path;   // relative to admin/console/, e.g. "views/log.js"
  std::string_view bytes;  // the file's contents, byte for byte
};

extern const EmbeddedFile kConsoleFiles[];
extern const std::size_t kConsoleFileCount;

}  // namespace annal::admin::detail
