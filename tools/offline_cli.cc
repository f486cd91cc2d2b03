#include <cstdio>

#include "tools/cli.h"

namespace annal::tools {
int run_offline_command(const std::vector<std::string>& args) {
  std::fprintf(stderr, "annal %s: not built yet\n", args[0].c_str());
  return 1;
}
}  // namespace annal::tools
